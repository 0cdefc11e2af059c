#!/usr/bin/python3
"""Run the end-to-end scenarios for meson, one test each.

    run.py --files          print the test files of this directory
                            (test_*.py), one a line: meson makes a test of
                            each of their scenarios
    run.py --list FILE...   print each scenario (pytest test) of the test
                            files as 'NAME FILE::TEST', NAME being meson's
                            test name: test_retry.py::test_short_outage
                            is retry.short_outage
    run.py --check-listed FILE...
                            fail, naming them, when this directory has
                            test files that are not among FILE (added
                            after meson configured: it must configure
                            again to run them)
    run.py FILE::TEST       run one scenario in the patched libvirt's run
                            environment; exit 0 when it passed, 77 (meson's
                            SKIP) when it was skipped, 1 otherwise; the last
                            line says which, with the reason of a skip

FILE is relative to this directory.
"""

import contextlib
import glob
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pytest  # noqa: E402

from dih import environment  # noqa: E402

SKIP = 77
PYTEST_ARGS = ["-p", "no:cacheprovider", f"--rootdir={HERE}"]


def meson_name(node_id):
    """retry.short_outage for test_retry.py::test_short_outage."""
    path, test = node_id.split("::", 1)
    module = os.path.basename(path).removesuffix(".py").removeprefix("test_")
    test = test.removeprefix("test_").replace("[", "-").replace("]", "")
    return f"{module}.{test}"


class Collector:
    def __init__(self):
        self.node_ids = []

    def pytest_collection_finish(self, session):
        self.node_ids = [item.nodeid for item in session.items]


class Outcome:
    def __init__(self):
        self.reports = []

    def pytest_runtest_logreport(self, report):
        self.reports.append(report)


def list_scenarios(files):
    collector = Collector()
    with contextlib.redirect_stdout(sys.stderr):
        rc = pytest.main(["--collect-only", "-q", *PYTEST_ARGS,
                          *(os.path.join(HERE, f) for f in files)],
                         plugins=[collector])
    if rc != 0:
        sys.exit(f"collecting the scenarios of {' '.join(files)} failed")
    for node_id in collector.node_ids:
        print(meson_name(node_id), node_id)
    return 0


def test_files():
    """The test files of this directory, by name."""
    return sorted(os.path.basename(f)
                  for f in glob.glob(os.path.join(HERE, "test_*.py")))


def check_listed(files):
    missing = [f for f in test_files() if f not in files]
    if missing:
        print(f"not among meson's end-to-end tests: {' '.join(missing)} "
              f"(configure again: meson setup --reconfigure BUILDDIR)")
        return 1
    print(f"all {len(files)} test files of {HERE} are among meson's tests")
    return 0


def skip_reason(report):
    """The reason a skipped report gives."""
    if isinstance(report.longrepr, tuple):
        return report.longrepr[2].removeprefix("Skipped: ")
    return str(report.longrepr)


def run_scenario(node_id):
    environment.use_libvirt_build()
    outcome = Outcome()
    start = time.monotonic()
    pytest.main(["-v", "-rs", *PYTEST_ARGS, os.path.join(HERE, node_id)],
                plugins=[outcome])
    took = f"{time.monotonic() - start:.1f} s"
    name = meson_name(node_id)
    if not outcome.reports:
        print(f"{name}: no such scenario")
        return 1
    if any(r.failed for r in outcome.reports):
        print(f"{name}: FAILED after {took}")
        return 1
    skipped = [r for r in outcome.reports if r.skipped]
    if skipped:
        print(f"{name}: skipped: {skip_reason(skipped[0])}")
        return SKIP
    print(f"{name}: passed in {took}")
    return 0


def main(args):
    if args == ["--files"]:
        print("\n".join(test_files()))
        return 0
    if args[:1] == ["--check-listed"]:
        return check_listed(args[1:])
    if args[:1] == ["--list"] and len(args) > 1:
        return list_scenarios(args[1:])
    if len(args) == 1 and "::" in args[0]:
        return run_scenario(args[0])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
