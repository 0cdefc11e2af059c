"""End-to-end harness: isolated libvirt daemons on the patched builds.

A Host is one virtqemud from the patched libvirt build with its own config,
state, logs and sockets. It runs in a private mount namespace in which the
build's compiled-in configuration and state directories (<prefix>/etc,
<prefix>/var and /run) are bind mounts of the host's own directories, so nothing of the machine's libvirt is read or touched and
several hosts can run side by side. Every process a Host starts is stopped
by Host.stop(), also when a test fails.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.environ.get("DIH_WORK", os.path.join(TOP, "work"))
LIBVIRT_BUILD = os.path.join(WORK, "build", "libvirt")
QEMU_BUILD = os.path.join(WORK, "build", "qemu")
LIBVIRT_PREFIX = os.path.join(WORK, "install", "libvirt")

VIRSH = os.path.join(LIBVIRT_BUILD, "tools", "virsh")
VIRTQEMUD = os.path.join(LIBVIRT_BUILD, "src", "virtqemud")
QEMU = os.environ.get("DIH_QEMU", os.path.join(QEMU_BUILD, "qemu-system-x86_64"))

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Failure(Exception):
    pass


def check(cond, what):
    """Assert with a message that says what was expected."""
    if not cond:
        raise Failure(what)


def libvirt_env():
    env = {
        "PATH": PATH,
        "LC_ALL": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/root"),
        "LD_LIBRARY_PATH": os.path.join(LIBVIRT_BUILD, "src"),
        # Load driver modules and helpers from the build tree.
        "LIBVIRT_DIR_OVERRIDE": "1",
        "abs_builddir": LIBVIRT_BUILD,
        "abs_top_builddir": LIBVIRT_BUILD,
    }
    return env


class Host:
    """One isolated virtqemud ('host')."""

    def __init__(self, name, base=None, hostname=None):
        self.name = name
        # The host name inside the daemon's UTS namespace (libvirt's
        # migration cookie carries it); None keeps the machine's.
        self.hostname = hostname
        self.dir = tempfile.mkdtemp(prefix="dih-%s-" % name, dir=base)
        self.etc = os.path.join(self.dir, "etc")
        self.var = os.path.join(self.dir, "var")
        self.run = os.path.join(self.dir, "run")
        self.sockdir = os.path.join(self.dir, "sock")
        self.logdir = os.path.join(self.dir, "log")
        self.uuid = str(uuid.uuid4())
        self.proc = None
        self.uri = "qemu:///system?socket=%s/virtqemud-sock" % self.sockdir

    def _write(self, rel, text):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, qemu_conf_extra=""):
        for d in (self.etc, self.var, self.run, self.sockdir, self.logdir):
            os.makedirs(d, exist_ok=True)
        for d in ("etc", "var"):
            os.makedirs(os.path.join(LIBVIRT_PREFIX, d), exist_ok=True)
        self._write("etc/libvirt/qemu.conf", """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
remember_owner = 0
%s""" % qemu_conf_extra)
        conf = self._write("virtqemud.conf", """\
