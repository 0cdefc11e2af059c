"""pytest fixtures of the end-to-end tests (a plugin: tests/e2e/conftest.py
loads it).

Every fixture stops what it started, also when the test fails. A test is
skipped, with the reason, only when this machine cannot provide what it
needs (root, loop devices, FUSE: skip_unless()); what the project
provides itself, its builds (a QEMU without its iSCSI client) and the
Debian packages tools/deps.sh installs, fails the test when it is
missing (project_provides()). SIGTERM (what
meson sends a test that runs out of time) fails the running test instead
of killing the process, so that the fixtures still clean up: the daemons,
nbdkit and QEMU run in sessions of their own and would outlive it.
"""

import functools
import os
import shutil
import signal
import subprocess

import pytest

from . import environment
from .host import Host
from .migration import make_tls_certs, two_hosts
from .storage import BlockDevice, IscsiTarget, LoopDevice, NbdDisk, make_image


class Terminated(Exception):
    """The test process got SIGTERM."""


def _terminated(signum, _frame):
    raise Terminated(f"terminated by signal {signum} (meson's timeout?)")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _terminated)


def skip_unless(condition, reason):
    """Skip the test, saying why, unless this machine provides what it
    needs (condition)."""
    if not condition:
        pytest.skip(reason)


def project_provides(condition, what):
    """Fail the test unless what the project provides (its builds, the
    packages of tools/deps.sh) is there (condition): its absence is a
    failure of the project's set-up, never a reason to skip."""
    if not condition:
        pytest.fail(f"missing what the project provides: {what}",
                    pytrace=False)


def require_root():
    skip_unless(os.geteuid() == 0,
                "needs root (mount and UTS namespaces, bind mounts, loop devices)")


@pytest.fixture
def scratch():
    """A directory for the test's files, removed afterwards (kept with
    DIH_KEEP=1)."""
    with environment.runtime_directory("dih-test-") as path:
        yield path


@pytest.fixture
def host(request):
    """An isolated virtqemud from the patched build, connected."""
    require_root()
    with Host(request.node.name.removeprefix("test_")[:24]) as h:
        yield h


@pytest.fixture
def hosts():
    """Two isolated hosts (migration.two_hosts)."""
    require_root()
    with two_hosts() as pair:
        yield pair


@pytest.fixture
def tls_hosts(scratch):
    """Two isolated hosts with TLS certificates of a throwaway CA."""
    require_root()
    project_provides(shutil.which("certtool"),
                     "certtool (Debian gnutls-bin, tools/deps.sh)")
    with two_hosts(make_tls_certs(scratch)) as pair:
        yield pair


@pytest.fixture
def nbd_disk(scratch):
    """The 'cloud disk': nbdkit with its error filter (storage.NbdDisk)."""
    with NbdDisk(scratch) as disk:
        yield disk


def require_loop_devices():
    require_root()
    skip_unless(os.path.exists("/dev/loop-control"),
            "needs loop devices (/dev/loop-control)")


def require_nbdfuse():
    require_root()
    skip_unless(os.path.exists("/dev/fuse"), "needs FUSE (/dev/fuse)")
    project_provides(shutil.which("nbdfuse") and shutil.which("fusermount3"),
                     "nbdfuse and fusermount3 (Debian libnbd-bin, fuse3, "
                     "tools/deps.sh)")


@functools.cache
def qemu_has_iscsi():
    """Whether the QEMU under test has its iSCSI client (libiscsi): a
    QEMU without it knows no driver 'iscsi'; one with it fails to
    connect to a closed port."""
    tried = subprocess.run(
        [environment.QEMU, "-machine", "none", "-nodefaults", "-display",
         "none", "-blockdev", "driver=iscsi,node-name=probe,transport=tcp,"
         "portal=127.0.0.1:1,target=iqn.2026-12.invalid:none,lun=1"],
        capture_output=True, text=True, timeout=60)
    return "Unknown driver 'iscsi'" not in tried.stderr


@pytest.fixture
def loop_device(scratch):
    """A loop device over a 16 MiB image (storage.LoopDevice)."""
    require_loop_devices()
    with LoopDevice(make_image(os.path.join(scratch, "loop.img"), 16)) as dev:
        yield dev


@pytest.fixture
def block_device(scratch):
    """The seed's host block device: a loop device with direct I/O over
    an nbdfuse file of nbdkit's error filter (storage.BlockDevice).
    Asked for before host, it is stopped after the host's QEMUs."""
    require_loop_devices()
    require_nbdfuse()
    with BlockDevice(scratch) as dev:
        yield dev


@pytest.fixture
def iscsi_target(scratch):
    """LUN 1 of an iSCSI target of tgtd on 127.0.0.1, its own port,
    over an nbdfuse file of nbdkit's error filter (storage.IscsiTarget);
    the QEMU under test must have its iSCSI client (the project builds it
with libiscsi: a QEMU without fails the test). Ask for it before
    host (test_x(iscsi_target, host)): fixtures stop in reverse order,
    and a QEMU that quits with requests in flight to a target that is
    gone waits for them until libvirt kills it, 10 s later."""
    require_nbdfuse()
    project_provides(shutil.which("tgtd") and shutil.which("tgtadm"),
                     "tgtd and tgtadm (Debian tgt, tools/deps.sh)")
    project_provides(os.access(environment.QEMU, os.X_OK),
                     f"the patched QEMU ({environment.QEMU})")
    project_provides(qemu_has_iscsi(), f"the patched QEMU's iSCSI client "
                     f"(libiscsi): {environment.QEMU} has no driver 'iscsi'")
    with IscsiTarget(scratch) as target:
        yield target


@pytest.fixture
def stock_qemu():
    """Debian's QEMU, which has no retry."""
    project_provides(os.access(environment.STOCK_QEMU, os.X_OK),
                     f"Debian's QEMU ({environment.STOCK_QEMU}, "
                     f"qemu-system-x86, tools/deps.sh)")
    return environment.STOCK_QEMU
