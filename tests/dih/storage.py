"""The disks a test guest can get, each able to give its <disk> XML.

- FileImage: a sparse raw image file;
- NbdDisk: the "cloud disk": nbdkit serving a raw image on a unix socket
  through its error filter, which fails every request with EIO while the
  outage is on, as a storage link that is down; QEMU is the NBD client;
- NbdFile: an NbdDisk's export as a regular file (nbdfuse), which fails
  its reads and writes with EIO during the outage;
- BlockDevice: the seed's storage, a host block device: a loop device
  with direct I/O over an NbdFile, so that its I/O fails during the
  outage as a multipath device's does when its paths are down;
- IscsiTarget: LUN 1 of an iSCSI target on 127.0.0.1 (Debian tgt's tgtd)
  over an NbdFile; QEMU is the iSCSI client (libiscsi); the target can
  also go away and come back (its daemon killed and started again);
- LoopDevice: a loop device over a file, a host block device.

NbdDisk, NbdFile, BlockDevice and IscsiTarget have the same outage(on):
on=True starts the outage, on=False ends it. Each of them and LoopDevice
is a context manager: start() on entry, stop() on exit, which also
undoes a start() that failed half-way. The fixtures nbd_disk,
block_device, iscsi_target and loop_device (dih.fixtures) give a test
one, started.
"""

import contextlib
import os
import socket
import subprocess
import time

from . import domxml, environment
from .process import free_port, stop_process
from .wait import wait_until

# The naming authority of the iSCSI names the tests use (RFC 3720 iqn.).
IQN_AUTHORITY = "iqn.2026-12.org.example.dih"
# The address the iSCSI target listens on.
ISCSI_ADDRESS = "127.0.0.1"


def make_image(path, size_mib):
    """A sparse file of size_mib MiB at path."""
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    return path


def mounted(path, pid="self"):
    """Whether a file system is mounted on path in the mount namespace of
    process pid (this process's by default)."""
    path = os.path.realpath(path)
    with open(f"/proc/{pid}/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def iqn(name):
    """The iSCSI qualified name IQN_AUTHORITY:name, of a target or of an
    initiator (a guest's <initiator>)."""
    return f"{IQN_AUTHORITY}:{name}"


class Started:
    """A context manager of start() and stop(); stop() also undoes a
    start() that failed half-way."""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False


class FileImage:
    """A sparse raw image file in dirpath."""

    def __init__(self, dirpath, name="disk", size_mib=16):
        self.path = make_image(os.path.join(dirpath, name + ".img"), size_mib)

    def disk(self, target="vda", bus="virtio", driver=None):
        return domxml.disk("file", {"file": self.path}, target, bus, driver)


class NbdDisk(Started):
    """nbdkit serving an image through its error filter; outage(True)
    creates the filter's error file, outage(False) removes it."""

    def __init__(self, dirpath, name="disk", size_mib=64):
        self.img = os.path.join(dirpath, name + ".img")
        self.sock = environment.socket_path(
            os.path.join(dirpath, name + ".sock"))
        self.outage_file = os.path.join(dirpath, name + ".outage")
        self.size_mib = size_mib
        self.proc = None
        self._log = None

    def start(self):
        make_image(self.img, self.size_mib)
        self._log = open(self.img + ".nbdkit.log", "w")
        self.proc = subprocess.Popen(
            ["nbdkit", "--foreground", "--unix", self.sock,
             "--filter=error", "file", "file=" + self.img,
             "error=EIO", "error-rate=100%", "error-file=" + self.outage_file],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.proc.poll() is not None or
                   os.path.exists(self.sock), 20, "nbdkit's socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"nbdkit exited ({self.proc.returncode}), "
                               f"see {self._log.name}")
        return self

    def outage(self, on):
        """Start (on=True) or end the outage; returns the host's
        monotonic time right after."""
        if on:
            open(self.outage_file, "w").close()
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.outage_file)
        return time.monotonic()

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        if self._log is not None:
            self._log.close()

    def disk(self, target="vda", bus="virtio", driver=None, address=None):
        return domxml.disk(
            "network", {"protocol": "nbd"}, target, bus, driver,
            source_children=[domxml.element(
                "host", {"transport": "unix", "socket": self.sock})],
            address=address)


