#!/usr/bin/python3
"""Hotplug of a retry disk into the seed's controller layout: a q35 guest
with pcie-root-port controllers (seed 000, the simplified configuration)
gets a virtio-blk disk with error_policy='retry' through
'virsh attach-device --live' on one of its root ports. The retry
properties reach QEMU through device_add, and an outage on the hotplugged
disk is ridden out."""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (Console, Host, NbdDisk, check,  # noqa: E402
                     check_verified, guest_domain_xml, run_tests)

# Seed 000, "simplified configuration": libvirt fills in the rest.
SEED_CONTROLLERS = """    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'/>
    <controller type='pci' index='2' model='pcie-to-pci-bridge'/>
    <controller type='pci' index='3' model='pcie-root-port'/>
    <controller type='pci' index='4' model='pcie-root-port'/>
    <controller type='pci' index='5' model='pcie-root-port'/>
"""

ROOT_PORT_BUS = 4
RETRY_ATTRS = ("error_policy='retry' rerror_policy='retry' "
               "retry_interval='500' retry_timeout='20000'")
RETRY_PROPS = {"werror": "retry", "rerror": "retry",
               "retry_interval": 500, "retry_timeout": 20000}


def hotplug_disk_xml(disk):
    """The disk to attach, on the root port with index ROOT_PORT_BUS."""
    xml = disk.disk_xml(driver_attrs=RETRY_ATTRS)
    return xml.replace("    </disk>", """      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>
    </disk>""" % ROOT_PORT_BUS)


def qmp(h, dom, cmd, **args):
    r = h.virsh("qemu-monitor-command", dom,
                json.dumps({"execute": cmd, "arguments": args}))
    return json.loads(r.stdout)["return"]


def test_hotplug_retry_disk_on_root_port():
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("hotplug") as h:
        con = Console(os.path.join(d, "console.log"))
        xml = guest_domain_xml("dih-hotplug", "", con.path,
                               {"disks": "vda", "wait": 300, "blocks": 16,
                                "seconds": 14, "pause_ms": 20},
                               extra_devices=SEED_CONTROLLERS)
        # q35 with ACPI: QEMU's ACPI PCI hotplug announces the new device
        # to the guest (without ACPI the guest kernel drops the root ports).
        xml = xml.replace("machine='pc'", "machine='q35'").replace(
            "  <devices>", "  <features>\n    <acpi/>\n  </features>\n"
            "  <devices>", 1)
        h.virsh("create", "/dev/stdin", input=xml)
        live = h.virsh("dumpxml", "dih-hotplug").stdout
        ports = live.count("model='pcie-root-port'")
        check(ports == 4, "the seed's four pcie-root-ports are in the live "
              "XML, got %d" % ports)
        # The guest's /init runs: it waits for vda, which does not exist yet.
        con.wait_for("DIH start", 180)
        check(not any(l.startswith("DIH disk") for l in con.lines()),
              "the guest has no disk before the hotplug")

        h.virsh("attach-device", "dih-hotplug", "/dev/stdin", "--live",
                input=hotplug_disk_xml(disk))
        live = h.virsh("dumpxml", "dih-hotplug").stdout
        check(RETRY_ATTRS in live,
              "the live XML carries the retry attributes:\n" + live)
        check("bus='0x%02x' slot='0x00'" % ROOT_PORT_BUS in live,
              "the disk sits on the root port's bus:\n" + live)

        # What QEMU itself has: the device's properties and its place.
        path = "/machine/peripheral/virtio-disk0"
        got = {p: qmp(h, "dih-hotplug", "qom-get", path=path, property=p)
               for p in RETRY_PROPS}
        check(got == RETRY_PROPS, "QEMU's virtio-disk0 has %s, got %s" % (
            RETRY_PROPS, got))
        parent = qmp(h, "dih-hotplug", "qom-get", path=path,
                     property="parent_bus")
        port_path = "/machine/peripheral/pci.%d" % ROOT_PORT_BUS
        check(parent.startswith(port_path),
              "virtio-disk0 hangs below %s, got %r" % (port_path, parent))

        con.wait_for("DIH disk dev=vda", 120)
        time.sleep(2)
        disk.outage(True)
        time.sleep(4)
        state = h.virsh("domstate", "dih-hotplug").stdout.strip()
        disk.outage(False)
        check(state == "running", "the VM keeps running during the outage: %r"
              % state)
        con.wait_for("DIH done", 240)
        check_verified(con)
        held = max(float(io["lat_ms"]) for io in con.ios())
        check(held >= 3000, "an I/O was held through the outage (max %.0f ms)"
              % held)


if __name__ == "__main__":
    sys.exit(run_tests([test_hotplug_retry_disk_on_root_port]))
