"""An incremental reader of a growing log file.

Console reads a file another process appends to (the guest's serial
console, virsh event's output) from where it left off, keeps only
complete lines, and stamps each with the host's monotonic time at which
it read it. Positions in its list of lines (len(console)) mark "from now
on" for the queries. It is read when asked (every query reads what is
new) or, for a fine-grained time stamp, continuously by follow().
"""

import contextlib
import dataclasses
import re
import threading
import time

from . import probe
from .wait import wait_until


@dataclasses.dataclass(frozen=True)
class Line:
    time: float
    text: str
    record: object  # the probe's record (probe.parse), or None


class Console:
    """The lines of the file at path, as they arrive."""

    def __init__(self, path):
        self.path = path
        self._lines = []
        self._partial = b""
        self._offset = 0
        self._lock = threading.Lock()

    def poll(self):
        """Read what is new in the file."""
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read()
            except FileNotFoundError:
                return
            if not data:
                return
            now = time.monotonic()
            self._offset += len(data)
            *complete, self._partial = (self._partial + data).split(b"\n")
            for raw in complete:
                text = raw.decode(errors="replace").strip()
                self._lines.append(Line(now, text, probe.parse(text)))

    def __len__(self):
        self.poll()
        return len(self._lines)

    def stamped(self, since=0):
        """Line objects from position since on."""
        self.poll()
        with self._lock:
            return self._lines[since:]

    def lines(self, since=0):
        """The text of the lines from position since on."""
        return [line.text for line in self.stamped(since)]

    def tail(self, n=15):
        """The last n lines as one text (for failure messages)."""
        return "\n".join(self.lines()[-n:]) or f"(nothing in {self.path})"

    def wait_for(self, pattern, timeout, since=0, failed=None):
        """Wait for a line from position since on that matches the
        regular expression pattern (anchored at the start); return its
        match. failed is wait_until()'s."""
        regex = re.compile(pattern)

        def match():
            for text in self.lines(since):
                m = regex.match(text)
                if m:
                    return m
            return None
        return wait_until(match, timeout, f"{pattern!r} in {self.path}",
                          state=self.tail, failed=failed)

    @contextlib.contextmanager
    def follow(self, interval, on_line=None):
        """Read the file every interval seconds in a thread while the
        context lasts; on_line(line) is called for each new Line."""
        stop = threading.Event()

        def run():
            seen = 0
            while True:
                stopping = stop.is_set()
                self.poll()
                if on_line is not None:
                    new = self.stamped(seen)
                    seen += len(new)
                    for line in new:
                        on_line(line)
                if stopping:
                    return
                time.sleep(interval)
        thread = threading.Thread(target=run, name=f"follow {self.path}",
                                  daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    # The probe's records.

    def records(self, kind, since=0):
        """The probe's records of the given kind (probe.IO, ...) from
        position since on."""
        return [line.record for line in self.stamped(since)
                if isinstance(line.record, kind)]

    def ios(self, since=0, dev=None):
        """The probe's I/O records from position since on."""
        return [io for io in self.records(probe.IO, since)
                if dev is None or io.dev == dev]

    def summary(self, dev):
        """The probe's final counts on dev, or None before the end."""
        found = [c for c in self.records(probe.Counts)
                 if c.dev == dev and c.pass_ is None]
        return found[-1] if found else None
