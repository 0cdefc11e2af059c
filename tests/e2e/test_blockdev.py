"""The seed's disk on a real host block device: the product guide's XML
verbatim (policies.seed_devices: <disk type='block'>, cache='none'
io='native', retry every 2 s for up to 10 s), its source a loop device
with direct I/O over an nbdfuse file of nbdkit's error filter
(dih.storage.BlockDevice). During an outage the host's block layer fails
QEMU's Linux AIO requests with EIO, as a multipath device without paths
does. Outages shorter and longer than the timeout, and retry then pause.
Checked on the guest probe's log and on the host's view: the QEMU
command line, the domain's state, disk errors and io-error events."""

import json

import libvirt
import pytest

from dih import domxml, policies
from dih.events import EventWatcher
from dih.guest import WORKLOAD, ProbeGuest
from dih.libvirt_api import is_running
from dih.wait import wait_until

# How long an outage shorter than the seed's retry_timeout holds a
# request, in seconds.
HOLD = 3
SEED_INTERVAL_MS = int(policies.SEED.driver["retry_interval"])
SEED_TIMEOUT_MS = int(policies.SEED.driver["retry_timeout"])
# Retry for 4 s, then pause the domain: policies.RETRY_THEN_PAUSE,
# shorter.
PAUSE_TIMEOUT_MS = 4000
PAUSE_POLICY = policies.retry_then_pause(PAUSE_TIMEOUT_MS, 500)
BUSES = pytest.mark.parametrize("bus", ["virtio", "scsi"],
                                ids=["virtio-blk", "scsi-hd"])


def guest_name(bus):
    """The guest kernel's name of its only disk on bus."""
    return "sda" if bus == "scsi" else "vda"


def seed_guest(host, device, name, bus, params=WORKLOAD):
    """A probe guest whose only disk is the seed's, on device. Returns
    the guest, not started, the disk's target (vdb or sdb) and the
    guest's name of it."""
    devices, target = policies.seed_devices(bus, device.path)
    dev = guest_name(bus)
    return ProbeGuest(host, name, devices, {**params, "disks": dev}), \
        target, dev


def blockdev_argument(host, path):
    """The -blockdev of the running QEMU that opens path."""
    [pid] = host.qemu_pids()
    with open(f"/proc/{pid}/cmdline") as f:
        argv = f.read().split("\0")
    found = [json.loads(value) for option, value in zip(argv, argv[1:])
             if option == "-blockdev" and f'"{path}"' in value]
    assert len(found) == 1, argv
    return found[0]


@BUSES
def test_seed_short_outage(block_device, host, bus):
    """An outage shorter than the seed's retry_timeout: QEMU opens the
    loop device with Linux AIO and O_DIRECT; a request gets EIO and is
    held while the VM runs (the disk among the disk errors, the guest's
    I/O stopped for 3 s), then completes once the device works again;
    the guest sees no error and every block verifies."""
    guest, target, dev = seed_guest(host, block_device, "dih-seed-short", bus)
    guest.start()
    node = blockdev_argument(host, block_device.path)
    assert (node["driver"], node["aio"], node["cache"]["direct"]) == \
        ("host_device", "native", True), node
    guest.wait_disk(dev)
    guest.ride_out_outage(block_device, HOLD, dev, target)


def test_seed_long_outage_late_eio(block_device, host):
    """An outage longer than the seed's retry_timeout: a write is held
    for the timeout (its 'retry' event, then its 'report' event 10 s
    later, give or take one retry interval), then fails with EIO in the
    guest, which waited as long, not less; the VM runs all along, and
    writes work again after the outage."""
    guest, _, dev = seed_guest(host, block_device, "dih-seed-long", "virtio",
                               {**WORKLOAD, "mode": "write"})
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk(dev)
        guest.wait_pass(dev)
        mark = len(guest.console)
        block_device.outage(True)
        failed = guest.wait_io(mark, "a write to fail after the timeout",
                               lambda io: not io.ok, dev=dev)
        assert is_running(guest.dom), guest.dom.state()
        back = len(guest.console)
        block_device.outage(False)
        guest.wait_io(back, "a successful write", lambda io: io.ok, dev=dev)
    assert failed.res == "EIO" and SEED_TIMEOUT_MS <= failed.lat_ms <= \
        SEED_TIMEOUT_MS + SEED_INTERVAL_MS + 1000, failed
    actions = events.events()
    start = next(e for e in actions if e.action == "retry")
    end = next(e for e in actions if e.action == "report")
    held_ms = (end.time - start.time) * 1000
    assert SEED_TIMEOUT_MS - 50 <= held_ms <= \
        SEED_TIMEOUT_MS + SEED_INTERVAL_MS + 1000, \
        f"held {held_ms:.0f} ms for retry_timeout {SEED_TIMEOUT_MS} ms: " \
        f"{actions}"


def test_retry_then_pause(block_device, host):
    """error_policy='stop' with a retry_timeout of 4 s on the seed's
    block disk on virtio-scsi: a request is held while the VM runs, then
    the domain pauses with reason I/O error no earlier than the timeout
    after the wait began ('retry', then 'pause' event); it stays paused
    when the storage is back, and once resumed the request completes and
    the guest has seen no error."""
    driver = dict(PAUSE_POLICY.driver, io="native")
    devices = [domxml.controller("scsi", 0, "virtio-scsi"),
               block_device.disk("sdb", "scsi", driver, address={
                   "type": "drive", "controller": 0, "bus": 0, "target": 0,
                   "unit": 0})]
    guest = ProbeGuest(host, "dih-seed-pause", devices,
                       {**WORKLOAD, "disks": "sda"})
    paused = [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR]
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk("sda")
        before = guest.wait_pass("sda")
        block_device.outage(True)
        held = guest.wait_held("sdb")
        wait_until(lambda: guest.dom.state() == paused, 60,
                   "the domain to pause on the I/O error",
                   state=lambda: f"state {guest.dom.state()}")
        events.wait_for("pause")
        assert events.actions()[:2] == ["retry", "pause"], events.events()
        start, pause = events.events()[:2]
        assert (pause.time - start.time) * 1000 >= PAUSE_TIMEOUT_MS - 50, \
            f"paused {pause.time - start.time:.2f} s after the wait began"
        block_device.outage(False)
        assert guest.dom.state() == paused, "no resume without virsh resume"
        guest.dom.resume()
        first = guest.wait_io(held, "the held I/O to complete", dev="sda")
        counts = guest.wait_pass("sda")
    assert first.ok and first.lat_ms >= PAUSE_TIMEOUT_MS, first
    guest.assert_clean(counts, before)
