"""The test set: what runs on both sides, how long it may take, how it is
chunked; definition(), the key of the base's cached results."""

import re
import shutil

from .common import PATH

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
