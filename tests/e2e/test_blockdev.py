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

import pytest

from dih import domxml, policies, scenarios
from dih.events import EventWatcher
from dih.guest import WORKLOAD, ProbeGuest

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
    scenarios.ride_out_outage(guest, block_device, HOLD, dev, target)


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
        scenarios.late_error(guest, block_device, events, SEED_TIMEOUT_MS,
                             SEED_INTERVAL_MS, dev)


def test_retry_then_pause(block_device, host):
    """error_policy='stop' with a retry_timeout of 4 s on the seed's
    block disk on virtio-scsi: a request is held while the VM runs, then
    the domain pauses with reason I/O error no earlier than the timeout
    after the wait began ('retry', then 'pause' event); it stays paused
    when the storage is back, and once resumed the request completes and
    the guest has seen no error."""
    driver = dict(PAUSE_POLICY.driver, io="native")
    devices = [domxml.controller("scsi", 0, "virtio-scsi"),
               block_device.disk("sdb", "scsi", driver,
                                 address=domxml.SCSI_DRIVE)]
    guest = ProbeGuest(host, "dih-seed-pause", devices,
                       {**WORKLOAD, "disks": "sda"})
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk("sda")
        scenarios.retry_then_pause(guest, block_device, events,
                                   PAUSE_TIMEOUT_MS, "sda", "sdb")


def test_buffered_writes_never_hang(block_device, host):
    """The seed's block disk with cache='writeback' (host page cache, the
    -drive default): once one flush of the host device failed, the host
    cannot tell whether the page cache dropped the data, and QEMU fails
    every later flush of it. QEMU therefore does not hold writes or
    flushes of such a disk. An outage during the guest's synchronous
    writes (the probe's O_SYNC: each write is followed by a flush) ends,
    within the seed's retry_timeout of the storage coming back, with the
    guest's write returning, success or error, and its I/O going on:
    never a hang. QEMU opens the device without O_DIRECT."""
    driver = dict(policies.SEED.driver, cache="writeback", io="threads")
    devices = [domxml.disk("block", {"dev": block_device.path}, "vdb",
                           "virtio", driver)]
    guest = ProbeGuest(host, "dih-seed-writeback", devices,
                       {**WORKLOAD, "mode": "write"})
    guest.start()
    node = blockdev_argument(host, block_device.path)
    assert node["cache"]["direct"] is False, node
    guest.wait_disk()
    guest.wait_io(len(guest.console), "a successful write", lambda io: io.ok)
    mark = len(guest.console)
    block_device.outage(True)
    guest.wait_io(mark, "a write that fails during the outage",
                  lambda io: not io.ok, timeout=SEED_TIMEOUT_MS / 1000 + 30)
    block_device.outage(False)
    back = len(guest.console)
    # Whatever the host's flushes return now, the guest's writes return,
    # within retry_timeout of the storage coming back.
    guest.wait_ios(back, "writes returning after the outage", count=3,
                   timeout=SEED_TIMEOUT_MS / 1000)
