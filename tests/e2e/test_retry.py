#!/usr/bin/python3
"""Disk I/O hang on real processes: the seed XML through the patched
daemon, and storage outages on the 'cloud disk' with error_policy='retry',
checked on the guest probe's log."""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (Console, Host, NbdDisk, check, check_verified,  # noqa: E402
                     device_json, domain_xml, guest_domain_xml, pid_alive,
                     run_tests)

STOCK_QEMU = "/usr/bin/qemu-system-x86_64"

# The two disk examples of the product guide (seed 002), with a source
# the daemon can resolve.
SEED_VIRTIO = """    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native' error_policy='retry' rerror_policy='retry' retry_interval='2000' retry_timeout='10000'/>
      <source dev='{dev}'/>
      <target dev='vdb' bus='virtio'/>
    </disk>"""
SEED_SCSI = """    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native' error_policy='retry' rerror_policy='retry' retry_interval='2000' retry_timeout='10000'/>
      <source dev='{dev}'/>
      <target dev='sdb' bus='scsi'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>"""

RETRY_PROPS = {"werror": "retry", "rerror": "retry",
               "retry_interval": 2000, "retry_timeout": 10000}


def test_seed_xml_define_dumpxml_native():
    with Host("seed") as h:
        for name, disk, driver in (("dih-seed-blk", SEED_VIRTIO, "virtio-blk-pci"),
                                   ("dih-seed-scsi", SEED_SCSI, "scsi-hd")):
            xml = domain_xml(name, disk.format(dev="/dev/dih-e2e-storage"))
            h.virsh("define", "/dev/stdin", input=xml)
            dump = h.virsh("dumpxml", name).stdout
            check("error_policy='retry' rerror_policy='retry' "
                  "retry_interval='2000' retry_timeout='10000'" in dump,
                  "dumpxml round-trips the retry attributes:\n" + dump)
            argv = h.virsh("domxml-to-native", "qemu-argv", "/dev/stdin",
                           input=xml).stdout
            devs = device_json(argv, driver)
            check(len(devs) == 1, "one %s -device in:\n%s" % (driver, argv))
            got = {k: devs[0].get(k) for k in RETRY_PROPS}
            check(got == RETRY_PROPS, "%s carries %s, got %s" % (
                driver, RETRY_PROPS, got))


def test_stock_qemu_refuses_retry():
    """Debian's stock QEMU has no retry: define is refused with the
    capability error naming the disk."""
    with Host("stock") as h:
        xml = domain_xml("dih-stock", SEED_VIRTIO.format(dev="/dev/dih-e2e-storage"))
        xml = xml.replace(xml[xml.index("<emulator>"):xml.index("</emulator>")],
                          "<emulator>" + STOCK_QEMU)
        r = h.virsh("define", "/dev/stdin", input=xml, check=False)
        check(r.returncode != 0, "define with stock QEMU must fail")
        check("not supported by this QEMU binary" in r.stderr and "vdb" in r.stderr,
              "capability error naming the disk: %r" % r.stderr)
        check(h.virsh("list", "--all", "--name").stdout.strip() == "",
              "nothing was defined")


def retry_guest(h, d, disk, attrs, params, name="dih-retry"):
    con = Console(os.path.join(d, "console.log"))
    h.virsh("create", "/dev/stdin", input=guest_domain_xml(
        name, disk.disk_xml(driver_attrs=attrs), con.path, params))
    con.wait_for("DIH disk dev=vda", 180)
    return con


