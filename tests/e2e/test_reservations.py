"""SCSI persistent reservations with retry, on a real SCSI target: LUN 1
of a tgt iSCSI target (dih.storage.IscsiTarget) shared by two guests as
device='lun' (QEMU's scsi-block over its iSCSI client, which passes the
PERSISTENT RESERVE commands through to tgtd), each with its own
initiator name, hence its own I_T nexus.

Guest A registers a key and reserves the LUN (Write Exclusive); guest B,
whose disks have the retry policy, is fenced: every write it sends gets
RESERVATION CONFLICT, which QEMU passes to it at once (EBADE in the
guest), never held, never announced as an I/O error; its reads, which
Write Exclusive allows, work. A's data stays what A wrote.

The outage that is held meanwhile is on B's other disk, LUN 1 of a second
target as virtio-blk (device='disk': QEMU's iSCSI block driver, which
turns the target's MEDIUM ERROR into EIO): while QEMU holds B's request there, B's
fenced writes still fail at once. The outage cannot be on the reserved
LUN itself: tgtd reports a failing backing store as MEDIUM ERROR, and on
a passthrough LUN QEMU gives a medium error to the guest at once (it
holds a passthrough command only for NOT READY, BUSY, TASK SET FULL and
transport errors, none of which tgtd produces); and a lost connection is
no outage QEMU sees: libiscsi reconnects and sends the commands again,
while tgtd keeps a registration only for the I_T nexus that made it, so
A would lose its reservation with its connection.
"""

import time

import libvirt

from dih import domxml, policies, probe, scenarios, storage
from dih.events import EventWatcher
from dih.guest import IO_TIMEOUT, SETTLE, ProbeGuest
from dih.wait import assert_stays

KEY = 0xa1
POLICY = policies.retry(1000, 60000)
# Far below the retry interval: a conflict that came back this fast was
# not held for a retry.
AT_ONCE_MS = 250
HOLD = 3


def shared_lun(target, initiator, device="lun", policy=POLICY):
    """The reserved LUN as the guest with this initiator name sees it:
    sda, scsi-block (device='lun') or scsi-hd (device='disk'), shared,
    with the error policy policy (the retry policy by default)."""
    return target.disk("sda", "scsi", policy.driver, device=device,
                       initiator=storage.iqn(initiator), shareable=True,
                       address=domxml.SCSI_DRIVE)


def reserving_guest(host, target):
    """Guest A: registers KEY and reserves the target's LUN, then passes
    over its blocks until stopped; returns it once it has, with the
    counts of its first pass."""
    a = ProbeGuest(host, "dih-pr-holder",
                   [domxml.controller("scsi", 0, "virtio-scsi"),
                    shared_lun(target, "guest-a")],
                   {"disks": "sda", "blocks": 8, "passes": 0, "pause_ms": 20,
                    "pr": f"{KEY:x}", "pr_read": 1}).start()
    a.wait_disk("sda")
    # pr_read's line ends the reservation commands, before any I/O.
    a.wait_line(r"DIH prin dev=sda ", IO_TIMEOUT)
    assert {r.op: r.res for r in a.console.records(probe.PR)} == {
        "register": "ok", "reserve": "ok", "read_keys": "ok",
        "read_reservation": "ok"}, a.console.tail()
    [prin] = a.console.records(probe.PRIn)
    assert prin.keys == (KEY,) and prin.holder == KEY and prin.type == 1, prin
    return a, a.wait_pass("sda")


def writes(guest, since, dev="sda"):
    return [io for io in guest.console.ios(since, dev) if io.op == "write"]


def assert_fenced(guest):
    """The guest's first 8 writes to sda have failed at once with a
    reservation conflict (EBADE), and all its reads of sda worked."""
    fenced = guest.wait_ios(0, "fenced writes", lambda io: io.op == "write",
                            8, dev="sda")
    assert {io.res for io in fenced} == {"EBADE"}, fenced
    assert max(io.lat_ms for io in fenced) < AT_ONCE_MS, fenced
    assert all(io.ok for io in guest.console.ios(0, "sda")
               if io.op == "read"), "the guest's reads of the LUN work"


