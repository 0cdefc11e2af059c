#!/usr/bin/python3
"""The probe's log lines and parameters: their one definition.

FORMS is the grammar of the lines src/dih-probe.c writes: each record
kind with its form, the line after "DIH " in the notation of the C
file's header, which documents exactly these forms (the probe unit test
checks the header and the parameter names against FORMS and PARAMS:
probe.py --check-source SOURCE). In a form, NAME=VALUE fields follow the
first word; a VALUE is alternatives (a|b) of literal words and of the
TOKENS, and TOKEN[,TOKEN]... is a comma-separated list.

parse() turns one console line into a record, returns None for a line
that is not the probe's (the kernel's, say), and raises ValueError for a
"DIH " line of no documented form, so that a change of the format cannot
go unnoticed. As a program:

    probe.py --lines             every line of stdin is a probe line of a
                                 documented form (exit 1 naming the first
                                 that is not)
    probe.py --check-source SOURCE
                                 the header of SOURCE (src/dih-probe.c)
                                 documents FORMS and PARAMS, and its
                                 set_param() knows exactly PARAMS
"""

import dataclasses
import re
import sys

# What each token of a form stands for (a regular expression).
TOKENS = {
    "NAME": r"\S+",
    "N": r"\d+",
    "LEVEL": r"[0-7]",
    "SECONDS": r"\d+\.\d{6}",
    "MS": r"\d+\.\d{3}",
    "ERRNO": r"E[A-Z0-9]+",
    "KEY": r"0x[0-9a-f]+",
    # A SCSI result: the host status, the SCSI status, or CHECK_CONDITION
    # with the sense key after a slash.
    "STATUS": r"(?:DID|STATUS)_0x[0-9a-f]{2}|[A-Z_]+(?:/[A-Z_]+)?",
}
# The parameters, dih.NAME=VALUE on the kernel command line or
# --NAME=VALUE (their meanings: the header of src/dih-probe.c).
PARAMS = ("disks", "blocks", "bs", "passes", "seconds", "pause_ms", "mode",
          "wait", "depth", "parallel", "pr", "pr_read", "kmsg",
          "scsi_timeout", "reader_ms", "scsi_reset")
COUNT_FIELDS = ("writes", "reads", "errors", "verified", "bad", "unknown")


@dataclasses.dataclass(frozen=True)
class Start:
    pass


@dataclasses.dataclass(frozen=True)
class Disk:
    dev: str


class Result:
    """A record with a result, res: "ok" or what failed."""

    @property
    def ok(self):
        return self.res == "ok"


@dataclasses.dataclass(frozen=True)
class IO(Result):
    dev: str
    op: str
    blk: int
    t: float
    lat_ms: float
    res: str


@dataclasses.dataclass(frozen=True)
class Timeout:
    """dev's SCSI command timeout was set to seconds."""
    dev: str
    seconds: int


@dataclasses.dataclass(frozen=True)
class PR(Result):
    """A PERSISTENT RESERVE command (op: register, reserve, read_keys or
    read_reservation) and its result: "ok", an errno name, a host status
    (DID_...) or a SCSI status, with the sense key after a slash."""
    dev: str
    op: str
    res: str


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
class Beside(Result):
    """What a thread beside dev's workers did: started at t, took
    lat_ms, res "ok" or an errno name."""
    dev: str
    t: float
    lat_ms: float
    res: str


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
    (Start, "start"),
    (Disk, "disk dev=NAME"),
    (IO, "io dev=NAME op=write|read blk=N t=SECONDS lat_ms=MS res=ok|ERRNO"),
    (Timeout, "timeout dev=NAME seconds=N"),
    (PR, "pr dev=NAME op=register|reserve|read_keys|read_reservation "
         "res=ok|ERRNO|STATUS"),
    (PRIn, "prin dev=NAME keys=none|KEY[,KEY]... holder=none|KEY type=N"),
    (Reader, "reader dev=NAME t=SECONDS lat_ms=MS res=ok|ERRNO"),
    (Reset, "reset dev=NAME t=SECONDS lat_ms=MS res=ok|ERRNO"),
    (Bad, "bad dev=NAME blk=N pass=N"),
    (Counts, "pass dev=NAME pass=N " +
             " ".join(f"{k}=N" for k in COUNT_FIELDS)),
    (Counts, "summary dev=NAME " + " ".join(f"{k}=N" for k in COUNT_FIELDS)),
    (Error, "error MESSAGE"),
    (Warning, "warning MESSAGE"),
    # The kernel's message may be empty.
    (Kmsg, "kmsg t=SECONDS level=LEVEL MESSAGE"),
    (Done, "done rc=N"),
]


def _value(text):
    """The regular expression of a field's value in a form."""
    alternatives = []
    for alt in text.split("|"):
        m = re.fullmatch(r"([A-Z]+)\[,\1\]\.\.\.", alt)
        if m:
            token = TOKENS[m.group(1)]
            alternatives.append(f"(?:{token})(?:,(?:{token}))*")
        elif alt in TOKENS:
            alternatives.append(f"(?:{TOKENS[alt]})")
        else:
            alternatives.append(re.escape(alt))
    return "|".join(alternatives)


def form_regex(form):
    """The regular expression of the lines of form (after "DIH "), with
    a named group for each field (pass as pass_) and for MESSAGE."""
    word, *fields = form.split(" ")
    regex = re.escape(word)
    for field in fields:
        if field == "MESSAGE":
            regex += r"(?: (?P<message>.*))?" if word == "kmsg" \
                else r" (?P<message>.+)"
            continue
        name, value = field.split("=", 1)
        group = "pass_" if name == "pass" else name
        regex += f" {re.escape(name)}=(?P<{group}>{_value(value)})"
    return regex


PATTERNS = [(kind, re.compile(f"DIH {form_regex(form)}$"))
            for kind, form in FORMS]


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
        elif name == "message" and value is None:
            value = ""
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


def check_lines(lines):
    """The first line that is not a probe line of a documented form, or
    None."""
    for line in lines:
        line = line.rstrip("\n")
        try:
            if parse(line) is None:
                return line
        except ValueError:
            return line
    return None


def check_source(path):
    """What the header and set_param() of the probe's C source (path)
    say otherwise than FORMS and PARAMS: a list of differences."""
    with open(path) as f:
        text = f.read()
    header = text[:text.index("*/")]
    documented = re.findall(r"^ \*   DIH (.+)$", header, re.M)
    forms = [form for _, form in FORMS]
    problems = [f"the header documents 'DIH {d}', which FORMS lacks"
                for d in documented if d not in forms]
    problems += [f"the header lacks 'DIH {f}'" for f in forms
                 if f not in documented]
    params_doc = header[header.index("Parameters"):]
    listed = re.findall(r"^ \*   ([a-z_]+) ", params_doc, re.M)
    known = re.findall(r'strcmp\(name, "([a-z_]+)"\)', text)
    for what, names in (("the header's parameters", listed),
                        ("set_param()", known)):
        if sorted(names) != sorted(PARAMS):
            problems.append(f"{what}: {sorted(names)}, PARAMS: "
                            f"{sorted(PARAMS)}")
    return problems


def main(args):
    if args == ["--lines"]:
        bad = check_lines(sys.stdin)
        if bad is not None:
            print(f"not a documented probe line: {bad!r}")
            return 1
        return 0
    if len(args) == 2 and args[0] == "--check-source":
        problems = check_source(args[1])
        for p in problems:
            print(p)
        return 1 if problems else 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
