"""The tests' processes: each in a session of its own, its output line by
line with a timeout on progress; stop_all() stops them on a signal."""

import os
import queue
import signal
import subprocess
import threading
import time

from .common import log

RUNNING = set()
RUNNING_LOCK = threading.Lock()


def stop_all(signum, _frame):
    """On SIGTERM (meson's timeout) or SIGINT: stop the tests running in
    their own sessions, which a signal to our process group misses."""
    with RUNNING_LOCK:
        procs = list(RUNNING)
    for proc in procs:
        proc.kill()
    log(f"stopped by signal {signum}")
    os._exit(2)


class Proc:
    """A child in a session of its own; its output, line by line."""

    def __init__(self, args, env, cwd, logf):
        self.logf = logf
        logf.write("$ " + " ".join(args) + "\n")
        logf.flush()
        with RUNNING_LOCK:
            self.p = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, text=True,
                                      encoding="utf-8", errors="replace")
            RUNNING.add(self)
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def lines(self, timeout):
        """Yield lines; yield None once when TIMEOUT passes without
        progress() being called, then stop."""
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                yield None
                return
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                return
            self.logf.write(line + "\n")
            yield line

    def progress(self, timeout=None):
        self.timeout = timeout or self.timeout
        self.deadline = time.monotonic() + self.timeout

    def kill(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.p.wait(5)
                return
            except subprocess.TimeoutExpired:
                pass

    def finish(self):
        rc = self.p.wait()
        self.t.join(10)
        # Whatever the test left running in its session (a QEMU, a
        # qemu-nbd): the session is ours, its id is the child's pid.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        with RUNNING_LOCK:
            RUNNING.discard(self)
        self.logf.write(f"# exit status {rc}\n")
        self.logf.flush()
        return rc
