"""Hotplug of a retry disk into the seed's controller layout: a q35 guest
with pcie-root-port controllers (seed 000, the simplified configuration)
gets a virtio-blk disk with error_policy='retry' on one of its root ports
(virsh attach-device --live). The retry properties reach QEMU through
device_add, and an outage on the hotplugged disk is ridden out."""

import libvirt

from dih import domxml, policies, scenarios
from dih.guest import ProbeGuest
from dih.libvirt_api import qemu_monitor

ROOT_PORT = 4
POLICY = policies.retry(500, 20000)
HOLD = 3


def seed_controllers():
    """Seed 000, 'simplified configuration': libvirt fills in the rest."""
    models = ["pcie-root", "pcie-root-port", "pcie-to-pci-bridge",
              "pcie-root-port", "pcie-root-port", "pcie-root-port"]
    return [domxml.controller("pci", i, m) for i, m in enumerate(models)]


def test_hotplug_retry_disk_on_root_port(host, nbd_disk):
    """The disk lands on root port 4 with its retry attributes, QEMU's
    device there has the retry properties, and the guest, which waited
    for the disk, rides out an outage on it."""
    # q35 (with ACPI, as every probe guest): QEMU's ACPI PCI hotplug
    # announces the new device to the guest (without ACPI the guest kernel
    # drops the root ports).
    guest = ProbeGuest(host, "dih-hotplug", seed_controllers(),
                       {"disks": "vda", "wait": 300, "blocks": 16,
                        "passes": 0, "pause_ms": 20},
                       machine="q35").start()
    ports = guest.live_xml().findall(
        "devices/controller[@type='pci'][@model='pcie-root-port']")
    assert len(ports) == 4
    # /init runs and waits for vda, which is not there yet.
    guest.wait_line(r"DIH start$", 180)
    assert not [line for line in guest.console.lines()
                if line.startswith("DIH disk")]

    disk = nbd_disk.disk(driver=POLICY.driver, address={
        "type": "pci", "domain": "0x0000", "bus": f"0x{ROOT_PORT:02x}",
        "slot": "0x00", "function": "0x0"})
    guest.dom.attachDeviceFlags(domxml.to_string(disk),
                                libvirt.VIR_DOMAIN_AFFECT_LIVE)
    live = domxml.find_disk(guest.live_xml(), "vda")
    assert domxml.subset(POLICY.driver, live.find("driver").attrib)
    assert int(live.find("address").get("bus"), 16) == ROOT_PORT

    # What QEMU itself has: the device's properties and its place.
    path = "/machine/peripheral/virtio-disk0"
    got = {p: qemu_monitor(guest.dom, "qom-get", path=path, property=p)
           for p in POLICY.qemu}
    assert got == POLICY.qemu
    parent = qemu_monitor(guest.dom, "qom-get", path=path,
                          property="parent_bus")
    assert parent.startswith(f"/machine/peripheral/pci.{ROOT_PORT}"), parent

    guest.wait_disk(timeout=120)
    scenarios.ride_out_outage(guest, nbd_disk, HOLD)
