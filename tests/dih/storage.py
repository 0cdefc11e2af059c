"""The disks a test guest can get, each able to give its <disk> XML.

- FileImage: a sparse raw image file;
- NbdDisk: the "cloud disk": nbdkit serving a raw image on a unix socket
  through its error filter, which fails every request with EIO while the
  outage is on, as a storage link that is down; QEMU is the NBD client;
- LoopDevice: a loop device over an image, a host block device.
"""

import contextlib
import os
import subprocess
import time

from . import domxml
from .process import stop_process
from .wait import wait_until


def make_image(path, size_mib):
    """A sparse file of size_mib MiB at path."""
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    return path


class FileImage:
    """A sparse raw image file in dirpath."""

    def __init__(self, dirpath, name="disk", size_mib=16):
        self.path = make_image(os.path.join(dirpath, name + ".img"), size_mib)

    def disk(self, target="vda", bus="virtio", driver=None):
        return domxml.disk("file", {"file": self.path}, target, bus, driver)


class NbdDisk:
    """nbdkit serving an image through its error filter; outage(True)
    creates the filter's error file, outage(False) removes it."""

    def __init__(self, dirpath, name="disk", size_mib=64):
        self.img = os.path.join(dirpath, name + ".img")
        self.sock = os.path.join(dirpath, name + ".sock")
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

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False


class LoopDevice:
    """A loop device over an image in dirpath (needs root and
    /dev/loop-control)."""

    def __init__(self, dirpath, name="loop", size_mib=16):
        self.img = make_image(os.path.join(dirpath, name + ".img"), size_mib)
        self.path = None

    def __enter__(self):
        self.path = subprocess.run(
            ["losetup", "--find", "--show", self.img], check=True,
            capture_output=True, text=True).stdout.strip()
        return self

    def __exit__(self, *exc):
        subprocess.run(["losetup", "-d", self.path], check=False)
        return False

    def disk(self, target, bus, driver=None, device="disk",
             source_children=(), address=None):
        return domxml.disk("block", {"dev": self.path}, target, bus, driver,
                           device, source_children, address)
