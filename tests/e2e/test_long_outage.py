"""Outages longer than the guest's own I/O timeout, with retry_timeout 0
(a request is held until the storage is back): a 45 s outage of the
'cloud disk' under virtio-scsi, whose SCSI command timeout in Linux is
30 s by default, and under virtio-blk, which has none. Checked on the
guest probe's log, on the guest kernel's messages (the probe's kmsg=1)
and on the host's view: libvirt's io-error events, the domain's state,
the QEMU process.

What Linux does (kernel 6.1, the test guest's): its virtio-scsi driver
answers every command timeout with "reset the timer"
(virtscsi_eh_timed_out: the host is trusted to complete each command),
so the SCSI layer never aborts a command, never resets the device and
never fails the I/O, whatever /sys/block/sdX/device/timeout says; the
held request simply waits, as on virtio-blk."""

import dataclasses
import re
import time

from dih import domxml, policies, probe, scenarios
from dih.events import EventWatcher
from dih.guest import WORKLOAD, ProbeGuest
from dih.libvirt_api import is_running
from dih.process import pid_alive

OUTAGE = 45
INTERVAL_MS = 1000
POLICY = policies.retry(INTERVAL_MS, 0)
# A guest SCSI timeout that expires several times during the outage.
SHORT_SCSI_TIMEOUT = 5
# How often the guest resets its SCSI disk, several times during the outage.
RESET_EVERY = 10
# How late the held I/O may complete after the outage's end: the retry
# interval, plus the time for the completion to reach the guest's console
# on a slow TCG host.
RESUME_SLACK = INTERVAL_MS / 1000 + 3
# Kernel messages that tell of a struggling disk: the SCSI layer's abort
# and reset messages, I/O errors, timeouts, hung task warnings.
TROUBLE = re.compile(r"abort|reset|I/O error|timed? ?out|blocked for more",
                     re.I)


@dataclasses.dataclass
class Outage:
    """What the guest and the host saw of an outage."""
    guest: ProbeGuest
    io: probe.IO            # the held I/O, completed after the outage
    kmsg: list              # the kernel's messages while it waited
    events: list            # the io-error events' actions


def scsi_disk(disk):
    """disk as sda on a virtio-scsi controller."""
    return [domxml.controller("scsi", 0, "virtio-scsi"),
            disk.disk("sda", "scsi", POLICY.driver,
                      address=domxml.SCSI_DRIVE)]


def ride_out(host, disk, name, devices, dev, params=None):
    """A probe guest (with kmsg=1 and params) on dev through an OUTAGE s
    outage of disk. Checks what every variant must show: the QEMU
    process lives on, the domain runs all along, the held I/O completes
    successfully after the outage's end (within RESUME_SLACK) having
    waited since it was held, and a whole pass afterwards verifies every
    block with no error. Returns the Outage."""
    guest = ProbeGuest(host, name, devices,
                       {**WORKLOAD, "disks": dev, "kmsg": 1, **(params or {})})
    with EventWatcher(host, name) as events:
        guest.start()
        guest.wait_disk(dev)
        pids = host.qemu_pids()
        before = guest.wait_pass(dev)
        start = disk.outage(True)
        held = guest.wait_held(dev)
        held_at = time.monotonic()
        guest.assert_held(held, start + OUTAGE - held_at)
        with guest.console.follow(0.05):
            end = disk.outage(False)
            io = guest.wait_io(held, "the held I/O to complete", dev=dev)
        completed = next(line.time for line in guest.console.stamped(held)
                         if line.record == io)
        counts = guest.wait_pass(dev)
        assert pids and all(pid_alive(p) for p in pids) and \
            host.qemu_pids() == pids, f"QEMU {pids} lives on"
        assert is_running(guest.dom), guest.dom.state()
        assert io.ok, io
        assert io.lat_ms >= (end - held_at) * 1000, \
            f"{io} waited since it was held, {end - held_at:.1f} s before " \
            "the outage ended"
        assert 0 <= completed - end <= RESUME_SLACK, \
            f"completed {completed - end:.2f} s after the outage's end"
        scenarios.assert_clean(counts, before)
        waited = [k for k in guest.console.records(probe.Kmsg)
                  if io.t <= k.t <= io.t + io.lat_ms / 1000]
        return Outage(guest, io, waited, events.actions())