class NbdFile(Started):
    """An NbdDisk's export as a regular file: nbdfuse (Debian libnbd-bin,
    fuse3) mounts it as dirpath/NAME.fuse/disk in a mount namespace of
    its own, and path (set by start()) reaches it from any namespace,
    through /proc/PID/root. No other mount namespace has a copy of the
    mount (a Host's namespace is a copy of the machine's, taken when it
    starts), which would keep nbdfuse serving after its unmount.

    Each read and write of the file is an NBD request: during an outage
    (outage(), the NbdDisk's) it fails with EIO. Opened with O_DIRECT (a
    loop device's direct I/O, tgtd's bsoflags=direct), the file has no
    page cache that could answer a read during the outage."""

    def __init__(self, dirpath, name="disk", size_mib=64):
        self.nbd = NbdDisk(dirpath, name, size_mib)
        self.mountpoint = os.path.join(dirpath, name + ".fuse")
        self.path = None
        self.proc = None
        self._log_path = os.path.join(dirpath, name + ".nbdfuse.log")
        self._log = None

    def start(self):
        self.nbd.start()
        os.makedirs(self.mountpoint, exist_ok=True)
        self._log = open(self._log_path, "w")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private",
             "nbdfuse", os.path.join(self.mountpoint, "disk"),
             "--unix", self.nbd.sock],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.proc.poll() is not None or
                   mounted(self.mountpoint, self.proc.pid), 20,
                   "nbdfuse's mount")
        if self.proc.poll() is not None:
            raise RuntimeError(f"nbdfuse exited ({self.proc.returncode}), "
                               f"see {self._log_path}")
        self.path = f"/proc/{self.proc.pid}/root{self.mountpoint}/disk"
        return self

    def outage(self, on):
        return self.nbd.outage(on)

    def stop(self):
        """Unmount the file (fusermount3 -u in nbdfuse's namespace),
        after which nbdfuse exits, then stop nbdkit. While the file is
        still open (a loop device over it that a QEMU holds) the unmount
        fails: nbdfuse is then terminated, which ends its FUSE connection
        and, with its namespace, the mount, so that the file's last users
        get errors instead of a server."""
        if self.proc is not None:
            unmount = subprocess.run(
                ["nsenter", "--target", str(self.proc.pid), "--mount",
                 "fusermount3", "-u", self.mountpoint], capture_output=True)
            if unmount.returncode == 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
            stop_process(self.proc)
            self.proc = None
            self.path = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.nbd.stop()


class LoopDevice(Started):
    """A loop device over the file backing (needs root and
    /dev/loop-control); with direct_io=True it has direct I/O
    (losetup --direct-io=on): its reads and writes are the file's, never
    answered from the host's page cache. path is /dev/loopN once
    started."""

    def __init__(self, backing, direct_io=False):
        self.backing = backing
        self.direct_io = direct_io
        self.path = None

    def start(self):
        options = ["--direct-io=on"] if self.direct_io else []
        self.path = subprocess.run(
            ["losetup", "--find", "--show", *options, self.backing],
            check=True, capture_output=True, text=True).stdout.strip()
        return self

    def stop(self):
        """Detach the device (losetup -d): at once, or, while something
        (a QEMU) still holds it open, as soon as that closes it (the
        kernel's autoclear)."""
        if self.path is not None:
            subprocess.run(["losetup", "-d", self.path], check=False)
            self.path = None

    def disk(self, target, bus, driver=None, device="disk",
             source_children=(), address=None):
        return domxml.disk("block", {"dev": self.path}, target, bus, driver,
                           device, source_children, address)


class BlockDevice(Started):
    """The seed's storage: a host block device (path, /dev/loopN once
    started), a loop device with direct I/O over an NbdFile of size_mib
    MiB in dirpath. During an outage (outage(), the NbdDisk's) its reads
    and writes fail with EIO, which is what QEMU's Linux AIO
    (cache='none' io='native') gets back.

    stop() detaches the loop device, unmounts the file and stops nbdkit,
    in this order, also while a QEMU still holds the device (it is then
    freed when the QEMU closes it)."""

    def __init__(self, dirpath, name="disk", size_mib=64):
        self.file = NbdFile(dirpath, name, size_mib)
        self.loop = None

    @property
    def path(self):
        return self.loop.path if self.loop is not None else None

    def start(self):
        self.file.start()
        self.loop = LoopDevice(self.file.path, direct_io=True).start()
        return self

    def outage(self, on):
        return self.file.outage(on)

    def stop(self):
        if self.loop is not None:
            self.loop.stop()
        self.file.stop()

    def disk(self, target="vdb", bus="virtio", driver=None, device="disk",
             source_children=(), address=None):
        """<disk type='block'> on the device; the arguments are
        domxml.disk()'s."""
        return self.loop.disk(target, bus, driver, device, source_children,
                              address)


