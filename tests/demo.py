#!/usr/bin/python3
"""The demo './dih main' ends with: the seed's disk XML, the QEMU command
line the patched libvirt generates for it, then a storage outage on a
running guest with exactly that disk and its recovery, as the guest's
probe logs it; then retry, pause, resume: the same disk with
error_policy='stop' and auto_resume='on' through a 60 s outage, which
pauses the domain after the seed's retry_timeout, and the domain
resuming by itself once the storage is back. The disk's source is a host block device, a loop device
over an nbdfuse file of nbdkit's error filter (dih.storage.BlockDevice).
Everything runs under an isolated daemon of the test library (tests/dih)
and is stopped at the end."""

import json
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET

import libvirt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dih import domxml, environment, policies, scenarios  # noqa: E402
from dih.events import EventWatcher, LifecycleWatcher  # noqa: E402
from dih.guest import ProbeGuest  # noqa: E402
from dih.host import Host  # noqa: E402
from dih.libvirt_api import (RESUMED_STORAGE_RECOVERED,  # noqa: E402
                             is_running)
from dih.storage import BlockDevice  # noqa: E402

# How long the outage holds a request, in seconds (the seed's
# retry_timeout is 10 s).
HOLD = 4
# The outage that pauses the domain with auto_resume='on', in seconds.
LONG_OUTAGE = 60
LIFECYCLE = {(libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
              libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR):
             "suspended (I/O error)",
             (libvirt.VIR_DOMAIN_EVENT_RESUMED, RESUMED_STORAGE_RECOVERED):
             "resumed (storage recovered)"}
STATE = {tuple(scenarios.PAUSED_IOERROR): "paused (I/O error)",
         tuple(scenarios.RUNNING_RECOVERED): "running (storage recovered)"}
T0 = time.monotonic()
_output = threading.Lock()


def say(text=""):
    with _output:
        print(text, flush=True)


def stamped(who, text, when=None):
    when = time.monotonic() if when is None else when
    say(f"  {when - T0:6.2f}  {who}: {text}")


def guest_line(line):
    """Print a line of the guest probe's log."""
    if line.record is not None:
        stamped("guest", line.text, line.time)


def io_event(e):
    """Print an io-error event."""
    stamped("host", f"event io-error on {e.dev_alias}: {e.action}", e.time)


def show_device(host, devices, policy, heading):
    """Print heading and the -device the patched libvirt makes of the last
    of devices, a virtio disk, in a domain with them all (virsh
    domxml-to-native qemu-argv); fail unless its error properties are
    policy's."""
    argv = host.conn.domainXMLToNative("qemu-argv", domxml.to_string(
        domxml.add_devices(domxml.domain("dih-demo"), *devices)), 0)
    props = policies.device_properties(argv, "virtio-blk-pci")
    say(heading)
    say(f"-device {json.dumps(props[-1], separators=(',', ':'))}")
    disks = sum(1 for d in devices if d.tag == "disk")
    if len(props) != disks or policies.error_properties(props[-1]) != \
            policy.qemu:
        raise RuntimeError(f"the -device lacks {policy.qemu}: {props}")


def show_seed_and_argv(host, devices):
    disk = devices[-1]
    ET.indent(disk)
    say("== the seed's disk XML (product guide, virtio-blk example), its "
        "source this machine's block device")
    say(domxml.to_string(disk))
    show_device(host, devices, policies.SEED,
                "\n== what the patched libvirt makes of it "
                "(virsh domxml-to-native qemu-argv, the disk's -device)")

    pause = domxml.disk("block", {"dev": "/dev/dih-demo-storage2"}, "vdc",
                        "virtio", dict(policies.RETRY_THEN_PAUSE.driver,
                                       type="raw", cache="none", io="native"))
    ET.indent(pause)
    say("\n== retry, then pause: the domain pauses only if the storage is "
        "not back after 30 s (an example, not run here)")
    say(domxml.to_string(pause))
    show_device(host, devices + [pause], policies.RETRY_THEN_PAUSE,
                "\n== its -device")


