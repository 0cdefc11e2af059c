"""pytest fixtures of the end-to-end tests (a plugin: tests/e2e/conftest.py
loads it).

Every fixture stops what it started, also when the test fails; a test
that cannot run on this machine is skipped with the reason. SIGTERM (what
meson sends a test that runs out of time) fails the running test instead
of killing the process, so that the fixtures still clean up: the daemons,
nbdkit and QEMU run in sessions of their own and would outlive it.
"""

import os
import shutil
import signal
import tempfile

import pytest

from . import environment
from .host import Host
from .migration import make_tls_certs, two_hosts
from .storage import LoopDevice, NbdDisk


class Terminated(Exception):
    """The test process got SIGTERM."""


def _terminated(signum, _frame):
    raise Terminated(f"terminated by signal {signum} (meson's timeout?)")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _terminated)


def require(condition, reason):
    if not condition:
        pytest.skip(reason)


def require_root():
    require(os.geteuid() == 0,
            "needs root (mount and UTS namespaces, bind mounts, loop devices)")


@pytest.fixture
def scratch():
    """A directory for the test's files, removed afterwards (kept with
    DIH_KEEP=1)."""
    path = tempfile.mkdtemp(prefix="dih-test-")
    yield path
    if not os.environ.get("DIH_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


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
    require(shutil.which("certtool"), "needs certtool (Debian gnutls-bin)")
    with two_hosts(make_tls_certs(scratch)) as pair:
        yield pair


@pytest.fixture
def nbd_disk(scratch):
    """The 'cloud disk': nbdkit with its error filter (storage.NbdDisk)."""
    with NbdDisk(scratch) as disk:
        yield disk


@pytest.fixture
def loop_device(scratch):
    """A loop device over an image (storage.LoopDevice)."""
    require_root()
    require(os.path.exists("/dev/loop-control"),
            "needs loop devices (/dev/loop-control)")
    with LoopDevice(scratch) as dev:
        yield dev


@pytest.fixture
def stock_qemu():
    """Debian's QEMU, which has no retry."""
    require(os.access(environment.STOCK_QEMU, os.X_OK),
            f"needs Debian's QEMU ({environment.STOCK_QEMU}, qemu-system-x86)")
    return environment.STOCK_QEMU
