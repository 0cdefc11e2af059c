"""Where the patched builds, the tools and the test guest are.

Paths follow DIH_WORK (the work directory of tools/pq, default
<source>/work) and DIH_GUEST_DIR (where meson builds the guest's kernel
and initramfs, default <source>/build/tests). python3-libvirt must load
the patched library: every entry point calls use_libvirt_build() first,
which re-executes the process in the run environment of libvirt's build
(its 'run' script) unless it already is there.
"""

import contextlib
import os
import re
import shutil
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.environ.get("DIH_WORK", os.path.join(TOP, "work"))
GUEST_DIR = os.environ.get("DIH_GUEST_DIR", os.path.join(TOP, "build", "tests"))

LIBVIRT_BUILD = os.path.join(WORK, "build", "libvirt")
LIBVIRT_RUN = os.path.join(LIBVIRT_BUILD, "run")
VIRSH = os.path.join(LIBVIRT_BUILD, "tools", "virsh")
VIRTQEMUD = os.path.join(LIBVIRT_BUILD, "src", "virtqemud")

QEMU_BUILD = os.path.join(WORK, "build", "qemu")
QEMU = os.environ.get("DIH_QEMU", os.path.join(QEMU_BUILD, "qemu-system-x86_64"))
PR_HELPER = os.path.join(QEMU_BUILD, "qemu-pr-helper")
# Debian's QEMU, which has no retry.
STOCK_QEMU = "/usr/bin/qemu-system-x86_64"

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRAMFS = os.path.join(GUEST_DIR, "initramfs.img")

# Where the harness keeps what ends in a UNIX socket path (a daemon's
# sockets and state, nbdkit's export, tgtd's control socket, QEMU's
# monitor through the daemon's state): a short directory of its own,
# whatever the paths of the clone, the work directory or TMPDIR, since a
# socket path has at most 108 bytes (sun_path). libvirt's own state
# directory is short too (LOCALSTATEDIR, tools/components/libvirt.sh).
RUNTIME_ROOT = "/tmp"
SOCKET_PATH_MAX = 107  # bytes, without sun_path's terminating NUL


def runtime_dir(prefix):
    """A new directory under RUNTIME_ROOT, named prefix + 8 random
    characters; the caller removes it (keep_or_remove())."""
    return tempfile.mkdtemp(prefix=prefix, dir=RUNTIME_ROOT)


def keep_or_remove(path):
    """Remove a runtime directory, unless DIH_KEEP is set."""
    if not os.environ.get("DIH_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def runtime_directory(prefix):
    """runtime_dir(prefix) while the context lasts."""
    path = runtime_dir(prefix)
    try:
        yield path
    finally:
        keep_or_remove(path)


def socket_path(path):
    """path, checked to fit a UNIX socket address."""
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise ValueError(f"UNIX socket path too long ({len(path)} > "
                         f"{SOCKET_PATH_MAX} bytes): {path}")
    return path


def libvirt_dirs():
    """The configuration, state and runtime directories compiled into
    the patched libvirt (SYSCONFDIR, LOCALSTATEDIR, RUNSTATEDIR of its
    configmake.h)."""
    with open(os.path.join(LIBVIRT_BUILD, "configmake.h")) as f:
        found = dict(re.findall(r'^#define (\w+) "(.*)"$', f.read(), re.M))
    return found["SYSCONFDIR"], found["LOCALSTATEDIR"], found["RUNSTATEDIR"]


def in_libvirt_build_environment():
    """Whether this process runs in the environment libvirt's 'run'
    script sets for the build (which it marks with abs_top_builddir)."""
    return os.environ.get("abs_top_builddir") == LIBVIRT_BUILD


def use_libvirt_build():
    """Re-execute this process through the build's 'run' script unless
    it already runs in its environment, so that python3-libvirt, virsh
    and the daemons use the patched libvirt."""
    if in_libvirt_build_environment():
        return
    if not os.access(LIBVIRT_RUN, os.X_OK):
        sys.exit(f"no patched libvirt build: {LIBVIRT_RUN} is missing "
                 "(tools/pq ensure libvirt builds it)")
    os.execv(LIBVIRT_RUN, [LIBVIRT_RUN, sys.executable] + sys.orig_argv[1:])