def test_short_outage_no_guest_error():
    """An outage shorter than retry_timeout: the I/O is held, then
    completes; the guest sees no error and every block verifies."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("short") as h:
        con = retry_guest(h, d, disk,
                          "error_policy='retry' rerror_policy='retry' "
                          "retry_interval='500' retry_timeout='20000'",
                          {"disks": "vda", "blocks": 16, "seconds": 14,
                           "pause_ms": 20})
        time.sleep(2)
        disk.outage(True)
        time.sleep(4)
        state = h.virsh("domstate", "dih-retry").stdout.strip()
        disk.outage(False)
        check(state == "running", "the VM keeps running during the outage: %r" % state)
        con.wait_for("DIH done", 240)
        check_verified(con)
        held = max(float(io["lat_ms"]) for io in con.ios())
        check(held >= 3000, "an I/O was held through the outage (max %.0f ms)" % held)


def test_long_outage_late_eio():
    """An outage longer than retry_timeout: the guest gets EIO once the
    timeout has passed, the VM keeps running, I/O works after it."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("long") as h:
        con = retry_guest(h, d, disk,
                          "error_policy='retry' rerror_policy='retry' "
                          "retry_interval='500' retry_timeout='3000'",
                          {"disks": "vda", "blocks": 16, "seconds": 20,
                           "pause_ms": 20, "mode": "write"})
        time.sleep(2)
        disk.outage(True)
        time.sleep(9)
        state = h.virsh("domstate", "dih-retry").stdout.strip()
        disk.outage(False)
        check(state == "running", "the VM keeps running: %r" % state)
        con.wait_for("DIH done", 240)
        ios = con.ios()
        errs = [io for io in ios if io["res"] != "ok"]
        check(errs, "the guest got the late error")
        lats = [float(io["lat_ms"]) for io in errs]
        check(all(io["res"] == "EIO" for io in errs), "errors are EIO")
        # The guest measures with its own clock, which under TCG is not
        # exact: 2856-2988 ms were seen here for this 3000 ms timeout
        # (QEMU's own BLOCK_IO_ERROR timestamps are >= 3000 ms apart).
        # 'report' fails in well under 100 ms (test_outage).
        check(all(0.85 * 3000 <= l <= 3000 + 500 + 2000 for l in lats),
              "each error came after about retry_timeout (3000 ms): %s" % lats)
        check(ios[-1]["res"] == "ok", "I/O works after the outage")


def test_read_only_retry():
    """rerror_policy='retry', error_policy='report': writes fail at once,
    reads wait for the storage."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("ro") as h:
        con = retry_guest(h, d, disk,
                          "error_policy='report' rerror_policy='retry' "
                          "retry_interval='300'",
                          {"disks": "vda", "blocks": 4, "seconds": 14,
                           "pause_ms": 20})
        time.sleep(2)
        disk.outage(True)
        time.sleep(5)
        disk.outage(False)
        con.wait_for("DIH done", 240)
        ios = con.ios()
        werr = [io for io in ios if io["op"] == "write" and io["res"] != "ok"]
        rerr = [io for io in ios if io["op"] == "read" and io["res"] != "ok"]
        slow_reads = [io for io in ios if io["op"] == "read" and
                      float(io["lat_ms"]) >= 1000]
        slow_writes = [io for io in ios if io["op"] == "write" and
                       float(io["lat_ms"]) >= 1000]
        check(not rerr, "no read failed: %s" % rerr[:3])
        check(werr or slow_reads, "the outage hit the guest's I/O")
        check(not slow_writes, "no write was held: %s" % slow_writes[:3])
        check(all(float(io["lat_ms"]) < 1000 for io in werr),
              "writes failed at once")


def test_destroy_during_hang():
    """virsh destroy while a request waits (retry_timeout 0 = never):
    bounded, and nothing is left running."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("destroy") as h:
        con = retry_guest(h, d, disk,
                          "error_policy='retry' rerror_policy='retry' "
                          "retry_interval='1000' retry_timeout='0'",
                          {"disks": "vda", "blocks": 16, "seconds": 60,
                           "pause_ms": 20})
        pids = h.qemu_pids()
        time.sleep(2)
        disk.outage(True)
        time.sleep(4)
        n = len(con.ios())
        time.sleep(2)
        check(len(con.ios()) == n, "the guest's I/O is hanging")
        t = time.monotonic()
        h.virsh("destroy", "dih-retry", timeout=60)
        took = time.monotonic() - t
        check(took < 30, "destroy returned in %.1f s" % took)
        time.sleep(1)
        check(pids and not [p for p in pids if pid_alive(p)],
              "QEMU is gone: %s" % pids)
        disk.outage(False)


if __name__ == "__main__":
    sys.exit(run_tests([test_seed_xml_define_dumpxml_native,
                        test_stock_qemu_refuses_retry,
                        test_short_outage_no_guest_error,
                        test_long_outage_late_eio,
                        test_read_only_retry,
                        test_destroy_during_hang]))
