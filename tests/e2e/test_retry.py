"""Disk I/O hang on real processes: the seed XML through the patched
daemon, and storage outages on the 'cloud disk' with the retry policy,
checked on the guest probe's log."""

import time

import libvirt
import pytest

from dih import domxml, policies, scenarios
from dih.events import EventWatcher
from dih.guest import ProbeGuest
from dih.process import pid_alive

# How long an outage holds a request in these tests, in seconds.
HOLD = 3


def seed_domain(name, bus, emulator=None):
    """A domain with the product guide's disk (policies.seed_devices)."""
    devices, target = policies.seed_devices(bus)
    return domxml.add_devices(domxml.domain(name, emulator=emulator),
                              *devices), target


@pytest.mark.parametrize("bus, driver", [("virtio", "virtio-blk-pci"),
                                         ("scsi", "scsi-hd")],
                         ids=["virtio-blk", "scsi-hd"])
def test_seed_xml(host, bus, driver):
    """The seed's disk defines, dumpxml gives its retry attributes back,
    and domxml-to-native puts the retry properties on its -device."""
    dom, target = seed_domain("dih-seed", bus)
    xml = domxml.to_string(dom)
    defined = host.conn.defineXML(xml)
    attrs = domxml.driver_attributes(defined.XMLDesc(0), target)
    assert domxml.subset(policies.SEED.driver, attrs), attrs
    argv = host.conn.domainXMLToNative("qemu-argv", xml, 0)
    devices = policies.device_properties(argv, driver)
    assert len(devices) == 1, argv
    assert policies.error_properties(devices[0]) == policies.SEED.qemu


def test_stock_qemu_refuses_retry(host, stock_qemu):
    """Debian's QEMU has no retry: define is refused with the capability
    error naming the disk, and nothing is defined."""
    dom, _ = seed_domain("dih-stock", "virtio", emulator=stock_qemu)
    with pytest.raises(libvirt.libvirtError) as refused:
        host.conn.defineXML(domxml.to_string(dom))
    message = refused.value.get_error_message()
    assert "not supported by this QEMU binary" in message and "vdb" in message, \
        message
    assert host.domain_names() == []


def test_short_outage_no_guest_error(host, nbd_disk):
    """An outage shorter than retry_timeout: the request is held while
    the VM runs, then completes; the guest sees no error and every block
    verifies."""
    guest = ProbeGuest(host, "dih-short", [nbd_disk.disk(
        driver=policies.retry(500, 20000).driver)]).start()
    guest.wait_disk()
    scenarios.ride_out_outage(guest, nbd_disk, HOLD)


def test_long_outage_late_eio(host, nbd_disk):
    """An outage longer than retry_timeout: each write is held for
    retry_timeout, then fails with EIO, while the VM runs on; writes work
    again after the outage."""
    timeout, interval = 3000, 500
    guest = ProbeGuest(host, "dih-long", [nbd_disk.disk(
        driver=policies.retry(interval, timeout).driver)],
        {"blocks": 16, "passes": 0, "pause_ms": 20, "mode": "write"})
    with EventWatcher(host, guest.name) as events:
        guest.start()
        guest.wait_disk()
        guest.wait_pass()
        mark = len(guest.console)
        nbd_disk.outage(True)
        failed = guest.wait_ios(mark, "two writes failed after the timeout",
                                lambda io: not io.ok, count=2)
        assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        back = len(guest.console)
        nbd_disk.outage(False)
        guest.wait_io(back, "a successful write", lambda io: io.ok)
    assert {io.res for io in failed} == {"EIO"}
    assert all(io.lat_ms >= timeout for io in failed), failed
    # How long each request was held, as QEMU reports it, on the host's
    # clock: from the event of its first failure ('retry') to that of its
    # end ('report'); the guest's view is in its latencies.
    actions = events.events()
    held = [(start, end) for start, end in zip(actions, actions[1:])
            if (start.action, end.action) == ("retry", "report")]
    assert len(held) >= 2, actions
    for start, end in held:
        ms = (end.time - start.time) * 1000
        assert timeout - 50 <= ms <= timeout + interval + 1000, \
            f"a request held {ms:.0f} ms for retry_timeout {timeout} ms"


def test_read_only_retry(host, nbd_disk):
    """rerror_policy='retry' with error_policy='report': during an
    outage writes fail with EIO while the outage lasts, and the first read
    is held until the storage is back; no read fails, no write is held,
    and no block is taken for corrupted because a write failed."""
    guest = ProbeGuest(host, "dih-ro", [nbd_disk.disk(
        driver=policies.retry(300, write="report").driver)],
        {"blocks": 32, "passes": 0, "pause_ms": 100}).start()
    guest.wait_disk()
    # Start the outage early in a write phase after the first pass (so
    # that every block has data to verify): the rest of the phase's
    # writes fail, then the first read is held.
    guest.wait_line(r"DIH pass dev=vda pass=0 ", 120)
    guest.wait_io(len(guest.console), "a pass's first write",
                  lambda io: io.op == "write" and io.blk == 0)
    mark = len(guest.console)
    nbd_disk.outage(True)
    held = guest.wait_held()
    during = guest.console.ios(mark)
    failed = [io for io in during if not io.ok]
    assert failed, "a write failed during the outage"
    assert all(io.op == "write" for io in during), \
        f"no read completed before one was held: {during}"
    assert {io.res for io in failed} == {"EIO"}, failed
    guest.assert_held(held, HOLD)
    nbd_disk.outage(False)
    read = guest.wait_io(held, "the held read to complete")
    assert read.op == "read" and read.ok and read.lat_ms >= HOLD * 1000, read
    counts = guest.wait_pass()
    ios = guest.console.ios()
    assert not [io for io in ios if io.op == "read" and not io.ok]
    assert not [io for io in ios if io.op == "write" and
                io.lat_ms >= HOLD * 1000], "no write was held"
    assert counts.errors == len(failed) and counts.bad == 0 and \
        counts.unknown == 0, counts


def test_destroy_during_hang(host, nbd_disk):
    """virsh destroy while a request waits with retry_timeout 0 (for
    ever) returns promptly and leaves no QEMU."""
    guest = ProbeGuest(host, "dih-destroy", [nbd_disk.disk(
        driver=policies.retry(1000, 0).driver)]).start()
    guest.wait_disk()
    pids = host.qemu_pids()
    nbd_disk.outage(True)
    guest.assert_held(guest.wait_held(), HOLD)
    start = time.monotonic()
    guest.dom.destroy()
    took = time.monotonic() - start
    assert took < 30, f"destroy took {took:.1f} s"
    assert pids and not [p for p in pids if pid_alive(p)], pids
    assert host.domain_names() == []
