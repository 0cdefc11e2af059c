"""Live migration of a guest whose disk uses error_policy='retry', between
two daemons isolated as two hosts on this machine (dih.migration): both
QEMUs use the same nbdkit export, the stream goes through a relay that
keeps its first bytes. The checks are on the guest probe's log and on
both daemons' views.

Scenarios: (a) matching configuration, (b) mismatched configuration
refused, (c) migration during an outage, (e) TLS. (d), a disk with
<reservations>, is not here: it needs a SCSI LUN (an sg device), which
the test machine need not have; libvirt's unit tests cover it.

Shared storage and cache mode: libvirt refuses a live migration when it
thinks a disk is not shared (VIR_ERR_MIGRATE_UNSAFE) and, for file disks
on shared storage, when the cache mode is other than none/directsync. A
network disk (NBD here) counts as shared whatever its cache mode
(qemuMigrationSrcIsSafe), so the migrations need no --unsafe; the disk
uses cache='none' anyway (no host page cache to go stale between the two
QEMUs).
"""

import os

import libvirt
import pytest

from dih import domxml, policies, scenarios
from dih.events import EventWatcher
from dih.guest import WORKLOAD, ProbeGuest
from dih.migration import migrate

DOM = "dih-mig"
POLICY = policies.retry(1000, 30000)


def start_guest(host, disk, scratch, policy=POLICY):
    """The probe guest on host, its disk 'vdb' on the shared NBD export
    (the guest kernel names it vda). Its console file is opened in append
    mode: the destination's QEMU opens it too, before the source's stops
    writing to it."""
    guest = ProbeGuest(host, DOM, [disk.disk(target="vdb",
                                             driver=policy.driver)],
                       WORKLOAD, console=os.path.join(scratch, "console.log"),
                       append=True).start()
    guest.wait_disk()
    return guest


def domain_log(host):
    """The log of DOM's QEMU on host, which libvirt opens when it launches
    the QEMU."""
    return os.path.join(host.var, "log", "libvirt", "qemu", DOM + ".log")


def check_moved(guest, src, dst):
    """The domain runs on dst and is gone from src, QEMU included."""
    guest.reconnect(dst)
    assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert src.domain_names() == []
    assert not src.qemu_pids()


def test_matching_config_migration(hosts, nbd_disk, scratch):
    """(a) The same retry configuration on both sides: the migration
    succeeds over the wire as a plain QEMU stream, the destination's
    disk has the retry attributes, the guest's I/O goes on without error
    and its data verifies."""
    a, b = hosts
    guest = start_guest(a, nbd_disk, scratch)
    before = guest.wait_pass()
    wire = migrate(guest.dom, b)
    check_moved(guest, a, b)
    # What test_mismatched_xml_refused relies on: a QEMU started on the
    # destination leaves its domain log there.
    assert os.path.exists(domain_log(b))
    attrs = domxml.driver_attributes(guest.dom.XMLDesc(0), "vdb")
    assert domxml.subset(POLICY.driver, attrs), attrs
    # test_tls_migration relies on this telling plain from TLS.
    assert wire.connections == 1 and wire.sent > 1 << 20
    assert wire.head[:4] == b"QEVM"
    scenarios.assert_clean(guest.wait_pass(), before)


# What the destination's disk gets instead of POLICY (None: no error
# policy at all), and the strings the refusal must name: the disk, and
# the configurations that differ.
MISMATCHES = [
    ({"retry_interval": "500"},
     ["'vdb'", "retry_interval=500", "retry_interval=1000"]),
    (None, ["'vdb'", "error_policy=retry", "rerror_policy=retry",
            "retry_interval=1000", "retry_timeout=30000"]),
]


def test_mismatched_xml_refused(hosts, nbd_disk, scratch):
    """(b) A destination XML (virsh migrate --xml) with another
    retry_interval, and one with no retry at all: the destination refuses
    in Prepare (the source's migration cookie against its definition)
    with VIR_ERR_CONFIG_UNSUPPORTED naming the disk and both
    configurations; the source runs on, its I/O unharmed, and the
    destination has no domain and never started a QEMU."""
    a, b = hosts
    guest = start_guest(a, nbd_disk, scratch)
    before = guest.wait_pass()
    source = domxml.parse(guest.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE))
    assert domxml.subset(POLICY.driver,
                         domxml.find_disk(source, "vdb").find("driver").attrib)
    for change, named in MISMATCHES:
        dest = domxml.parse(domxml.to_string(source))
        driver = domxml.find_disk(dest, "vdb").find("driver")
        if change is None:
            for attr in POLICY.driver:
                del driver.attrib[attr]
        else:
            driver.attrib.update(change)
        with pytest.raises(libvirt.libvirtError) as refused:
            migrate(guest.dom, b, dest_xml=domxml.to_string(dest))
        message = refused.value.get_error_message()
        assert refused.value.get_error_code() == \
            libvirt.VIR_ERR_CONFIG_UNSUPPORTED, message
        assert all(s in message for s in named), \
            f"the refusal names {named}: {message}"
        assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert b.domain_names() == []
        assert not b.qemu_pids()
        # Refused in Prepare, before a QEMU was started there: libvirt
        # opens a domain's log when it launches its QEMU.
        assert not os.path.exists(domain_log(b)), \
            "the destination started a QEMU before refusing"
        guest.wait_ios(len(guest.console), "the guest's I/O to go on",
                       count=10)
    scenarios.assert_clean(guest.wait_pass(), before)


def test_migration_during_outage(hosts, nbd_disk, scratch):
    """(c) A migration while the disk is out and a request is held (the
    source reports it with a 'retry' event): the held request travels
    with the guest (in virtio-blk's queue of failed requests), stays held
    on the destination, which lists the disk among the domain's disk
    errors and reports no failure, and completes there once the outage
    ends; no guest error, all data verified."""
    a, b = hosts
    with EventWatcher(a, DOM) as a_events, EventWatcher(b, DOM) as b_events:
        guest = start_guest(a, nbd_disk, scratch,
                            policies.retry(1000, 60000))
        before = guest.wait_pass()
        start = nbd_disk.outage(True)
        held = guest.wait_held("vdb")
        a_events.wait_for("retry")
        migrate(guest.dom, b)
        check_moved(guest, a, b)
        guest.wait(lambda: "vdb" in guest.dom.diskErrors(), 30,
                   "vdb among the disk errors on the destination")
        guest.assert_held(held, 3, "the request stays held on the destination")
        assert "report" not in b_events.actions(), b_events.events()
        end = nbd_disk.outage(False)
        first = guest.wait_io(held, "the held I/O to complete")
        assert first.ok and first.lat_ms >= 0.8 * (end - start) * 1000, \
            f"{first} after an outage of {end - start:.1f} s"
        scenarios.assert_clean(guest.wait_pass(), before)


def test_tls_migration(tls_hosts, nbd_disk, scratch):
    """(e) The matching-configuration migration over TLS (certificates of
    a throwaway CA, qemu.conf's TLS directories per host, --tls): a TLS
    session crosses the wire, never the plain stream's 'QEVM', and the
    guest's I/O goes on without error."""
    a, b = tls_hosts
    guest = start_guest(a, nbd_disk, scratch)
    before = guest.wait_pass()
    wire = migrate(guest.dom, b, tls=True)
    check_moved(guest, a, b)
    assert wire.connections == 1 and wire.sent > 1 << 20
    # A TLS session starts with a handshake record (type 22, version 3.x).
    assert wire.head[:2] == b"\x16\x03", wire.head[:8]
    assert b"QEVM" not in wire.head
    scenarios.assert_clean(guest.wait_pass(), before)
