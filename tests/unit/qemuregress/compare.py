"""The patched side against the base, test by test, and the report.

A test that passes on the base and not on the patched build runs up to
RERUNS more times on the patched build (a pass: a flake); one that still
fails runs RECHECKS times on the base and on the patched build in turn,
and is a regression only if the base passes every time and the patched
build fails all but once at most (otherwise: unstable on both). A test
the base does not have must pass."""

import os
import time

from .common import WORK, log
from .results import RESULTS, Result, counts, fmt_counts, plural
from .side import Side
from .testset import RECHECKS, RERUNS


class Comparison:
    """The verdict: the lists of tests the report shows. The base is run
    again (rechecks) in WORK/regress/base-again, a side made when the
    first recheck needs it; cleanup() removes what it leaves."""

    def __init__(self, basedir, jobs):
        self.basedir, self.jobs = basedir, jobs
        self.regressions, self.flakes, self.new_bad, self.new_tests, self.both_fail = \
            [], [], [], [], []
        self.unstable = []
        self.base_now = None

    def run(self, parts, base_res, pat_res, patched):
        """Compare PAT_RES with BASE_RES; what looks bad runs again on
        PATCHED (and on the base). PAT_RES is updated with the last run of
        each test run again."""
        regressions, flakes, new_bad, new_tests, both_fail = \
            self.regressions, self.flakes, self.new_bad, self.new_tests, self.both_fail
        unstable = self.unstable
        for part in parts:
            b, p = base_res[part], pat_res[part]
            for t in sorted(set(b) | set(p)):
                rb, rp = b.get(t), p.get(t)
                if rb is None:
                    new_tests.append((part, t))
                    bad = rp.outcome != "PASS"
                elif rb.outcome == "PASS":
                    bad = rp is None or rp.outcome != "PASS"
                else:
                    if rb.outcome == "FAIL" and rp is not None and rp.outcome == "FAIL":
                        both_fail.append((part, t, rp.msg))
                    bad = False
                if not bad:
                    continue
                first = rp or Result("FAIL", 0, "gone: the patched build does not list it")
                log(f"patched: {part} {t}: {first.outcome} ({first.msg}); running it again")
                again = first
                for _ in range(RERUNS if rp is not None else 0):
                    again = patched.rerun(part, t)
                    if again.outcome == "PASS":
                        break
                if again.outcome == "PASS":
                    flakes.append((part, t, first))
                    p[t] = again
                    continue
                if rb is not None and rp is not None:
                    # The base's pass may be cached from a run under
                    # another load: run the test on the base now, in turn
                    # with the patched build, RECHECKS times each. It is a
                    # regression only if the base passes every time and
                    # the patched build fails all but once at most;
                    # otherwise it is unstable on both.
                    if self.base_now is None:
                        self.base_now = Side("base", os.path.join(self.basedir, "build", "qemu"),
                                             os.path.join(WORK, "regress", "base-again"),
                                             self.jobs)
                        self.base_now.prepare()
                    b_now, p_now = [], []
                    for _ in range(RECHECKS):
                        b_now.append(self.base_now.rerun(part, t))
                        p_now.append(patched.rerun(part, t))
                    b_bad = [r for r in b_now if r.outcome != "PASS"]
                    p_bad = [r for r in p_now if r.outcome != "PASS"]
                    log(f"in turn: {part} {t}: base {len(b_now) - len(b_bad)} of {RECHECKS} "
                        f"passed, patched {len(p_now) - len(p_bad)} of {RECHECKS}")
                    if b_bad or len(p_bad) < RECHECKS - 1:
                        worst = (b_bad or p_bad)[0]
                        unstable.append((part, t, f"run in turn {RECHECKS} times each: "
                                         f"base failed {len(b_bad)}, patched {len(p_bad)}; "
                                         f"{worst.outcome}: {worst.msg}"))
                        p[t] = again
                        continue
                (new_bad if rb is None else regressions).append((part, t, first, again))
                if rp is not None:
                    p[t] = again

    def cleanup(self):
        if self.base_now is not None:
            self.base_now.cleanup()

    def failed(self):
        """A regression, or a new test that does not pass."""
        return bool(self.regressions or self.new_bad)


def report(parts, basedir, build, base_res, base_secs, base_cached, pat_res, pat_secs,
           verdict, logdir, t_all):
    """Print both sides' counts and times per part, the lists of VERDICT
    (a Comparison) and the closing line, the one './dih test' prints."""
    regressions, flakes, new_bad, new_tests, both_fail, unstable = \
        verdict.regressions, verdict.flakes, verdict.new_bad, verdict.new_tests, \
        verdict.both_fail, verdict.unstable
    print()
    print(f"QEMU regression net: base {basedir}/build/qemu, patched {build}")
    tb, tp = {k: 0 for k in RESULTS}, {k: 0 for k in RESULTS}
    rows = [("part", "base", "patched")]
    for part in parts:
        cb, cp = counts(base_res[part]), counts(pat_res[part])
        for k in RESULTS:
            tb[k] += cb[k]
            tp[k] += cp[k]
        rows.append((part, f"{fmt_counts(cb)} ({base_secs[part]:.0f} s" +
                     (", cached)" if part in base_cached else ")"),
                     f"{fmt_counts(cp)} ({pat_secs[part]:.0f} s)"))
    rows.append(("all", fmt_counts(tb), fmt_counts(tp)))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:{w[0]}}  {r[1]:{w[1]}}  {r[2]}")
    if base_cached:
        print("base results cached from: " + ", ".join(
            f"{p} {d}" for p, d in base_cached.items()))

    def show(title, items):
        print(f"\n{title}: {len(items) or 'none'}")
        for it in items:
            part, t = it[0], it[1]
            rest = it[2:]
            if len(rest) == 2:
                first, again = rest
                print(f"  {part} {t}: {first.outcome}: {first.msg}")
                if again.msg != first.msg or again.outcome != first.outcome:
                    print(f"      again: {again.outcome}: {again.msg}")
            elif len(rest) == 1 and isinstance(rest[0], Result):
                print(f"  {part} {t}: first run {rest[0].outcome}: {rest[0].msg}")
            elif rest:
                print(f"  {part} {t}: {rest[0]}")
            else:
                r = pat_res[part].get(t)
                print(f"  {part} {t}: {r.outcome if r else 'gone'}")

    show(f"REGRESSIONS (pass on base, not on patched, {RERUNS + 1} times)", regressions)
    show(f"new tests failing or skipped ({RERUNS + 1} times)", new_bad)
    show("flakes (failed on patched, passed when run again)", flakes)
    show("fail on both (informative)", both_fail)
    show("unstable on both: fail on the patched build, and on the base or not always "
         "when run in turn (informative)", unstable)
    show("new in the patched tree", new_tests)
    print(f"\nlogs: {logdir}; took {time.monotonic() - t_all:.0f} s")
    n_new_ok = len(new_tests) - len(new_bad)
    print(f"qemu regression net: base {fmt_counts(tb)}; patched {fmt_counts(tp)}; "
          f"{plural(len(regressions), 'regression')}, {plural(len(flakes), 'flake')}, "
          f"{plural(len(new_tests), 'new test')} ({n_new_ok} passed)")