def test_scsi_default_timeout(host, nbd_disk):
    """virtio-scsi with the guest's default SCSI timeout (30 s): the
    request is held once ('retry'), the guest neither aborts it nor
    resets the device nor logs any trouble while it waits the 45 s, and
    it completes without error once the storage is back."""
    outage = ride_out(host, nbd_disk, "dih-scsi-30s", scsi_disk(nbd_disk),
                      "sda")
    assert not [k for k in outage.kmsg if TROUBLE.search(k.message)], \
        outage.kmsg
    assert outage.events == ["retry"], outage.events


def test_scsi_short_timeout(host, nbd_disk):
    """virtio-scsi with the guest's SCSI timeout set to 5 s (the probe
    writes /sys/block/sda/device/timeout), so that it expires over and
    over during the outage: still held once, no abort, no reset, no
    trouble logged, and the request completes without error after the
    outage. The guest's SCSI timeout plays no part."""
    outage = ride_out(host, nbd_disk, "dih-scsi-5s", scsi_disk(nbd_disk),
                      "sda", {"scsi_timeout": SHORT_SCSI_TIMEOUT})
    assert outage.guest.console.records(probe.Timeout) == \
        [probe.Timeout("sda", SHORT_SCSI_TIMEOUT)]
    assert outage.io.lat_ms >= 3 * SHORT_SCSI_TIMEOUT * 1000, outage.io
    assert not [k for k in outage.kmsg if TROUBLE.search(k.message)], \
        outage.kmsg
    assert outage.events == ["retry"], outage.events


def test_virtio_blk(host, nbd_disk):
    """virtio-blk, which has no command timeout in Linux: the request
    is held once, the guest's kernel says nothing about the disk or any
    trouble while it waits the 45 s, and it completes without error
    once the storage is back."""
    outage = ride_out(host, nbd_disk, "dih-blk-45s",
                      [nbd_disk.disk(driver=POLICY.driver)], "vda")
    assert not [k for k in outage.kmsg
                if TROUBLE.search(k.message) or "vda" in k.message], \
        outage.kmsg
    assert outage.events == ["retry"], outage.events


def test_scsi_guest_resets(host, nbd_disk):
    """virtio-scsi while the guest resets its disk every RESET_EVERY s
    (the probe's scsi_reset: SG_SCSI_RESET, which Linux's SCSI layer
    sends to QEMU as a LOGICAL UNIT RESET task management function),
    so that resets come while a request is held, as from a guest whose
    error handling resets a slow device. Each reset succeeds at once
    (QEMU completes it while the storage is still down); it drops the
    held request, which reaches the guest's SCSI layer as a reset
    command, and Linux sends it again: QEMU holds it anew, one more
    'retry' event per reset, and the application's write just waits on.
    The guest's kernel logs each reset ("device reset", then the unit
    attention "Power-on or device reset occurred") and no I/O error;
    after the outage the write completes, QEMU lives on and every block
    verifies (ride_out's checks)."""
    outage = ride_out(host, nbd_disk, "dih-scsi-reset", scsi_disk(nbd_disk),
                      "sda", {"scsi_reset": RESET_EVERY})
    io = outage.io
    resets = outage.guest.console.records(probe.Reset)
    during = [r for r in resets if io.t <= r.t <= io.t + io.lat_ms / 1000]
    assert all(r.ok and r.lat_ms < 1000 for r in resets), resets
    assert len(during) >= OUTAGE // RESET_EVERY - 1, (io, resets)
    assert outage.events == ["retry"] * (len(during) + 1), \
        (outage.events, during)
    for reset in during:
        logged = [k.message for k in outage.kmsg
                  if reset.t <= k.t <= reset.t + 1]
        assert any("device reset" == m.split(": ", 1)[-1] for m in logged) \
            and any("Power-on or device reset occurred" in m
                    for m in logged), (reset, outage.kmsg)
    assert not [k for k in outage.kmsg
                if re.search(r"I/O error|abort|timed? ?out|blocked for more",
                             k.message, re.I)], outage.kmsg