def wait_held(guest, dev):
    """Wait until a request on dev is held (dev among the domain's disk
    errors) and no I/O line of dev has arrived for SETTLE seconds, while
    the guest's other disk goes on; return the console position from
    which on no I/O of dev arrived."""
    guest.wait(lambda: dev in guest.dom.diskErrors(), IO_TIMEOUT,
               f"a request held on {dev}")

    def settled():
        lines = guest.console.stamped()
        mine = [i for i, line in enumerate(lines)
                if isinstance(line.record, probe.IO) and line.record.dev == dev]
        last = mine[-1] if mine else -1
        if last >= 0 and lines[last].time > time.monotonic() - SETTLE:
            return None
        return last + 1
    return guest.wait(settled, IO_TIMEOUT, f"{dev}'s I/O to stop",
                      interval=0.05)


def test_conflict_never_held(iscsi_target, host, scratch):
    """A reserves the LUN; B's writes to it get RESERVATION CONFLICT at
    once, also while QEMU holds B's request on its other disk through an
    outage: no retry, no io-error event and no disk error for the
    reserved LUN, B runs on; the held request then completes, and A's
    blocks all verify."""
    controller = domxml.controller("scsi", 0, "virtio-scsi")
    a, a_before = reserving_guest(host, iscsi_target)

    with storage.IscsiTarget(scratch, "held") as other, \
            EventWatcher(host, "dih-pr-fenced") as events:
        b = ProbeGuest(host, "dih-pr-fenced",
                       [controller, shared_lun(iscsi_target, "guest-b"),
                        other.disk("vda", "virtio", POLICY.driver)],
                       {"disks": "sda,vda", "parallel": 1, "blocks": 8,
                        "passes": 0, "pause_ms": 20, "pr_read": 1}).start()
        b.wait_disk("vda")
        b.wait_line(r"DIH prin dev=sda ", IO_TIMEOUT)
        # B sees A's key and reservation.
        seen = {r.dev: r for r in b.console.records(probe.PRIn)}
        assert seen["sda"].holder == KEY and seen["sda"].keys == (KEY,), seen
        assert_fenced(b)

        # An outage that QEMU holds on B's other disk: B's fenced writes
        # still come back at once.
        b.wait_pass("vda")
        other.outage(True)
        held = wait_held(b, "vda")
        assert_stays(lambda: not b.console.ios(held, "vda") and
                     b.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING, HOLD,
                     "vda's request stays held while B runs",
                     state=b.console.tail)
        during = [io for io in writes(b, held)]
        assert len(during) >= 8 and {io.res for io in during} == {"EBADE"}, \
            during
        assert max(io.lat_ms for io in during) < AT_ONCE_MS, during
        assert list(b.dom.diskErrors()) == ["vda"], b.dom.diskErrors()
        other.outage(False)
        first = b.wait_io(held, "the held request on vda", dev="vda")
        assert first.ok and first.lat_ms >= HOLD * 1000, first
        scenarios.assert_clean(b.wait_pass("vda"))

        live = b.live_xml()
        aliases = {t: domxml.find_disk(live, t).find("alias").get("name")
                   for t in ("sda", "vda")}
        assert events.events(), "the hold on vda was announced"
        assert {e.dev_alias for e in events.events()} == {aliases["vda"]}, \
            (aliases, events.events())
        assert "report" not in events.actions(), events.events()
        assert all(io.res == "EBADE" for io in writes(b, 0)), \
            "no write of B's reached the reserved LUN"
        b.dom.destroy()

    scenarios.assert_clean(a.wait_pass("sda"), a_before)


def test_conflict_on_iscsi_disk_not_held(iscsi_target, host):
    """The same LUN as a plain disk of B's (device='disk': scsi-hd on
    QEMU's iSCSI block driver, no passthrough), with retry, then pause
    (error_policy='stop' and a retry_timeout): the driver reports the
    target's RESERVATION CONFLICT as a reservation conflict (EBADE), not
    as an I/O error, and scsi-hd gives it to the guest whatever the
    error policy: B's writes fail at once (the guest's disk gets
    RESERVATION CONFLICT status: EBADE), nothing is held, no io-error
    event, and B is not paused."""
    a, a_before = reserving_guest(host, iscsi_target)
    with EventWatcher(host, "dih-pr-fenced") as events:
        b = ProbeGuest(host, "dih-pr-fenced",
                       [domxml.controller("scsi", 0, "virtio-scsi"),
                        shared_lun(iscsi_target, "guest-b", "disk",
                                   policies.retry_then_pause(30000))],
                       {"disks": "sda", "blocks": 8, "passes": 0,
                        "pause_ms": 20}).start()
        b.wait_disk("sda")
        assert_fenced(b)
        assert b.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert events.events() == [], events.events()
        b.dom.destroy()
    scenarios.assert_clean(a.wait_pass("sda"), a_before)
