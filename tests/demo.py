#!/usr/bin/python3
"""The demo './dih main' ends with: the seed's disk XML, the QEMU command
line the patched libvirt generates for it, then a storage outage on a
running guest with exactly that disk and its recovery, as the guest's
probe logs it. The disk's source is a host block device, a loop device
over an nbdfuse file of nbdkit's error filter (dih.storage.BlockDevice).
Everything runs under an isolated daemon of the test library (tests/dih)
and is stopped at the end."""

import json
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dih import domxml, environment, policies, scenarios  # noqa: E402
from dih.events import EventWatcher  # noqa: E402
from dih.guest import ProbeGuest  # noqa: E402
from dih.host import Host  # noqa: E402
from dih.libvirt_api import is_running  # noqa: E402
from dih.storage import BlockDevice  # noqa: E402

# How long the outage holds a request, in seconds (the seed's
# retry_timeout is 10 s).
HOLD = 4
T0 = time.monotonic()
_output = threading.Lock()


def say(text=""):
    with _output:
        print(text, flush=True)


def stamped(who, text, when=None):
    when = time.monotonic() if when is None else when
    say(f"  {when - T0:6.2f}  {who}: {text}")


def show_seed_and_argv(host, devices):
    disk = devices[-1]
    ET.indent(disk)
    say("== the seed's disk XML (product guide, virtio-blk example), its "
        "source this machine's block device")
    say(domxml.to_string(disk))
    argv = host.conn.domainXMLToNative("qemu-argv", domxml.to_string(
        domxml.add_devices(domxml.domain("dih-demo"), *devices)), 0)
    props = policies.device_properties(argv, "virtio-blk-pci")
    say("\n== what the patched libvirt makes of it "
        "(virsh domxml-to-native qemu-argv, the disk's -device)")
    for p in props:
        say(f"-device {json.dumps(p, separators=(',', ':'))}")
    if len(props) != 1 or policies.error_properties(props[0]) != policies.SEED.qemu:
        raise RuntimeError(f"the -device lacks {policies.SEED.qemu}: {props}")

    pause = domxml.disk("block", {"dev": "/dev/dih-demo-storage2"}, "vdc",
                        "virtio", dict(policies.RETRY_THEN_PAUSE.driver,
                                       type="raw", cache="none", io="native"))
    ET.indent(pause)
    say("\n== retry, then pause: the domain pauses only if the storage is "
        "not back after 30 s (an example, not run here)")
    say(domxml.to_string(pause))
    argv = host.conn.domainXMLToNative("qemu-argv", domxml.to_string(
        domxml.add_devices(domxml.domain("dih-demo"), *devices, pause)), 0)
    props = policies.device_properties(argv, "virtio-blk-pci")
    say("\n== its -device")
    say(f"-device {json.dumps(props[-1], separators=(',', ':'))}")
    if len(props) != 2 or policies.error_properties(props[-1]) != \
            policies.RETRY_THEN_PAUSE.qemu:
        raise RuntimeError(f"the -device lacks "
                           f"{policies.RETRY_THEN_PAUSE.qemu}: {props}")


def live_outage(host, device, devices, target):
    say(f"\n== a live outage: a TCG guest writes and verifies the seed's "
        f"disk above ({target}, the guest's vda), {device.path}: a loop "
        f"device with direct I/O over an nbdfuse file of nbdkit")
    say("   host time in seconds; the guest's t= is its own clock, "
        "lat_ms the time each O_DIRECT 4 KiB I/O took")
    guest = ProbeGuest(host, "dih-demo", devices,
                       {"blocks": 8, "passes": 0, "pause_ms": 250})

    def guest_line(line):
        if line.record is not None:
            stamped("guest", line.text, line.time)

    def event(e):
        stamped("host", f"event io-error on {e.dev_alias}: {e.action}", e.time)

    with guest.console.follow(0.05, guest_line), \
            EventWatcher(host, guest.name, on_event=event):
        guest.start()
        stamped("host", "guest started")
        guest.wait_disk()
        before = guest.wait_pass()
        device.outage(True)
        stamped("host", "storage outage begins (nbdkit fails every request "
                f"with EIO, and so does {device.path})")
        held = guest.wait_held(target)
        stamped("host", "the domain is " +
                ("running" if is_running(guest.dom) else "not running") +
                f"; its disk errors: {guest.dom.diskErrors()}")
        guest.assert_held(held, HOLD)
        device.outage(False)
        stamped("host", "storage is back")
        first = guest.wait_io(held, "the held I/O to complete")
        counts = guest.wait_pass()
    guest.dom.destroy()
    say(f"\n== result: the guest saw {counts.errors} errors, "
        f"{counts.verified - before.verified} more blocks read back and "
        f"verified; the held I/O waited {first.lat_ms:.0f} ms")
    scenarios.assert_clean(counts, before)


def main():
    environment.use_libvirt_build()
    with environment.runtime_directory("dih-demo-storage-") as d, \
            Host("demo") as host, \
            BlockDevice(d) as device:
        devices, target = policies.seed_devices(source=device.path)
        show_seed_and_argv(host, devices)
        live_outage(host, device, devices, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
