"""Results: a test's Result, the results files (one per part and side),
counts and their wording."""

import os
import time

from .testset import definition

RESULTS = ("PASS", "FAIL", "SKIP")


class Result:
    __slots__ = ("outcome", "secs", "msg")

    def __init__(self, outcome, secs=0.0, msg=""):
        assert outcome in RESULTS
        self.outcome, self.secs, self.msg = outcome, secs, msg


def one_line(text, limit=400):
    text = " | ".join(s.strip() for s in text if s.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- Results files: one line per test, 'test<TAB>outcome<TAB>secs<TAB>message'.

def write_results(path, results, part, elapsed, build, meta=None):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# {part} on {build}\n# elapsed {elapsed:.0f}\n"
                f"# date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        for k, v in (meta or {}).items():
            f.write(f"# {k} {v}\n")
        for line in definition(part).splitlines():
            f.write(f"# def {line}\n")
        for name in sorted(results):
            r = results[name]
            msg = r.msg.replace("\t", " ").replace("\n", " ")
            f.write(f"{name}\t{r.outcome}\t{r.secs:.1f}\t{msg}\n")
    os.replace(tmp, path)


def read_results(path):
    results, meta = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# "):
                k, _, v = line[2:].partition(" ")
                meta.setdefault(k, v)
                continue
            name, outcome, secs, msg = (line.split("\t") + ["", "", ""])[:4]
            results[name] = Result(outcome, float(secs or 0), msg)
    return results, meta


def counts(results):
    c = {k: 0 for k in RESULTS}
    for r in results.values():
        c[r.outcome] += 1
    return c


def plural(n, what):
    return f"{n} {what}" + ("" if n == 1 else "s")


def fmt_counts(c):
    return f"{c['PASS']} passed {c['FAIL']} failed {c['SKIP']} skipped"
