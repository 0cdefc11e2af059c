"""Disk I/O hang through QEMU's iSCSI client (libiscsi), seed 003's
"QEMU as the network client": the guest's disk (device='disk') is LUN 1
of a tgt target on 127.0.0.1 (dih.storage.IscsiTarget) whose backing
store fails on demand, on virtio-scsi (scsi-hd) or virtio-blk. Checked
on the guest probe's log and on the host's view: the domain's state,
disk errors and io-error events, and the target's sessions.

Two kinds of failure reach QEMU differently:

- the storage behind the target fails (outage()): tgtd answers each
  command with CHECK CONDITION, MEDIUM ERROR, which QEMU's iSCSI driver
  turns into EIO, and the error policy applies as on any disk;
- the target itself goes away (tgtd killed) and comes back: libiscsi
  keeps the commands in flight, reconnects (its attempts back off by one
  second more each time, up to 30 s), logs in again and re-issues them;
  QEMU's driver retries the UNIT ATTENTION the new session begins with.
  No error ever reaches the disk device, whatever its error policy: the
  retry policy is not involved, and the guest sees one slow request.
"""

import re
import time

import pytest

from dih import domxml, policies, probe, scenarios, storage
from dih.events import EventWatcher
from dih.guest import SETTLE, WORKLOAD, ProbeGuest

# How long an outage shorter than retry_timeout, or the target's
# absence, holds a request, in seconds.
HOLD = 3
POLICY = policies.retry(500, 20000)
BUSES = pytest.mark.parametrize("bus", ["scsi", "virtio"],
                                ids=["scsi-hd", "virtio-blk"])
# Kernel messages of a guest whose disk struggles: SCSI error handling,
# I/O errors, hung tasks.
TROUBLE = re.compile(r"abort|reset|I/O error|timed? ?out|blocked for more",
                     re.I)


def lun_guest(host, target, name, bus, policy, params=WORKLOAD,
              initiator=None):
    """A probe guest whose only disk is the target's LUN: sda on a
    virtio-scsi controller (bus 'scsi': scsi-hd) or vda (virtio-blk).
    Returns the guest, not started, and the disk's name (its target in
    the domain XML and the guest kernel's name alike)."""
    if bus == "scsi":
        devices = [domxml.controller("scsi", 0, "virtio-scsi"),
                   target.disk("sda", "scsi", policy.driver,
                               initiator=initiator, address=domxml.SCSI_DRIVE)]
        dev = "sda"
    else:
        devices = [target.disk("vda", "virtio", policy.driver,
                               initiator=initiator)]
        dev = "vda"
    return ProbeGuest(host, name, devices, {**params, "disks": dev}), dev


def quiet(guest, seconds):
    """Whether no line has arrived on the guest's console for seconds."""
    lines = guest.console.stamped()
    return not lines or lines[-1].time <= time.monotonic() - seconds


@BUSES
def test_short_outage_no_guest_error(iscsi_target, host, bus):
    """An outage of the LUN's backing store shorter than retry_timeout:
    QEMU holds the failed request while the VM runs and reports the wait
    ('retry' events, never 'report'); after the outage the request
    completes, the guest sees no error and every block verifies."""
    guest, dev = lun_guest(host, iscsi_target, "dih-iscsi-short", bus, POLICY)
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk(dev)
        scenarios.ride_out_outage(guest, iscsi_target, HOLD, dev)
    assert "retry" in events.actions() and \
        "report" not in events.actions(), events.events()


def test_long_outage_late_eio(iscsi_target, host):
    """An outage longer than retry_timeout (3000 ms) on virtio-blk: a
    write is held for the timeout (its 'retry' event, then its 'report'
    event 3 s later, give or take one retry interval), then fails with
    EIO in the guest, which waited as long, not less; the VM runs all
    along, and writes work again after the outage."""
    timeout, interval = 3000, 500
    guest, dev = lun_guest(host, iscsi_target, "dih-iscsi-long", "virtio",
                           policies.retry(interval, timeout),
                           {**WORKLOAD, "mode": "write"})
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk(dev)
        scenarios.late_error(guest, iscsi_target, events, timeout, interval,
                             dev)


def test_retry_then_pause(iscsi_target, host):
    """error_policy='stop' with a retry_timeout of 4 s on virtio-scsi: a
    request is held while the VM runs, then the domain pauses with reason
    I/O error no earlier than the timeout after the wait began ('retry',
    then 'pause' event); it stays paused when the storage is back, and
    once resumed the request completes and the guest has seen no
    error."""
    timeout = 4000
    guest, dev = lun_guest(host, iscsi_target, "dih-iscsi-pause", "scsi",
                           policies.retry_then_pause(timeout, 500))
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk(dev)
        scenarios.retry_then_pause(guest, iscsi_target, events, timeout, dev)


def test_target_restart(iscsi_target, host):
    """The target goes away during the guest's I/O (tgtd killed) and
    comes back (tgtd started again with the same target) on virtio-scsi
    with the retry policy: while it is away the request in flight waits
    in libiscsi and the guest's I/O stays held, yet QEMU reports nothing
    (no io-error event, no disk error); the initiator logs in again, the
    request completes having waited for the target, and the guest sees
    no error (none in the probe's log, no SCSI abort, reset or I/O error
    in its kernel's) and every block verifies."""
    initiator = storage.iqn("restart-guest")
    guest, dev = lun_guest(host, iscsi_target, "dih-iscsi-restart", "scsi",
                           POLICY, {**WORKLOAD, "kmsg": 1}, initiator)
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk(dev)
        before = guest.wait_pass(dev)
        mark = len(guest.console)
        down = iscsi_target.stop_tgtd()
        guest.wait(lambda: quiet(guest, SETTLE), 60,
                   "the guest's console to fall silent", interval=0.05)
        held = len(guest.console)
        guest.assert_held(held, HOLD)
        assert guest.dom.diskErrors() == {}, guest.dom.diskErrors()
        up = iscsi_target.start_tgtd()
        first = guest.wait_io(held, "the request in flight to complete",
                              dev=dev)
        counts = guest.wait_pass(dev)
    assert first.ok and first.lat_ms >= HOLD * 1000, \
        f"{first}: the target was away for {up - down:.1f} s"
    assert events.events() == [], events.events()
    assert initiator in iscsi_target.tgtadm(
        "--mode", "target", "--op", "show").stdout, "a new session"
    trouble = [k for k in guest.console.records(probe.Kmsg, mark)
               if TROUBLE.search(k.message)]
    assert trouble == [], trouble
    scenarios.assert_clean(counts, before)