unix_sock_dir = "%s"
unix_sock_rw_perms = "0700"
host_uuid = "%s"
log_outputs = "1:file:%s/virtqemud.log"
log_filters = "1:qemu 1:conf 3:util 3:rpc 3:event 3:object 3:json 3:file"
""" % (self.sockdir, self.uuid, self.logdir))
        script = (
            "set -e; " +
            ("hostname %s; " % self.hostname if self.hostname else "") +
            "mount --bind {etc} {pfx}/etc; mount --bind {var} {pfx}/var; "
            "mount --bind {run} /run; "
            "mkdir -p {pfx}/var/run {pfx}/var/lib {pfx}/var/cache {pfx}/var/log; "
            "exec {daemon} -f {conf}"
        ).format(etc=self.etc, var=self.var, run=self.run, pfx=LIBVIRT_PREFIX,
                 daemon=VIRTQEMUD, conf=conf)
        self.stderr = open(os.path.join(self.logdir, "daemon.stderr"), "w")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", script],
            env=libvirt_env(), stdout=self.stderr, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure("virtqemud of host %s exited (%s): %s" % (
                    self.name, self.proc.returncode, self.daemon_log_tail()))
            if os.path.exists(os.path.join(self.sockdir, "virtqemud-sock")):
                r = self.virsh("version", check=False)
                if r.returncode == 0:
                    return self
            time.sleep(0.2)
        raise Failure("virtqemud of host %s did not answer within 60 s" % self.name)

    def daemon_log_tail(self, n=30):
        """The daemon's last warnings and errors (its debug log stays in
        the host directory, kept with DIH_KEEP=1)."""
        out = []
        for f in ("daemon.stderr", "virtqemud.log"):
            p = os.path.join(self.logdir, f)
            if os.path.exists(p):
                with open(p, errors="replace") as fh:
                    out += [l for l in fh.read().splitlines()
                            if " : " not in l or " warning : " in l or
                            " error : " in l][-n:]
        return "\n".join(out)

    def virsh(self, *args, check=True, timeout=120, input=None):
        r = subprocess.run([VIRSH, "-q", "-c", self.uri] + list(args),
                           env=libvirt_env(), capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise Failure("virsh %s failed (%d): %s" % (
                " ".join(args), r.returncode, r.stderr.strip()))
        return r

    def qemu_pids(self):
        """PIDs of the QEMU processes this host's daemon started."""
        piddir = os.path.join(self.run, "libvirt", "qemu")
        pids = []
        if os.path.isdir(piddir):
            for f in os.listdir(piddir):
                # driver.pid is the daemon's own lock file.
                if f.endswith(".pid") and f != "driver.pid":
                    with contextlib.suppress(OSError, ValueError):
                        pid = int(open(os.path.join(piddir, f)).read().strip())
                        if pid_alive(pid):
                            pids.append(pid)
        return pids

    def stop(self):
        """Destroy every domain, stop the daemon and anything it left."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                r = self.virsh("list", "--name", check=False, timeout=30)
                for dom in r.stdout.split():
                    self.virsh("destroy", dom, check=False, timeout=30)
        leftovers = self.qemu_pids()
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in leftovers + self.qemu_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if getattr(self, "stderr", None):
            self.stderr.close()

    def cleanup(self):
        self.stop()
        if not os.environ.get("DIH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("--- daemon log of host %s ---\n%s\n" % (
                self.name, self.daemon_log_tail()))
        self.cleanup()
        return False


def stop_process(proc, timeout=10):
    """Terminate proc; kill it if it has not exited after timeout s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_verified(con, dev="vda"):
    """The probe's summary for dev: no I/O error, no bad block, data
    verified. Returns the summary."""
    s = con.summary(dev)
    check(s and s["errors"] == 0 and s["bad"] == 0 and s["verified"] > 0,
          "no guest error, all data verified on %s: %s" % (dev, s))
    return s


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    return True


def domain_xml(name, disks, memory_mib=256, os_extra="", devices_extra="",
               lifecycle=""):
    """A small TCG domain with the given <disk> (and controller) XML."""
    return """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
{os_extra}  </os>
{lifecycle}  <devices>
    <emulator>{qemu}</emulator>
{disks}
{devices_extra}    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
""".format(name=name, mem=memory_mib, qemu=QEMU, disks=disks,
           os_extra=os_extra, devices_extra=devices_extra, lifecycle=lifecycle)


def device_json(argv, driver):
    """The JSON -device arguments of the given driver in a qemu-argv."""
    out = []
    toks = argv.split()
    for i, t in enumerate(toks):
        if t == "-device" and i + 1 < len(toks):
            arg = toks[i + 1].strip("'")
            if arg.startswith("{"):
                d = json.loads(arg)
                if d.get("driver") == driver:
                    out.append(d)
    return out


