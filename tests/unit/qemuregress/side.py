"""One side, the base or the patched build: its run directory, building
its tests, listing and running its qtests (GTest binaries in TAP mode) and
iotests (tests/qemu-iotests/check -tap, one test a run)."""

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .common import PATH, die, log
from .proc import Proc
from .results import Result, one_line
from .testset import (CHUNKS, HUNG_ON_BASE_TIMEOUT, IOTEST_GROUP, IOTEST_TIMEOUT,
                      MALLOC_PERTURB, MIGRATION, QTEST_TIMEOUT, QTEST_TIMEOUTS,
                      STANDALONE)

# The lines of a test's output that tell why it failed: its own messages
# ('# ...'), GLib's and QEMU's errors; not the chatter of helpers such as
# xorrisofs.
NOTEWORTHY = re.compile(r"^# |error|fail|assert|abort|bail out|warning|qemu-|signal|"
                        r"unexpected|timed? ?out|refused|cannot|can't|unable|not found|"
                        r"no such", re.I)


def short_dir(path):
    """PATH itself, or a short symlink to it in /tmp: unix socket paths
    (sun_path) hold 107 bytes, and qtests and iotests put their sockets
    below TMPDIR and SOCK_DIR; iotests 197 and 215 refuse a TEST_DIR with
    characters other than [-_a-zA-Z0-9/]. Returns (path, link or None)."""
    os.makedirs(path, exist_ok=True)
    if len(path) <= 40 and re.fullmatch(r"[-_a-zA-Z0-9/]+", path):
        return path, None
    while True:
        link = "/tmp/dih-regress-" + os.urandom(4).hex()
        try:
            os.symlink(path, link)
            return link, link
        except FileExistsError:
            continue


# --- One side: a build and the directory its run writes to.

