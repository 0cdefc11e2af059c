"""Deep queues on I/O threads through an outage: virtio-blk disks served
by an iothread (<driver iothread='1'>), the probe keeping 16 requests in
flight on each (depth=16), retry_timeout 0. Every request in flight is
held, the guest's I/O stops, all of them complete after the outage each
having waited it out, and the probe's io lines show each block written
and read exactly once per pass (nothing lost, nothing done twice) with
every block verified. Checked on the guest probe's log, libvirt's
io-error events and disk errors, and QEMU's own view (query-block)."""

import collections
import contextlib
import time

from dih import domxml, policies, probe, scenarios
from dih.events import EventWatcher
from dih.guest import ProbeGuest
from dih.libvirt_api import qemu_monitor
from dih.storage import NbdDisk

DEPTH = 16
# 8 blocks per worker and 100 ms between a worker's I/Os: a phase (all
# writes, or all reads) of a pass lasts over 0.8 s, so that an outage
# begun with a phase finds all 16 workers with an I/O to do.
BLOCKS = 128
PARAMS = {"blocks": BLOCKS, "passes": 0, "pause_ms": 100, "depth": DEPTH}
POLICY = policies.retry(500, 0)
HOLD = 3


def disk_alias(guest, target):
    """The device alias libvirt gave disk target (virtio-disk0, ...)."""
    return domxml.find_disk(guest.live_xml(), target).find("alias").get("name")


def passes(guest, dev):
    """The (op, blk) of the I/Os of each complete pass over dev, from
    the probe's io lines: a pass ends with its pass line (written once
    all of the disk's workers are done with it)."""
    done, current = [], []
    for record in guest.console.records((probe.IO, probe.Counts)):
        if record.dev != dev:
            continue
        if isinstance(record, probe.IO):
            current.append((record.op, record.blk))
        elif record.pass_ is not None:
            done.append(current)
            current = []
    return done


def assert_each_block_once(guest, dev):
    """Every complete pass over dev wrote and read each block exactly
    once."""
    once = collections.Counter((op, blk) for op in ("write", "read")
                               for blk in range(BLOCKS))
    found = passes(guest, dev)
    assert found, f"no complete pass over {dev}"
    for n, ios in enumerate(found):
        got = collections.Counter(ios)
        assert got == once, \
            f"pass {n} over {dev}: missing {sorted(once - got)}, " \
            f"more than once {sorted(got - once)}"


def begin_outage_with_phase(guest, disk, dev):
    """Start disk's outage right as a phase of a pass over dev begins
    (the probe has just written a pass line: its workers are starting
    the next pass's writes)."""
    mark = len(guest.console)
    guest.wait(lambda: [c for c in guest.console.records(probe.Counts, mark)
                        if c.dev == dev], 60, f"a pass line for {dev}",
               interval=0.02)
    disk.outage(True)


def ride_out_deep_outage(guest, disks, targets):
    """An outage on all disks (NbdDisks, as targets in the domain and in
    the guest) of a running probe guest with depth DEPTH: each disk's
    outage begins with a phase of its pass, and they all end together
    once every request was held for HOLD s. Checks the guest's and the
    host's view of it, disk by disk."""
    with EventWatcher(guest.host, guest.name) as events:
        guest.start()
        for target in targets:
            guest.wait_disk(target)
        for target in targets:
            assert qemu_monitor(guest.dom, "qom-get",
                                path=f"/machine/peripheral/"
                                     f"{disk_alias(guest, target)}",
                                property="iothread") == "/objects/iothread1"
        before = {target: guest.wait_pass(target) for target in targets}
        for disk, target in zip(disks, targets):
            begin_outage_with_phase(guest, disk, target)
        aliases = {target: disk_alias(guest, target) for target in targets}
        guest.wait(lambda: sorted(guest.dom.diskErrors()) == sorted(targets),
                   60, f"requests held on each of {targets} (in the "
                   "domain's disk errors)")
        held = guest.wait_held(targets[-1])
        held_at = time.monotonic()
        failed = sorted(b["qdev"]
                        for b in qemu_monitor(guest.dom, "query-block")
                        if b.get("io-status") == "failed")
        assert failed == sorted(f"/machine/peripheral/{a}/virtio-backend"
                                for a in aliases.values()), failed
        guest.assert_held(held, HOLD)
        for disk in disks:
            end = disk.outage(False)

        waited = (end - held_at) * 1000
        for target in targets:
            done = guest.wait_ios(held, f"the {DEPTH} held I/Os to complete",
                                  lambda io: io.lat_ms >= waited, DEPTH,
                                  dev=target)
            assert all(io.ok for io in done), done
        guest.wait(lambda: guest.dom.diskErrors() == {}, 60,
                   "no disk error once every held request completed")
        for target in targets:
            scenarios.assert_clean(guest.wait_pass(target), before[target])
            long = [io for io in guest.console.ios(held, target)
                    if io.lat_ms >= waited]
            assert len(long) == DEPTH, long
            assert_each_block_once(guest, target)
        # QEMU holds the requests it got, which can be fewer than the
        # guest's waiting I/Os: Linux keeps one flush in flight per disk,
        # and the flushes of other workers' O_SYNC writes wait for it in
        # the guest.
        held_per_disk = collections.Counter(e.dev_alias
                                            for e in events.events())
        assert all(1 <= held_per_disk[a] <= DEPTH for a in aliases.values()), \
            held_per_disk
        assert set(events.actions()) == {"retry"}, events.events()


def test_iothread_depth16(host, nbd_disk):
    """One disk on an iothread with 16 requests in flight: they are
    held (the disk in libvirt's disk errors, QEMU's io-status 'failed',
    one 'retry' event per request QEMU holds), the guest's I/O stops,
    and all 16 complete without error after the outage, each having
    waited it out; each block is written and read once per pass and
    verifies."""
    guest = ProbeGuest(host, "dih-depth",
                       [nbd_disk.disk(driver=dict(POLICY.driver, iothread=1))],
                       PARAMS, iothreads=1)
    ride_out_deep_outage(guest, [nbd_disk], ["vda"])


def test_four_disks_depth16(host, scratch):
    """Four disks on one iothread, 16 requests in flight on each, all
    exercised at once (parallel=1), one outage on all four: on each disk
    all 16 are held, which libvirt's disk errors and QEMU's io-status
    show for all four at once; the guest's I/O stops, and after the
    outage every held request completes without error, each block of
    each disk written and read once per pass and verified."""
    targets = ["vda", "vdb", "vdc", "vdd"]
    with contextlib.ExitStack() as stack:
        disks = [stack.enter_context(NbdDisk(scratch, f"disk{i}"))
                 for i in range(len(targets))]
        guest = ProbeGuest(host, "dih-depth4", [
            disk.disk(target, driver=dict(POLICY.driver, iothread=1))
            for disk, target in zip(disks, targets)],
            dict(PARAMS, disks=",".join(targets), parallel=1), iothreads=1)
        ride_out_deep_outage(guest, disks, targets)
