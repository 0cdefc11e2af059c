#!/usr/bin/python3
"""QEMU regression net: QEMU's own block-device tests, patched against base.

  qemu-regress.py [options] [PATCHED_BUILD]

Runs QEMU's existing tests for the x86_64 target that touch block devices
on the patched build (default: $DIH_WORK/build/qemu) and on the unpatched
base built with the very same configure options ('tools/pq base-build
qemu', in $CACHE/regress/qemu-<version>-<key>/), and compares them test by
test:

  qtests         the whole qos-test graph (every path 'qos-test -l'
                 lists), the standalone qtests of STANDALONE that the build
                 registers, and its migration qtests (migration-test in its
                 default, quick, mode);
  iotests-raw    tests/qemu-iotests/check -raw, every test of group quick;
  iotests-qcow2  the same with -qcow2.

A test is one qos path or GTest test case (binary:path) or one iotest.
It is a regression when it passes on the base and does not pass on the
patched build (it fails, is skipped, or is gone) RERUNS + 1 times: each
such test is run up to RERUNS more times on the patched build, alone, and
one that passes then is reported as a flake (iotest 153, for example,
races with the release of an image lock when several tests run at once,
on the base as well). One that fails every time is then run RECHECKS
times on the base and on the patched build in turn, because the base's
result may be cached from a run under another load: it is a regression
if the base passes every time and the patched build fails all but once at
most; otherwise it is unstable on both (iotest iothreads-create, whose
job times out after 5 s, fails on both on a loaded 2-core machine),
reported but not a regression. A test the base does not have (the series' own qtests) must
pass; a SKIP of it is a failure. GTest '# SKIP' and iotests' 'not run' are
skips, never passes.

The base's results are cached per part, keyed by the base build and the
test-set definition (definition()), in <base dir>/results/, so later runs
(from any clone on this machine) run the patched side only; the first run
builds the base unless it is built already (on 2 cores about 5 minutes
when ccache holds the patched build, which mirrors its layout; 7 on an
empty cache).

The tests write below the run directory (<base dir>/run, or
$DIH_WORK/regress for the patched side: logs/ with each process's output
and, of a failed iotest, its .out.bad; tmp/ is TMPDIR; iotests-<fmt>/ has
TEST_DIR and SOCK_DIR), reached through a short symlink in /tmp when its
path is too long for unix sockets; qtests run in its cwd/, where
'scripts' points at the build's scripts. The builds are not written to.
With DIH_QEMU_BUILD_LOCK set, ninja in the patched build runs under
'flock' of that file, and the patched side holds it shared while it runs.

Exit status: 0 when there is no regression and every new test passed, 1
otherwise, 2 when the net could not run.
"""

import argparse
import fcntl
import os
import signal
import sys
import time

# The net's modules, by job: tests/unit/qemuregress/ (see its __init__.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from qemuregress.base import base_results, pq  # noqa: E402
from qemuregress.common import WORK, die, log  # noqa: E402
from qemuregress.compare import Comparison, report  # noqa: E402
from qemuregress.proc import stop_all  # noqa: E402
from qemuregress.results import counts, fmt_counts, write_results  # noqa: E402
from qemuregress.side import Side  # noqa: E402
from qemuregress.testset import PARTS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", nargs="?", default=os.path.join(WORK, "build", "qemu"),
                    help="the patched QEMU build (default: %(default)s)")
    cores = os.cpu_count() or 2
    env_jobs = int(os.environ.get("DIH_REGRESS_JOBS", "0") or 0)
    ap.add_argument("--jobs", "-j", type=int, default=env_jobs or None,
                    help="tests run at once in every part (default: DIH_REGRESS_JOBS, "
                    "else as below)")
    # qtests mostly wait (for QEMU, for a migration to converge): on 2 cores
    # they take 358 s with 2 at once, 194 s with 4, 114 s with 8; iotests are
    # CPU-bound (4 at once as fast as 6, which makes some flaky).
    ap.add_argument("--qtest-jobs", type=int, default=4 * cores,
                    help="qtest processes at once (default: 4 per core, %(default)s)")
    ap.add_argument("--iotest-jobs", type=int, default=2 * cores,
                    help="iotests at once (default: 2 per core, %(default)s)")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="comma-separated subset of " + ",".join(PARTS))
    ap.add_argument("--base-again", action="store_true",
                    help="run the base's tests again instead of using cached results")
    ap.add_argument("--base-only", action="store_true",
                    help="only make sure the base's results are there")
    ap.add_argument("--no-build", action="store_true",
                    help="do not build the tests in the patched build (run what is there)")
    args = ap.parse_args()
    jobs = {"qtests": args.jobs or args.qtest_jobs, "iotests": args.jobs or args.iotest_jobs}
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    parts = [p for p in args.parts.split(",") if p]
    for p in parts:
        if p not in PARTS:
            die(f"unknown part {p} (parts: {', '.join(PARTS)})")
    build = os.path.abspath(args.build)
    if not os.access(os.path.join(build, "qemu-system-x86_64"), os.X_OK):
        die(f"no QEMU build in {build} (tools/pq build qemu)")

    t_all = time.monotonic()
    # --- the base: cached results, or build it and run it
    basedir = pq("base-dir", "qemu")
    base_res, base_meta, base_secs, base_cached = base_results(basedir, parts, jobs,
                                                               args.base_again)
    if args.base_only:
        return 0

    # --- the patched side
    patched = Side("patched", build, os.path.join(WORK, "regress"), jobs,
                   lock=os.environ.get("DIH_QEMU_BUILD_LOCK"))
    patched.prepare()
    lock = os.environ.get("DIH_QEMU_BUILD_LOCK")
    patched.hung_on_base = {t for part in parts for t, r in base_res[part].items()
                            if r.outcome == "FAIL" and r.msg.startswith("hung")}
    if "qtests" in parts and base_meta["qtests"].get("registered"):
        patched.base_qtests = set(base_meta["qtests"]["registered"].split())
    patched.may_build = not args.no_build
    pat_res, pat_secs = {}, {}
    verdict = Comparison(basedir, jobs)
    try:
        t0 = time.monotonic()
        patched.build_tests(parts)
        log(f"patched: building the tests took {time.monotonic() - t0:.0f} s")
        patched.may_build = False
        if lock:
            # Whoever builds in the patched build while its tests run takes
            # the lock first (exclusively): hold it shared until the end.
            lockf = open(lock, "a")
            log(f"patched: waiting for a shared lock on {lock}")
            fcntl.flock(lockf, fcntl.LOCK_SH)
        for part in parts:
            log(f"patched: {part} ...")
            est = {k: v.secs for k, v in base_res[part].items()}
            t0 = time.monotonic()
            pat_res[part] = patched.run_part(part, est)
            pat_secs[part] = time.monotonic() - t0
            write_results(os.path.join(patched.rundir, f"{part}.tsv"), pat_res[part],
                          part, pat_secs[part], build)
            log(f"patched: {part}: {fmt_counts(counts(pat_res[part]))} "
                f"({pat_secs[part]:.0f} s)")

        # --- compare; what looks bad runs once more
        verdict.run(parts, base_res, pat_res, patched)
    finally:
        patched.cleanup()
        verdict.cleanup()

    # --- report
    report(parts, basedir, build, base_res, base_secs, base_cached, pat_res, pat_secs,
           verdict, patched.logdir, t_all)
    return 1 if verdict.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