class Side:
    def __init__(self, name, build, rundir, jobs, lock=None):
        self.name, self.build, self.rundir, self.jobs, self.lock = \
            name, build, rundir, jobs, lock
        self.src = None
        with open(os.path.join(build, "config-host.mak"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("SRC_PATH="):
                    self.src = line.split("=", 1)[1].strip()
        if not self.src:
            die(f"no SRC_PATH in {build}/config-host.mak")
        self.tmp_links = []
        self.hung_on_base = set()
        # the base's registered qtests, on the patched side
        self.base_qtests = None
        # build the tests with ninja (not with --no-build)
        self.may_build = True
        self.rerun_n = 0
        self.logdir = os.path.join(rundir, "logs")

    def prepare(self):
        shutil.rmtree(self.rundir, ignore_errors=True)
        os.makedirs(self.logdir)
        # Where the tests write (TMPDIR, the iotests' TEST_DIR and SOCK_DIR):
        # below the run directory, reached through a short path.
        self.short, link = short_dir(self.rundir)
        if link:
            self.tmp_links.append(link)
        self.tmpdir = os.path.join(self.short, "tmp")
        os.makedirs(self.tmpdir)
        # The qtests' working directory. Under meson they run in the build's
        # root, and migration-test's analyze-script test runs
        # scripts/analyze-migration.py relative to it; here the build stays
        # as it is.
        self.cwd = os.path.join(self.rundir, "cwd")
        os.makedirs(self.cwd)
        os.symlink(os.path.join(self.build, "scripts"), os.path.join(self.cwd, "scripts"))

    def cleanup(self):
        for link in self.tmp_links:
            try:
                os.unlink(link)
            except FileNotFoundError:
                pass
        self.tmp_links = []
        shutil.rmtree(os.path.join(self.rundir, "tmp"), ignore_errors=True)

    def registered_qtests(self):
        """Names of the x86_64 qtests the build's meson registers."""
        import json
        path = os.path.join(self.build, "meson-info", "intro-tests.json")
        try:
            with open(path, encoding="utf-8") as f:
                tests = json.load(f)
        except OSError as e:
            die(f"cannot read the test list of {self.build}: {e}")
        return {t["name"].split("/", 1)[1] for t in tests
                if t["name"].startswith("qtest-x86_64/")}

    def qtest_names(self):
        """The qtests to run: qos-test, the STANDALONE and MIGRATION ones
        the build registers and, on the patched side, every x86_64 qtest
        the base does not register (the series' own)."""
        have = self.registered_qtests()
        if "qos-test" not in have:
            die(f"{self.build} has no qos-test")
        names = ["qos-test"] + [t for t in STANDALONE if t in have]
        names += sorted(t for t in have if MIGRATION.match(t))
        if self.base_qtests is not None:
            names += sorted(have - self.base_qtests - set(names))
        return names

    def ninja(self, targets):
        if not self.may_build:
            return
        cmd = ["ninja", "-C", self.build] + targets
        if self.lock:
            os.makedirs(os.path.dirname(self.lock), exist_ok=True)
            cmd = ["flock", self.lock] + cmd
        logf = os.path.join(self.rundir, "ninja.log")
        with open(logf, "w") as f:
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, PATH=PATH))
        if rc != 0:
            with open(logf, errors="replace") as f:
                err = [l.rstrip() for l in f if re.search(r"error|FAILED", l)]
            print("\n".join(err[:20]), file=sys.stderr)
            die(f"building the tests in {self.build} failed (log: {logf})")

    def python(self):
        venv = os.path.join(self.build, "pyvenv", "bin", "python3")
        return venv if os.access(venv, os.X_OK) else "/usr/bin/python3"

    def env(self, extra=None):
        b = self.build
        env = {"PATH": PATH, "LC_ALL": "C.UTF-8", "HOME": os.environ.get("HOME", "/root"),
               "TMPDIR": self.tmpdir, "MALLOC_PERTURB_": MALLOC_PERTURB,
               "QTEST_QEMU_BINARY": os.path.join(b, "qemu-system-x86_64"),
               "QTEST_QEMU_IMG": os.path.join(b, "qemu-img"),
               "QTEST_QEMU_STORAGE_DAEMON_BINARY":
                   os.path.join(b, "storage-daemon", "qemu-storage-daemon"),
               "G_TEST_DBUS_DAEMON": os.path.join(self.src, "tests", "dbus-vmstate-daemon.sh"),
               "PYTHON": self.python()}
        env.update(extra or {})
        return env

    # --- qtests

    def list_gtest(self, name):
        binary = os.path.join(self.build, "tests", "qtest", name)
        try:
            out = subprocess.run([binary, "-l"], env=self.env(), cwd=self.cwd,
                                 stdin=subprocess.DEVNULL, capture_output=True,
                                 text=True, errors="replace", timeout=300)
        except subprocess.TimeoutExpired:
            return None, "listing its tests timed out"
        paths = [l.strip() for l in out.stdout.splitlines() if l.startswith("/")]
        if out.returncode != 0:
            return None, f"'{name} -l' exited with status {out.returncode}: " + \
                one_line(out.stderr.splitlines()[-3:])
        return paths, ""

    def timeout_for(self, name, todo, res):
        """The time the next test of TODO (the first not in RES) may take."""
        nxt = next((p for p in todo if p not in res), None)
        if nxt is not None and f"{name}:{nxt}" in self.hung_on_base:
            return HUNG_ON_BASE_TIMEOUT
        return QTEST_TIMEOUTS.get(name, QTEST_TIMEOUT)

    def run_gtest(self, name, paths, select, logname):
        """Run binary NAME in TAP mode (all its tests, or with SELECT the
        PATHS given with -p), resuming after a crash or a hang with the
        tests not yet run. Returns {path: Result}."""
        binary = os.path.join(self.build, "tests", "qtest", name)
        res = {}
        todo = list(paths)
        tap = re.compile(r"^(ok|not ok) \d+ (/\S*)(?:\s+#\s*(SKIP|TODO)\b\s*(.*))?")
        with open(os.path.join(self.logdir, logname + ".log"), "w",
                  encoding="utf-8") as logf:
            while todo:
                args = [binary, "--tap", "-k"]
                if select:
                    for p in todo:
                        args += ["-p", p]
                proc = Proc(args, self.env(), self.cwd, logf)
                context, hung = [], False
                t0 = time.monotonic()
                for line in proc.lines(self.timeout_for(name, todo, res)):
                    if line is None:
                        hung = True
                        proc.kill()
                        break
                    m = tap.match(line)
                    if not m:
                        if re.match(r"^1\.\.\d+$", line):
                            # what the binary printed while setting up
                            context = []
                        elif NOTEWORTHY.search(line) and not re.match(
                                r"# (Start of|End of|starting QEMU|random seed)", line):
                            context = (context + [line])[-4:]
                        continue
                    now = time.monotonic()
                    path, outcome = m.group(2), m.group(1)
                    if path in res or path not in paths:
                        # a -p prefix matched more than that test
                        continue
                    if outcome == "not ok":
                        r = Result("FAIL", now - t0, one_line(context))
                    elif m.group(3) == "SKIP":
                        r = Result("SKIP", now - t0, m.group(4) or "")
                    else:
                        r = Result("PASS", now - t0)
                    res[path] = r
                    context, t0 = [], now
                    proc.progress(self.timeout_for(name, todo, res))
                rc = proc.finish()
                left = [p for p in todo if p not in res]
                if not left:
                    break
                if not select:
                    # a resumed run must name its tests
                    select = True
                first = left[0]
                if hung:
                    why = f"hung: no result for {proc.timeout} s, killed"
                elif rc < 0:
                    why = f"killed by signal {-rc}"
                elif rc != 0:
                    why = f"exited with status {rc}"
                else:
                    why = "not run (the binary exited with status 0 without it)"
                res[first] = Result("FAIL", time.monotonic() - t0,
                                    one_line([why] + context))
                todo = left[1:]
        return res

    def qtest_jobs(self, estimate):
        """The qtest part as jobs (name, paths, select), longest first."""
        jobs, listed = [], {}
        names = self.qtest_names()
        with ThreadPoolExecutor(self.jobs["qtests"]) as pool:
            lists = list(pool.map(self.list_gtest, names))
        for name, (paths, err) in zip(names, lists):
            if paths is None:
                listed[name] = err
                continue
            if not paths:
                log(f"{self.name}: {name} lists no test")
                continue
            if name in CHUNKS:
                n = CHUNKS[name]
                for i in range(0, len(paths), n):
                    jobs.append((name, paths[i:i + n], True))
            else:
                jobs.append((name, paths, False))
        jobs.sort(key=lambda j: -sum(estimate.get(f"{j[0]}:{p}", 3.0) for p in j[1]))
        return jobs, listed

    def build_tests(self, parts):
        """Build what PARTS run. First the binaries, which also configures
        the build again when a meson.build changed (and with it the list of
        qtests), then the qtests."""
        self.ninja(["qemu-system-x86_64", "qemu-img", "qemu-io", "qemu-nbd",
                    "storage-daemon/qemu-storage-daemon"])
        if "qtests" in parts:
            self.ninja([f"tests/qtest/{n}" for n in self.qtest_names()])

    def run_qtests(self, estimate):
        jobs, broken = self.qtest_jobs(estimate)
        results = {f"{n}:(list)": Result("FAIL", 0, err) for n, err in broken.items()}

        def one(job, i):
            name, paths, select = job
            r = self.run_gtest(name, paths, select, f"{name}.{i}")
            return {f"{name}:{p}": v for p, v in r.items()}

        with ThreadPoolExecutor(self.jobs["qtests"]) as pool:
            for r in pool.map(lambda a: one(*a), [(j, i) for i, j in enumerate(jobs)]):
                results.update(r)
        return results

    # --- iotests

    def check_args(self, fmt):
        it = "tests/qemu-iotests"
        return [self.python(), os.path.join(self.build, it, "check"), "-tap", f"-{fmt}",
                "--source-dir", os.path.join(self.src, it),
                "--build-dir", os.path.join(self.build, it)]

    def iotest_env(self, fmt):
        """The directory the iotests of FMT run in, and their environment:
        TEST_DIR and SOCK_DIR below it (check gives each test a
        subdirectory of both)."""
        base = os.path.join(self.short, "iotests-" + fmt)
        return base, self.env({"TEST_DIR": os.path.join(base, "scratch"),
                               "SOCK_DIR": os.path.join(base, "sock")})

    def list_iotests(self, fmt):
        base, env = self.iotest_env(fmt)
        os.makedirs(base, exist_ok=True)
        out = subprocess.run(self.check_args(fmt) + ["-n", "-g", IOTEST_GROUP], env=env,
                             cwd=base, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, errors="replace")
        if out.returncode != 0:
            die(f"{self.name}: listing the iotests failed: {out.stderr.strip()}")
        return [l.strip() for l in out.stdout.splitlines() if l.strip()]

    def run_iotest(self, fmt, test, again=False):
        base, env = self.iotest_env(fmt)
        os.makedirs(base, exist_ok=True)
        t0 = time.monotonic()
        tap = re.compile(rf"^(ok|not ok) {re.escape(fmt)} (\S+)(\s+# SKIP)?")
        outcome, lines = None, []
        logname = f"iotest-{fmt}-{test}" + (".again" if again else "")
        with open(os.path.join(self.logdir, logname + ".log"), "w",
                  encoding="utf-8") as logf:
            proc = Proc(self.check_args(fmt) + [test], env, base, logf)
            for line in proc.lines(IOTEST_TIMEOUT):
                if line is None:
                    proc.kill()
                    outcome = Result("FAIL", IOTEST_TIMEOUT,
                                     f"hung: killed after {IOTEST_TIMEOUT} s")
                    break
                m = tap.match(line)
                if m and m.group(2) == test:
                    outcome = Result("SKIP" if m.group(3) else
                                     "PASS" if m.group(1) == "ok" else "FAIL")
                elif not re.match(r"^(#|TAP version|1\.\.\d+$)", line):
                    lines.append(line)
            rc = proc.finish()
        secs = time.monotonic() - t0
        if outcome is None:
            outcome = Result("FAIL", secs, one_line([f"check exited with status {rc}"]
                                                    + lines[-3:]))
        outcome.secs = secs
        scratch = os.path.join(env["TEST_DIR"], f"{fmt}-file-{test}")
        if outcome.outcome == "FAIL" and not outcome.msg:
            # check -tap prints the diff against the reference output
            diff = [l for l in lines if re.match(r"^[-+](?![-+]{2} )", l)]
            outcome.msg = one_line((diff or lines)[:4])
        elif outcome.outcome == "SKIP":
            notrun = os.path.join(scratch, os.path.basename(test) + ".notrun")
            try:
                with open(notrun, encoding="utf-8", errors="replace") as f:
                    outcome.msg = one_line(f.read().splitlines())
            except OSError:
                pass
        if outcome.outcome == "FAIL":
            # the output that differs, beside the log (a run again replaces
            # the scratch directory)
            bad = os.path.join(scratch, os.path.basename(test) + ".out.bad")
            if os.path.exists(bad):
                shutil.copy(bad, os.path.join(self.logdir, logname + ".out.bad"))
        else:
            shutil.rmtree(scratch, ignore_errors=True)
        return outcome

    def run_iotests(self, fmt, estimate):
        tests = self.list_iotests(fmt)
        if not tests:
            die(f"{self.name}: check -{fmt} -g {IOTEST_GROUP} lists no test")
        tests.sort(key=lambda t: -estimate.get(t, 5.0))
        with ThreadPoolExecutor(self.jobs["iotests"]) as pool:
            out = pool.map(lambda t: self.run_iotest(fmt, t), tests)
            return dict(zip(tests, out))

    def run_part(self, part, estimate):
        if part == "qtests":
            return self.run_qtests(estimate)
        return self.run_iotests(part.split("-", 1)[1], estimate)

    def rerun(self, part, test):
        """Run one test of PART again."""
        if part == "qtests":
            name, _, path = test.partition(":")
            if not path.startswith("/"):
                return Result("FAIL", 0, "cannot be run again")
            self.rerun_n += 1
            return self.run_gtest(name, [path], True, f"{name}.again{self.rerun_n}")[path]
        return self.run_iotest(part.split("-", 1)[1], test, again=True)
