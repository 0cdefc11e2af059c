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
import hashlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.environ.get("DIH_WORK", os.path.join(TOP, "work"))
PQ = os.path.join(TOP, "tools", "pq")
PATH = "/usr/lib/ccache:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# --- The test set.  Changing any of this changes the key of the cached
# --- base results (definition()), so the base runs again.
NET_VERSION = 1
# Standalone qtests touching block devices, run when the build has them.
STANDALONE = ["ide-test", "ahci-test", "cdrom-test", "fdc-test",
              "usb-hcd-uhci-test", "usb-hcd-ehci-test", "usb-hcd-xhci-test",
              "drive_del-test", "hd-geo-test", "device-plug-test"]
# The migration qtests (tests/qtest/meson.build builds them on the
# migration framework); in 10.2.2 with tools/pq's configuration the x86_64
# target has migration-test only. No '--full': its default quick mode.
MIGRATION = re.compile(r"^(migration-test|migration-compat-.*|dbus-vmstate-test|virtio-net-failover)$")
IOTEST_FORMATS = ["raw", "qcow2"]
IOTEST_GROUP = "quick"
# How often a test that looks like a regression is run again
RERUNS = 2
# How often one that still fails then is run on the base and on the
# patched build in turn before it is called a regression
RECHECKS = 6
# Seconds a qtest binary may run without reporting a test result, and an
# iotest may run, before it is killed and counted as failed (hung).
QTEST_TIMEOUT = 300
IOTEST_TIMEOUT = 300
# Binaries whose tests are quick: cdrom-test's boot tests take about a
# second each, and one that cannot boot polls for 600 s before it fails
# (with Debian's SeaBIOS 1.16.2 the am53c974 and dc390 ones never boot).
QTEST_TIMEOUTS = {"cdrom-test": 60}
# Fixed, so both sides see the same allocator behaviour.
MALLOC_PERTURB = "85"
# Binaries that run in chunks of this many tests (each chunk a process of
# its own, with -p for each of its tests), spread over the jobs; the others
# run whole, as meson runs them. A migration test takes some 35 s under TCG.
CHUNKS = {"qos-test": 8, "migration-test": 1, "cdrom-test": 1}
# A test that hung on the base gets this many seconds on the patched side:
# it cannot be a regression, and it should not cost QTEST_TIMEOUT again.
HUNG_ON_BASE_TIMEOUT = 30
PARTS = ["qtests"] + ["iotests-" + f for f in IOTEST_FORMATS]

RESULTS = ("PASS", "FAIL", "SKIP")
# The lines of a test's output that tell why it failed: its own messages
# ('# ...'), GLib's and QEMU's errors; not the chatter of helpers such as
# xorrisofs.
NOTEWORTHY = re.compile(r"^# |error|fail|assert|abort|bail out|warning|qemu-|signal|"
                        r"unexpected|timed? ?out|refused|cannot|can't|unable|not found|"
                        r"no such", re.I)


def log(msg):
    print(f"[regress] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"[regress] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def definition(part):
    """The test-set definition of PART, the key of its cached results."""
    lines = [f"dih qemu regression net {NET_VERSION}", f"part {part}",
             f"MALLOC_PERTURB_ {MALLOC_PERTURB}"]
    if part == "qtests":
        lines += ["qos-test: every path of qos-test -l",
                  "standalone: " + " ".join(STANDALONE),
                  "migration: " + MIGRATION.pattern + " (quick)",
                  f"timeout {QTEST_TIMEOUT} s without a result, " +
                  " ".join(f"{k} {v} s" for k, v in sorted(QTEST_TIMEOUTS.items())),
                  "chunks: " + " ".join(f"{k}={v}" for k, v in sorted(CHUNKS.items())),
                  # cdrom-test registers no test without xorrisofs.
                  "xorrisofs: " + ("yes" if shutil.which("xorrisofs", path=PATH) else "no")]
    else:
        fmt = part.split("-", 1)[1]
        lines += [f"check -{fmt} -g {IOTEST_GROUP}, one test per check run",
                  f"timeout {IOTEST_TIMEOUT} s"]
    return "\n".join(lines) + "\n"


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


# --- Processes.

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


def counts(results):
    c = {k: 0 for k in RESULTS}
    for r in results.values():
        c[r.outcome] += 1
    return c


def plural(n, what):
    return f"{n} {what}" + ("" if n == 1 else "s")


def fmt_counts(c):
    return f"{c['PASS']} passed {c['FAIL']} failed {c['SKIP']} skipped"


def pq(*args):
    out = subprocess.run([PQ, *args], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, DIH_WORK=WORK))
    if out.returncode != 0:
        die(f"tools/pq {' '.join(args)} failed")
    return out.stdout.strip().splitlines()[-1]


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
    resdir = os.path.join(basedir, "results")
    key = lambda part: hashlib.sha256((basedir + "\n" + definition(part))
                                      .encode()).hexdigest()[:16]
    base_res, base_meta, base_secs, base_cached = {}, {}, {}, {}
    todo = []
    for part in parts:
        path = os.path.join(resdir, f"{part}-{key(part)}.tsv")
        if os.path.exists(path) and not args.base_again:
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
        regressions, flakes, new_bad, new_tests, both_fail = [], [], [], [], []
        unstable = []
        base_now = None
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
                    if base_now is None:
                        base_now = Side("base", os.path.join(basedir, "build", "qemu"),
                                        os.path.join(WORK, "regress", "base-again"), jobs)
                        base_now.prepare()
                    b_now, p_now = [], []
                    for _ in range(RECHECKS):
                        b_now.append(base_now.rerun(part, t))
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
    finally:
        patched.cleanup()
        if base_now is not None:
            base_now.cleanup()

    # --- report
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
    print(f"\nlogs: {patched.logdir}; took {time.monotonic() - t_all:.0f} s")
    n_new_ok = len(new_tests) - len(new_bad)
    print(f"qemu regression net: base {fmt_counts(tb)}; patched {fmt_counts(tp)}; "
          f"{plural(len(regressions), 'regression')}, {plural(len(flakes), 'flake')}, "
          f"{plural(len(new_tests), 'new test')} ({n_new_ok} passed)")
    return 1 if regressions or new_bad else 0


if __name__ == "__main__":
    sys.exit(main())