def run_tests(tests):
    """Run test functions; print one line each and a closing count."""
    passed = failed = 0
    for t in tests:
        name = t.__name__
        start = time.monotonic()
        try:
            t()
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            print("FAIL %s (%.1fs): %s: %s" % (name, time.monotonic() - start,
                                               type(e).__name__, e), flush=True)
        else:
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.monotonic() - start), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


GUEST_DIR = os.environ.get("DIH_GUEST_DIR", "")


def guest_domain_xml(name, disks, console, params, memory_mib=256,
                     extra_devices=""):
    """A TCG guest booting the cached Debian kernel with the probe as
    /init; params become dih.NAME=VALUE on its command line. The domain
    ends when the guest powers off."""
    cmdline = "console=ttyS0 quiet no_timer_check panic=-1 " + " ".join(
        "dih.%s=%s" % kv for kv in params.items())
    os_extra = """    <kernel>{gd}/vmlinuz</kernel>
    <initrd>{gd}/initramfs.img</initrd>
    <cmdline>{cmdline}</cmdline>
""".format(gd=GUEST_DIR, cmdline=cmdline)
    lifecycle = """  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
"""
    serial = """    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
""".format(console=console)
    return domain_xml(name, disks, memory_mib, os_extra=os_extra,
                      devices_extra=extra_devices + serial,
                      lifecycle=lifecycle)


class Console:
    """The guest's serial console log and the probe's lines in it."""

    def __init__(self, path):
        self.path = path

    def lines(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, errors="replace") as f:
            data = f.read()
        # The guest may be in the middle of a line: only complete lines count.
        return [l.strip() for l in data.split("\n")[:-1]]

    def wait_for(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for l in self.lines():
                if l.startswith(prefix):
                    return l
            time.sleep(0.2)
        raise Failure("no %r on the guest console within %d s; last lines:\n%s"
                      % (prefix, timeout, "\n".join(self.lines()[-15:])))

    def ios(self):
        """The probe's I/O records as dicts."""
        out = []
        for l in self.lines():
            if l.startswith("DIH io "):
                out.append(dict(kv.split("=", 1) for kv in l[7:].split()))
        return out

    def summary(self, dev):
        for l in self.lines():
            if l.startswith("DIH summary dev=%s " % dev):
                return {k: (int(v) if v.isdigit() else v) for k, v in
                        (kv.split("=", 1) for kv in l[12:].split())}
        return None


class NbdDisk:
    """The 'cloud disk': nbdkit serving a raw image over a unix socket,
    through its error filter. While the outage file exists every read and
    write fails with EIO, as a storage link that is down."""

    def __init__(self, dirpath, size_mib=64, name="disk"):
        self.img = os.path.join(dirpath, name + ".img")
        self.sock = os.path.join(dirpath, name + ".sock")
        self.outage_file = os.path.join(dirpath, name + ".outage")
        self.size = size_mib << 20
        self.proc = None

    def start(self):
        with open(self.img, "wb") as f:
            f.truncate(self.size)
        self.log = open(self.img + ".nbdkit.log", "w")
        self.proc = subprocess.Popen(
            ["nbdkit", "--foreground", "--unix", self.sock,
             "--filter=error", "file", "file=" + self.img,
             "error=EIO", "error-rate=100%", "error-file=" + self.outage_file],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure("nbdkit did not start")
            time.sleep(0.05)
        return self

    def outage(self, on):
        if on:
            open(self.outage_file, "w").close()
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.outage_file)
        return time.monotonic()

    def stop(self):
        if self.proc:
            stop_process(self.proc)
        if getattr(self, "log", None):
            self.log.close()

    def disk_xml(self, target="vda", bus="virtio", driver_attrs=""):
        return """    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none' {attrs}/>
      <source protocol='nbd'>
        <host transport='unix' socket='{sock}'/>
      </source>
      <target dev='{target}' bus='{bus}'/>
    </disk>""".format(attrs=driver_attrs, sock=self.sock, target=target, bus=bus)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
