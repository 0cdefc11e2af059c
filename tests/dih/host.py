"""An isolated libvirt daemon ("host") from the patched build.

A Host is one virtqemud with its own configuration, state, logs, sockets
and host UUID. It runs in private mount and UTS namespaces in which

- the build's compiled-in configuration, state and runtime directories
  (SYSCONFDIR, LOCALSTATEDIR, RUNSTATEDIR of its configmake.h) are bind
  mounts of the host's own directories, so nothing of the machine's
  libvirt is read or written and several hosts run side by side;
- /dev is an overlay of the machine's /dev without /dev/kvm: the guests
  run under TCG, and libvirt probes QEMU the same way whatever the
  machine's /dev/kvm does (SPEC section 10: a /dev/kvm whose guests cannot
  run makes libvirt re-probe QEMU on every call). Device nodes the machine
  creates later (a new loop device) appear there too, unless the daemon
  looked the name up before it existed.

Every QEMU the daemon starts lives in the same namespaces. Host.stop()
destroys the domains, stops the daemon and kills any QEMU left, also when
a test fails.
"""

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid

import libvirt

from . import environment, libvirt_api
from .process import kill, pid_alive
from .wait import wait_until

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
remember_owner = 0
"""

DAEMON_CONF = """\
unix_sock_dir = "{sockdir}"
unix_sock_rw_perms = "0700"
host_uuid = "{uuid}"
log_outputs = "1:file:{logdir}/virtqemud.log"
log_filters = "1:qemu 1:conf 3:util 3:rpc 3:event 3:object 3:json 3:file"
"""


def dev_submounts():
    """The mount points directly below /dev (devpts, shm, ...), which an
    overlay of /dev does not carry."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if os.path.dirname(point) == "/dev" and point not in points:
                points.append(point)
    return points


