"""The probe's log lines, as documented in src/dih-probe.c.

parse() turns one console line into a record, returns None for a line
that is not the probe's (the kernel's, say), and raises ValueError for a
"DIH " line of no documented form, so that a change of the format cannot
go unnoticed.
"""

import dataclasses
import re

NUMBER = r"\d+"
SECONDS = rf"{NUMBER}\.\d{{6}}"
KEY = r"0x[0-9a-f]+"
COUNT_FIELDS = ("writes", "reads", "errors", "verified", "bad", "unknown")
# The fields of the lines of the threads beside the workers.
BESIDE = (rf"dev=(?P<dev>\S+) t=(?P<t>{SECONDS}) "
          rf"lat_ms=(?P<lat_ms>{NUMBER}\.\d{{3}}) res=(?P<res>ok|E[A-Z0-9]+)")
COUNTS = " ".join(f"{k}=(?P<{k}>{NUMBER})" for k in COUNT_FIELDS)


@dataclasses.dataclass(frozen=True)
class Start:
    pass


@dataclasses.dataclass(frozen=True)
class Disk:
    dev: str


@dataclasses.dataclass(frozen=True)
class IO:
    dev: str
    op: str
    blk: int
    t: float
    lat_ms: float
    res: str

    @property
    def ok(self):
        return self.res == "ok"


@dataclasses.dataclass(frozen=True)
class Timeout:
    """dev's SCSI command timeout was set to seconds."""
    dev: str
    seconds: int


@dataclasses.dataclass(frozen=True)
class PR:
    """A PERSISTENT RESERVE command (op: register, reserve, read_keys or
    read_reservation) and its result: "ok", an errno name, a host status
    (DID_...) or a SCSI status, with the sense key after a slash."""
    dev: str
    op: str
    res: str

    @property
    def ok(self):
        return self.res == "ok"


@dataclasses.dataclass(frozen=True)
class PRIn:
    """The registered keys of dev and its reservation (holder None: no
    reservation, type 0)."""
    dev: str
    keys: tuple
    holder: int | None
    type: int


@dataclasses.dataclass(frozen=True)
class Kmsg:
    """A kernel message, read at t on the probe's clock."""
    t: float
    level: int
    message: str


@dataclasses.dataclass(frozen=True)
class Beside:
    """What a thread beside dev's workers did: started at t, took
    lat_ms, res "ok" or an errno name."""
    dev: str
    t: float
    lat_ms: float
    res: str

    @property
    def ok(self):
        return self.res == "ok"


class Reader(Beside):
    """A read of dev's reader (the probe's reader_ms) whose result
    differs from the one before (or its first)."""


class Reset(Beside):
    """A reset of dev's SCSI device (the probe's scsi_reset), t when it
    was asked for."""


@dataclasses.dataclass(frozen=True)
class Bad:
    dev: str
    blk: int
    pass_: int


@dataclasses.dataclass(frozen=True)
class Counts:
    """The counts on dev after a pass (pass_ is its number) or at the end
    (pass_ is None: the summary)."""
    dev: str
    writes: int
    reads: int
    errors: int
    verified: int
    bad: int
    unknown: int
    pass_: int | None = None

    @property
    def clean(self):
        """No I/O failed, every read verified."""
        return self.errors == 0 and self.bad == 0 and self.unknown == 0


@dataclasses.dataclass(frozen=True)
class Error:
    message: str


@dataclasses.dataclass(frozen=True)
class Warning:
    message: str


@dataclasses.dataclass(frozen=True)
class Done:
    rc: int


FORMS = [
    (Start, r"start"),
    (Disk, r"disk dev=(?P<dev>\S+)"),
    (IO, rf"io dev=(?P<dev>\S+) op=(?P<op>write|read) blk=(?P<blk>{NUMBER}) "
         rf"t=(?P<t>{SECONDS}) lat_ms=(?P<lat_ms>{NUMBER}\.\d{{3}}) "
         r"res=(?P<res>ok|E[A-Z0-9]+)"),
    (Timeout, rf"timeout dev=(?P<dev>\S+) seconds=(?P<seconds>{NUMBER})"),
    (PR, r"pr dev=(?P<dev>\S+) "
         r"op=(?P<op>register|reserve|read_keys|read_reservation) "
         r"res=(?P<res>ok|E[A-Z0-9]+|(?:DID|STATUS)_0x[0-9a-f]{2}|"
         r"[A-Z_]+(?:/[A-Z_]+)?)"),
    (PRIn, rf"prin dev=(?P<dev>\S+) keys=(?P<keys>none|{KEY}(?:,{KEY})*) "
           rf"holder=(?P<holder>none|{KEY}) type=(?P<type>{NUMBER})"),
    (Kmsg, rf"kmsg t=(?P<t>{SECONDS}) level=(?P<level>[0-7]) ?(?P<message>.*)"),
    (Reader, rf"reader {BESIDE}"),
    (Reset, rf"reset {BESIDE}"),
    (Bad, rf"bad dev=(?P<dev>\S+) blk=(?P<blk>{NUMBER}) pass=(?P<pass_>{NUMBER})"),
    (Counts, rf"pass dev=(?P<dev>\S+) pass=(?P<pass_>{NUMBER}) {COUNTS}"),
    (Counts, rf"summary dev=(?P<dev>\S+) {COUNTS}"),
    (Error, r"error (?P<message>.+)"),
    (Warning, r"warning (?P<message>.+)"),
    (Done, rf"done rc=(?P<rc>{NUMBER})"),
]
PATTERNS = [(kind, re.compile(f"DIH {form}$")) for kind, form in FORMS]


INTEGERS = ({"blk", "pass_", "rc", "seconds", "type", "level"}
            | set(COUNT_FIELDS))
FLOATS = {"t", "lat_ms"}


def _keys(text):
    """The keys of a comma-separated list of them, or of "none"."""
    return () if text == "none" else tuple(int(k, 16) for k in text.split(","))


def _convert(kind, groups):
    values = {}
    for name, value in groups.items():
        if value is not None and name in INTEGERS:
            value = int(value)
        elif name in FLOATS:
            value = float(value)
        elif name == "keys":
            value = _keys(value)
        elif name == "holder":
            value = None if value == "none" else int(value, 16)
        values[name] = value
    return kind(**values)


def parse(line):
    """The record of one console line, or None if it is not the probe's."""
    if not line.startswith("DIH "):
        return None
    for kind, pattern in PATTERNS:
        m = pattern.match(line)
        if m:
            return _convert(kind, m.groupdict())
    raise ValueError(f"a probe line of no documented form: {line!r}")