def live_outage(host, device, devices, target):
    say(f"\n== a live outage: a TCG guest writes and verifies the seed's "
        f"disk above ({target}, the guest's vda), {device.path}: a loop "
        f"device with direct I/O over an nbdfuse file of nbdkit")
    say("   host time in seconds; the guest's t= is its own clock, "
        "lat_ms the time each O_DIRECT 4 KiB I/O took")
    guest = ProbeGuest(host, "dih-demo", devices,
                       {"blocks": 8, "passes": 0, "pause_ms": 250})

    with guest.console.follow(0.05, guest_line), \
            EventWatcher(host, guest.name, on_event=io_event):
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


def pause_and_resume(host, device):
    devices, target = policies.seed_devices(
        source=device.path, policy=policies.SEED_AUTO_RESUME)
    disk = devices[-1]
    ET.indent(disk)
    say("\n== retry, pause, resume: the seed's disk with error_policy='stop' "
        "(retry for retry_timeout, then pause) and auto_resume='on'")
    say(domxml.to_string(disk))
    show_device(host, devices, policies.SEED_AUTO_RESUME, "\n== its -device")
    say(f"\n== a {LONG_OUTAGE} s outage on {device.path}, longer than the "
        f"retry_timeout: the guest's I/O lines, libvirt's events")
    guest = ProbeGuest(host, "dih-demo-resume", devices,
                       {"blocks": 8, "passes": 0, "pause_ms": 250})

    def state():
        now = tuple(guest.dom.state())
        return STATE.get(now, str(now))

    with guest.console.follow(0.05, guest_line), \
            EventWatcher(host, guest.name, on_event=io_event), \
            LifecycleWatcher(host, guest.name) as lifecycle:
        guest.start()
        stamped("host", "guest started")
        guest.wait_disk()
        before = guest.wait_pass()
        held, begin = scenarios.storage_pause(guest, device, lifecycle,
                                              target=target)
        stamped("host", "storage outage began (every request fails with "
                "EIO)", begin)
        paused = lifecycle.events()[-1]
        stamped("host", "event lifecycle: " + LIFECYCLE.get(
            (paused.event, paused.detail), str(paused)), paused.time)
        stamped("host", f"domain state: {state()}; disk errors: "
                f"{guest.dom.diskErrors()}; libvirt's messages: " +
                str([m for m in guest.dom.messages(0)
                     if m.startswith("I/O error")]))
        scenarios.stays_paused(guest, begin + LONG_OUTAGE - time.monotonic())
        stamped("host", "the domain stayed paused; storage comes back")
        latency = scenarios.storage_resume(guest, device, lifecycle, held)
        resumed = lifecycle.events()[-1]
        stamped("host", "event lifecycle: " + LIFECYCLE.get(
            (resumed.event, resumed.detail), str(resumed)), resumed.time)
        stamped("host", f"domain state: {state()}")
        counts = guest.wait_pass()
    guest.dom.destroy()
    say(f"\n== result: paused for a {LONG_OUTAGE} s outage, resumed "
        f"{latency * 1000:.0f} ms after the storage came back "
        f"(retry_interval {policies.SEED_AUTO_RESUME.driver['retry_interval']}"
        f" ms); the guest saw {counts.errors} errors, "
        f"{counts.verified - before.verified} more blocks read back and "
        "verified")
    scenarios.assert_clean(counts, before)


def main():
    environment.use_libvirt_build()
    with environment.runtime_directory("dih-demo-storage-") as d, \
            Host("demo") as host, \
            BlockDevice(d) as device:
        devices, target = policies.seed_devices(source=device.path)
        show_seed_and_argv(host, devices)
        live_outage(host, device, devices, target)
        pause_and_resume(host, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