class Host:
    """One isolated virtqemud.

    name names its directory; hostname, if given, is the host name in its
    UTS namespace (libvirt's migration cookie carries it); address is the
    loopback address it migrates on (migration.two_hosts); qemu_conf is
    added to its qemu.conf.
    """

    def __init__(self, name, hostname=None, address=None, qemu_conf=""):
        self.name = name
        self.hostname = hostname
        self.address = address
        self.qemu_conf = qemu_conf
        # Its paths go into a URI: letters, digits, - and _ only. Its
        # sockets are in it: a short directory whatever the clone's path.
        self.dir = environment.runtime_dir(
            f"dih-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}-")
        self.etc = os.path.join(self.dir, "etc")
        self.var = os.path.join(self.dir, "var")
        self.run = os.path.join(self.dir, "run")
        self.sockdir = os.path.join(self.dir, "sock")
        self.logdir = os.path.join(self.dir, "log")
        self.uuid = str(uuid.uuid4())
        # The longest of the daemon's sockets.
        environment.socket_path(f"{self.sockdir}/virtqemud-admin-sock")
        self.uri = f"qemu:///system?socket={self.sockdir}/virtqemud-sock"
        self.proc = None
        self.conn = None
        self._daemon_log = None
        self._connect_error = None

    def __repr__(self):
        return f"Host({self.name!r})"

    def _write(self, rel, text):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _namespace_script(self, conf):
        """The shell commands that set up the namespaces and become the
        daemon."""
        q = shlex.quote
        sysconfdir, localstatedir, runstatedir = environment.libvirt_dirs()
        devdir = os.path.join(self.dir, "dev")
        cmds = ["set -e"]
        if self.hostname:
            cmds.append(f"hostname {q(self.hostname)}")
        cmds += [f"mount -t tmpfs -o mode=0700 dih-dev {q(devdir)}",
                 f"mkdir {q(devdir)}/upper {q(devdir)}/work {q(devdir)}/keep"]
        submounts = dev_submounts()
        for i, point in enumerate(submounts):
            cmds += [f"mkdir {q(devdir)}/keep/{i}",
                     f"mount --rbind {q(point)} {q(devdir)}/keep/{i}"]
        cmds += [f"mount -t overlay dih-dev -o lowerdir=/dev,"
                 f"upperdir={q(devdir)}/upper,workdir={q(devdir)}/work /dev",
                 "rm -f /dev/kvm"]
        for i, point in enumerate(submounts):
            cmds.append(f"mount --move {q(devdir)}/keep/{i} {q(point)}")
        # A directory before those inside it (libvirt's LOCALSTATEDIR is
        # in RUNSTATEDIR: see tools/components/libvirt.sh), so that each
        # mkdir below a bind mount lands in the host's own directory.
        binds = sorted(((self.etc, sysconfdir), (self.var, localstatedir),
                        (self.run, runstatedir)),
                       key=lambda b: os.path.normpath(b[1]).count("/"))
        for own, compiled in binds:
            cmds += [f"mkdir -p {q(compiled)}",
                     f"mount --bind {q(own)} {q(compiled)}"]
        cmds += [f"mkdir -p {q(localstatedir)}/{d}"
                 for d in ("run", "lib", "cache", "log")]
        cmds.append(f"exec {q(environment.VIRTQEMUD)} -f {q(conf)}")
        return "; ".join(cmds)

    def start(self):
        """Start the daemon and connect to it."""
        for d in (self.etc, self.var, self.run, self.sockdir, self.logdir,
                  os.path.join(self.dir, "dev")):
            os.makedirs(d, exist_ok=True)
        self._write("etc/libvirt/qemu.conf", QEMU_CONF + self.qemu_conf)
        conf = self._write("virtqemud.conf", DAEMON_CONF.format(
            sockdir=self.sockdir, uuid=self.uuid, logdir=self.logdir))
        self._daemon_log = open(os.path.join(self.logdir, "daemon.stderr"), "a")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", self._namespace_script(conf)],
            stdout=self._daemon_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.conn = wait_until(self._try_connect, 60,
                               f"virtqemud of {self.name} to answer",
                               state=lambda: f"{self._connect_error}\n"
                                             f"{self.daemon_log_tail()}")
        return self

    def _try_connect(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"virtqemud of {self.name} exited "
                               f"({self.proc.returncode}):\n"
                               f"{self.daemon_log_tail()}")
        if not os.path.exists(os.path.join(self.sockdir, "virtqemud-sock")):
            return None
        try:
            return libvirt_api.connect(self.uri)
        except libvirt.libvirtError as e:
            self._connect_error = e
            return None

    def stop_daemon(self):
        """Stop only the daemon (SIGTERM; its domains keep running)."""
        if self.conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.close()
            self.conn = None
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._daemon_log is not None:
            self._daemon_log.close()
            self._daemon_log = None

    def restart_daemon(self):
        """Stop the daemon and start it again on the same configuration
        and state; returns the pid of the old daemon."""
        old = self.proc.pid
        self.stop_daemon()
        self.start()
        return old

    def stop(self):
        """Destroy every domain, stop the daemon and anything it left."""
        if self.conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                for dom in self.conn.listAllDomains(
                        libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
        leftovers = self.qemu_pids()
        self.stop_daemon()
        kill(leftovers + self.qemu_pids())

    def cleanup(self):
        """stop(), then remove the host's directory (kept with
        DIH_KEEP=1)."""
        self.stop()
        environment.keep_or_remove(self.dir)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.report()
        self.cleanup()
        return False

    def report(self):
        """Write the daemon's last warnings and errors and each QEMU's log
        to stderr (after a failure)."""
        sys.stderr.write(f"--- {self.name}: daemon log ---\n"
                         f"{self.daemon_log_tail()}\n")
        qemu_logs = os.path.join(self.var, "log", "libvirt", "qemu")
        if os.path.isdir(qemu_logs):
            for log in sorted(os.listdir(qemu_logs)):
                sys.stderr.write(f"--- {self.name}: {log} ---\n"
                                 f"{tail(os.path.join(qemu_logs, log), 15)}\n")

    @property
    def daemon_pid(self):
        return self.proc.pid

    def daemon_log_tail(self, lines=30):
        """The daemon's last warnings and errors (its debug log stays in
        the host's directory, kept with DIH_KEEP=1)."""
        out = []
        for name in ("daemon.stderr", "virtqemud.log"):
            path = os.path.join(self.logdir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out += [line.rstrip("\n") for line in f
                            if " : " not in line or " warning : " in line
                            or " error : " in line][-lines:]
        return "\n".join(out)

    def qemu_pids(self):
        """PIDs of the live QEMU processes this host's daemon started."""
        piddir = os.path.join(self.run, "libvirt", "qemu")
        pids = []
        if os.path.isdir(piddir):
            for name in os.listdir(piddir):
                # driver.pid is the daemon's own lock file.
                if name.endswith(".pid") and name != "driver.pid":
                    with contextlib.suppress(OSError, ValueError):
                        with open(os.path.join(piddir, name)) as f:
                            pid = int(f.read().strip())
                        if pid_alive(pid):
                            pids.append(pid)
        return pids

    def domain_names(self):
        """Names of all domains, defined or running."""
        return sorted(d.name() for d in self.conn.listAllDomains())

    def virsh_argv(self, *args):
        """The command line of the build's virsh on this host."""
        return [environment.VIRSH, "-c", self.uri] + list(args)


def tail(path, lines):
    """The last lines of a text file."""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
