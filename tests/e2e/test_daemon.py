"""The isolated daemon harness on the patched builds: a private virtqemud
that does not see /dev/kvm defines, converts, starts and destroys a
domain, writes only to its own directories, and leaves nothing behind."""

import os

import libvirt

from dih import domxml, environment, policies
from dih.guest import ProbeGuest
from dih.process import pid_alive
from dih.storage import FileImage


def file_domain(name, image, policy=policies.STOP_WRITES):
    dom = domxml.domain(name)
    return domxml.add_devices(dom, image.disk(driver=policy.driver))


def test_daemon_is_isolated(host, scratch):
    """Its host UUID is the one of its private configuration, a
    definition lands in its own directory and not in the build's
    compiled-in configuration directory, and it has no /dev/kvm."""
    caps = domxml.parse(host.conn.getCapabilities())
    assert caps.findtext("host/uuid") == host.uuid
    host.conn.defineXML(domxml.to_string(
        file_domain("dih-iso", FileImage(scratch))))
    assert os.path.exists(os.path.join(host.etc, "libvirt/qemu/dih-iso.xml"))
    sysconfdir = environment.libvirt_dirs()[0]
    assert not os.path.exists(os.path.join(sysconfdir, "libvirt/qemu/dih-iso.xml")), \
        f"the definition went to the build's own {sysconfdir}"
    daemon_root = f"/proc/{host.daemon_pid}/root"
    assert os.path.exists(daemon_root + "/dev/null")
    assert not os.path.exists(daemon_root + "/dev/kvm"), \
        "the daemon sees /dev/kvm"
    kvm = caps.findall("guest/arch/domain[@type='kvm']")
    assert not kvm, "libvirt offers KVM guests"


def test_define_dumpxml_native(host, scratch):
    """The error policies survive define and dumpxml, and reach QEMU's
    -device (domxml-to-native)."""
    xml = domxml.to_string(file_domain("dih-conv", FileImage(scratch)))
    dom = host.conn.defineXML(xml)
    driver = domxml.driver_attributes(dom.XMLDesc(0), "vda")
    assert domxml.subset(policies.STOP_WRITES.driver, driver), driver
    argv = host.conn.domainXMLToNative("qemu-argv", xml, 0)
    devices = policies.device_properties(argv, "virtio-blk-pci")
    assert len(devices) == 1, argv
    assert policies.error_properties(devices[0]) == policies.STOP_WRITES.qemu


def test_start_destroy_leaves_nothing(host, scratch):
    """start runs the patched QEMU, destroy ends it; stopping the host
    with a domain running leaves no daemon and no QEMU."""
    dom = host.conn.defineXML(domxml.to_string(
        file_domain("dih-run", FileImage(scratch))))
    dom.create()
    pids = host.qemu_pids()
    assert len(pids) == 1
    assert os.readlink(f"/proc/{pids[0]}/exe") == environment.QEMU
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    dom.destroy()
    assert not pid_alive(pids[0])
    # Left running for the harness to stop.
    dom.create()
    pids += host.qemu_pids()
    assert len(pids) == 2
    daemon = host.proc
    host.stop()
    assert daemon.poll() is not None, "the daemon stopped"
    assert not [p for p in pids if pid_alive(p)], "no QEMU left"


def test_guest_probe_io(host, scratch):
    """The test guest boots under the daemon and its probe writes and
    verifies every block of its disk through virtio-blk."""
    guest = ProbeGuest(host, "dih-guest",
                       [FileImage(scratch).disk(driver=policies.STOP_WRITES.driver)],
                       {"disks": "vda", "blocks": 32, "passes": 2}).start()
    assert guest.wait_done(180) == 0
    summary = guest.console.summary("vda")
    assert summary.writes == 64 and summary.verified == 64 and summary.clean, \
        summary
