"""Domain XML, built and edited with ElementTree.

Tests compare parsed elements and attribute values, never XML text, so
nothing depends on the order in which libvirt writes attributes.
"""

import xml.etree.ElementTree as ET

from . import environment


def element(tag, attrib=None, text=None, children=()):
    """A new element with string attribute values."""
    el = ET.Element(tag, {k: str(v) for k, v in (attrib or {}).items()})
    el.text = text
    el.extend(children)
    return el


def domain(name, memory_mib=256, machine="pc", emulator=None):
    """A small TCG domain: one vCPU, no USB, no balloon, no disk yet."""
    return element("domain", {"type": "qemu"}, children=[
        element("name", text=name),
        element("memory", {"unit": "MiB"}, str(memory_mib)),
        element("vcpu", text="1"),
        element("os", children=[
            element("type", {"arch": "x86_64", "machine": machine}, "hvm")]),
        element("devices", children=[
            element("emulator", text=emulator or environment.QEMU),
            element("controller", {"type": "usb", "model": "none"}),
            element("memballoon", {"model": "none"})]),
    ])


def set_iothreads(dom, count):
    """Give the domain count I/O threads (<iothreads>), numbered from 1."""
    dom.insert(list(dom).index(dom.find("vcpu")) + 1,
               element("iothreads", text=str(count)))
    return dom


def add_devices(dom, *devices):
    """Append devices to the domain's <devices>."""
    dom.find("devices").extend(devices)
    return dom


def boot_kernel(dom, kernel, initrd, cmdline):
    """Boot kernel and initrd directly with the given command line."""
    dom.find("os").extend([element("kernel", text=kernel),
                           element("initrd", text=initrd),
                           element("cmdline", text=cmdline)])
    return dom


def enable_acpi(dom):
    """Give the machine ACPI (<features><acpi/></features>)."""
    features = dom.find("features")
    if features is None:
        features = element("features")
        dom.insert(list(dom).index(dom.find("os")) + 1, features)
    features.append(element("acpi"))
    return dom


def destroy_on_exit(dom):
    """End the domain when the guest powers off, reboots or crashes."""
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        dom.append(element(event, text="destroy"))
    return dom


def serial_file(path, append=False):
    """A serial port (ttyS0) whose output goes to path."""
    source = {"path": path}
    if append:
        source["append"] = "on"
    return element("serial", {"type": "file"}, children=[
        element("source", source), element("target", {"port": 0})])


def disk(kind, source, target, bus="virtio", driver=None, device="disk",
         source_children=(), address=None):
    """A <disk>: kind is its type (file, block, network), source the
    attributes of <source>, driver extra attributes of <driver> (the
    error policy), address those of an <address>."""
    attrs = {"name": "qemu", "type": "raw", "cache": "none"}
    attrs.update(driver or {})
    children = [element("driver", attrs),
                element("source", source, children=source_children),
                element("target", {"dev": target, "bus": bus})]
    if address:
        children.append(element("address", address))
    return element("disk", {"type": kind, "device": device},
                   children=children)


# The <address type='drive'> of a disk at unit 0 of SCSI controller 0,
# bus 0, target 0: where the tests put their one SCSI disk.
SCSI_DRIVE = {"type": "drive", "controller": 0, "bus": 0, "target": 0,
              "unit": 0}


def controller(kind, index=None, model=None):
    """A <controller> of the given type."""
    attrs = {"type": kind}
    if index is not None:
        attrs["index"] = index
    if model:
        attrs["model"] = model
    return element("controller", attrs)


def to_string(el):
    return ET.tostring(el, encoding="unicode")


def parse(xml):
    return ET.fromstring(xml)


def find_disk(dom, target):
    """The <disk> of dom (an element) whose target is target."""
    for d in dom.iter("disk"):
        if d.find("target").get("dev") == target:
            return d
    raise LookupError(f"no disk {target} in the domain XML")


def driver_attributes(dom_xml, target):
    """The <driver> attributes of disk target in a domain's XML text."""
    return dict(find_disk(parse(dom_xml), target).find("driver").attrib)


def subset(attrs, of):
    """Whether every attribute in attrs has the same value in of."""
    return all(of.get(k) == str(v) for k, v in attrs.items())