class IscsiTarget(Started):
    """LUN 1 of the iSCSI target iqn(name) (iqn.2026-12.org.example.dih:
    NAME), whose backing store is an NbdFile of size_mib MiB in dirpath
    (bs-type rdwr, opened with O_DIRECT), so that outage() (the
    NbdDisk's) fails its reads and writes: tgtd answers them with CHECK
    CONDITION, MEDIUM ERROR, which QEMU's iSCSI client turns into EIO.

    Debian tgt's tgtd runs in the foreground as the test's child, on
    ISCSI_ADDRESS and a port of its own (port, picked free at start()),
    with its own control socket (TGT_IPC_SOCKET, in dirpath): a tgtd of
    the machine (port 3260, /var/run/tgtd/socket.0) is neither used nor
    disturbed. The target admits initiators from ISCSI_ADDRESS. Its log
    is dirpath/NAME.tgtd.log.

    The target can go away and come back while a guest uses it:
    stop_tgtd() kills tgtd (SIGKILL: tgtd ignores SIGTERM) and returns
    once it is gone and the port refuses connections; start_tgtd()
    starts it again on the same port with the same target, LUN and ACL
    (tgtd keeps them only in memory) and returns once tgtadm answers and
    the port accepts connections. Each returns the host's monotonic time
    when done. stop() stops tgtd, then the backing
    file."""

    def __init__(self, dirpath, name="disk", size_mib=64):
        self.file = NbdFile(dirpath, name, size_mib)
        self.iqn = iqn(name)
        self.lun = 1
        self.port = None
        self.proc = None
        # tgtd and tgtadm add ".0" (the control port) to it.
        ipc = os.path.join(dirpath, name + ".tgtd")
        environment.socket_path(ipc + ".0")
        self._env = dict(os.environ, TGT_IPC_SOCKET=ipc)
        self._log_path = os.path.join(dirpath, name + ".tgtd.log")

    def start(self):
        self.file.start()
        self.port = free_port(ISCSI_ADDRESS)
        self.start_tgtd()
        return self

    def outage(self, on):
        return self.file.outage(on)

    def stop(self):
        self.stop_tgtd()
        self.file.stop()

    def tgtadm(self, *args):
        """Run tgtadm --lld iscsi ARGS on this tgtd (e.g. '--mode',
        'target', '--op', 'show': the targets and their I_T nexuses);
        returns the subprocess.CompletedProcess, output as text."""
        return subprocess.run(["tgtadm", "--lld", "iscsi", *args],
                              env=self._env, capture_output=True, text=True)

    def _configure(self, *args):
        done = self.tgtadm(*args)
        if done.returncode != 0:
            raise RuntimeError(f"tgtadm {' '.join(args)}: {done.stderr}")

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"tgtd exited ({self.proc.returncode}), "
                               f"see {self._log_path}")
        return self.tgtadm("--mode", "target", "--op", "show").returncode == 0

    def accepting(self):
        """Whether the target's port accepts TCP connections."""
        with socket.socket() as s:
            return s.connect_ex((ISCSI_ADDRESS, self.port)) == 0

    def start_tgtd(self):
        """Start tgtd and configure the target; see the class."""
        with open(self._log_path, "a") as log:
            self.proc = subprocess.Popen(
                ["tgtd", "--foreground",
                 "--iscsi", f"portal={ISCSI_ADDRESS}:{self.port}"],
                env=self._env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_until(self._answers, 20, "tgtd to answer tgtadm")
        self._configure("--mode", "target", "--op", "new", "--tid", "1",
                        "--targetname", self.iqn)
        self._configure("--mode", "logicalunit", "--op", "new", "--tid", "1",
                        "--lun", str(self.lun),
                        "--backing-store", self.file.path,
                        "--bstype", "rdwr", "--bsoflags", "direct")
        self._configure("--mode", "target", "--op", "bind", "--tid", "1",
                        "--initiator-address", ISCSI_ADDRESS)
        wait_until(self.accepting, 20,
                   f"tgtd to accept connections on port {self.port}")
        return time.monotonic()

    def stop_tgtd(self):
        """Kill tgtd; see the class."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            wait_until(lambda: not self.accepting(), 20,
                       f"port {self.port} to refuse connections")
        return time.monotonic()

    def disk(self, target="sda", bus="scsi", driver=None, device="disk",
             initiator=None, shareable=False, address=None):
        """<disk type='network' device=device> on the LUN through QEMU's
        iSCSI client: <source protocol='iscsi' name='IQN/1'> with
        <host name='127.0.0.1' port=port>. initiator, if given, is the
        initiator's IQN (<initiator><iqn name=.../>; QEMU's default is
        iqn.2008-11.org.linux-kvm:DOMAIN): two guests need distinct ones
        for SCSI reservations, which are per I_T nexus. device='lun'
        passes the guest's SCSI commands through (scsi-block; bus='scsi'
        only); shareable=True adds <shareable/>. The other arguments are
        domxml.disk()'s."""
        children = [domxml.element("host", {"name": ISCSI_ADDRESS,
                                            "port": self.port})]
        if initiator is not None:
            children.append(domxml.element("initiator", children=[
                domxml.element("iqn", {"name": initiator})]))
        element = domxml.disk(
            "network", {"protocol": "iscsi", "name": f"{self.iqn}/{self.lun}"},
            target, bus, driver, device, children, address)
        if shareable:
            element.append(domxml.element("shareable"))
        return element
