"""The base: the unpatched QEMU that tools/pq builds with the configure
options of the patched build, and its results, cached per part in
<base dir>/results/<part>-<key>.tsv; what is not cached is run there (the
base built first unless it is), a failure that is not a hang once more."""

import hashlib
import os
import subprocess
import time

from .common import PQ, WORK, die, log
from .results import counts, fmt_counts, read_results, write_results
from .side import Side
from .testset import definition


def pq(*args):
    out = subprocess.run([PQ, *args], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, DIH_WORK=WORK))
    if out.returncode != 0:
        die(f"tools/pq {' '.join(args)} failed")
    return out.stdout.strip().splitlines()[-1]


def key(basedir, part):
    """The key of PART's cached results: the base's directory and the
    test-set definition."""
    return hashlib.sha256((basedir + "\n" + definition(part))
                          .encode()).hexdigest()[:16]


def base_results(basedir, parts, jobs, base_again=False):
    """The base's results of PARTS, from the cache or (BASE_AGAIN: always) run.
    Returns {part: {test: Result}}, {part: meta}, {part: seconds} and
    {part: date} of the parts whose results were cached."""
    resdir = os.path.join(basedir, "results")
    base_res, base_meta, base_secs, base_cached = {}, {}, {}, {}
    todo = []
    for part in parts:
        path = os.path.join(resdir, f"{part}-{key(basedir, part)}.tsv")
        if os.path.exists(path) and not base_again:
            base_res[part], base_meta[part] = read_results(path)
            base_secs[part] = float(base_meta[part].get("elapsed", 0))
            base_cached[part] = base_meta[part].get("date", "?")
        else:
            todo.append((part, path))
    if todo:
        log("base: no cached results for " + ", ".join(p for p, _ in todo) +
            f": running them on the base in {basedir}, built first unless it is "
            "(about 5 min when ccache holds the patched build, 7 min on an empty cache)")
        t0 = time.monotonic()
        pq("base-build", "qemu")
        log(f"base: build took {time.monotonic() - t0:.0f} s")
        base = Side("base", os.path.join(basedir, "build", "qemu"),
                    os.path.join(basedir, "run"), jobs)
        os.makedirs(resdir, exist_ok=True)
        base.prepare()
        try:
            base.build_tests([p for p, _ in todo])
            for part, path in todo:
                log(f"base: {part} ...")
                t0 = time.monotonic()
                r = base.run_part(part, {})
                # A failure on the base (except a hang) runs once more, so
                # that a flake there does not hide a regression for as long
                # as the results are cached.
                for t, res in sorted(r.items()):
                    if res.outcome == "FAIL" and not res.msg.startswith("hung") \
                            and not t.endswith(":(list)"):
                        again = base.rerun(part, t)
                        log(f"base: {part} {t} failed ({res.msg}); again: {again.outcome}")
                        if again.outcome == "PASS":
                            again.msg = "passed when run again; first run: " + res.msg
                            r[t] = again
                base_secs[part] = time.monotonic() - t0
                base_res[part] = r
                meta = {}
                if part == "qtests":
                    meta["registered"] = " ".join(sorted(base.registered_qtests()))
                    base_meta[part] = meta
                write_results(path, r, part, base_secs[part], base.build, meta)
                log(f"base: {part}: {fmt_counts(counts(r))} ({base_secs[part]:.0f} s)")
        finally:
            base.cleanup()
    return base_res, base_meta, base_secs, base_cached
