#!/usr/bin/python3
"""The demo './dih main' ends with: the seed's disk XML, the QEMU command
line the patched libvirt generates for it, then a storage outage on a
running guest's retry disk and its recovery, as the guest's probe logs
it. Everything runs under an isolated daemon of the e2e harness and is
stopped at the end."""

import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (VIRSH, Console, Host, NbdDisk, check,  # noqa: E402
                     device_json, domain_xml, guest_domain_xml, libvirt_env)
from test_retry import SEED_VIRTIO  # noqa: E402

DOM = "dih-demo"
ATTRS = ("error_policy='retry' rerror_policy='retry' "
         "retry_interval='500' retry_timeout='20000'")
T0 = time.monotonic()
out_lock = threading.Lock()


def say(text=""):
    with out_lock:
        print(text, flush=True)


def host(text):
    say("  %6.2f  host: %s" % (time.monotonic() - T0, text))


class Tail(threading.Thread):
    """Print the probe's lines from the guest console as they arrive."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.done = False

    def run(self):
        f, buf = None, ""
        while True:
            if f is None and os.path.exists(self.path):
                f = open(self.path, errors="replace")
            data = f.read() if f else ""
            if not data:
                if self.done:
                    break
                time.sleep(0.05)
                continue
            buf += data
            *lines, buf = buf.split("\n")
            for l in lines:
                if l.strip().startswith("DIH"):
                    say("  %6.2f  guest: %s" % (time.monotonic() - T0, l.strip()))
        if f:
            f.close()


def show_seed_and_argv(h):
    disk = SEED_VIRTIO.format(dev="/dev/dih-demo-storage")
    say("== the seed's disk XML (product guide, virtio-blk example)")
    say(disk)
    argv = h.virsh("domxml-to-native", "qemu-argv", "/dev/stdin",
                   input=domain_xml(DOM, disk)).stdout
    say("\n== what the patched libvirt makes of it "
        "(virsh domxml-to-native qemu-argv, the disk's -device)")
    for tok in argv.split():
        if tok.startswith("'{\"driver\":\"virtio-blk-pci\""):
            say("-device " + tok)
    dev = device_json(argv, "virtio-blk-pci")
    check(dev and dev[0].get("werror") == "retry" and
          dev[0].get("retry_interval") == 2000 and
          dev[0].get("retry_timeout") == 10000,
          "the retry properties are on the -device: %s" % dev)


def live_outage(h, d, disk):
    con = Console(os.path.join(d, "console.log"))
    say("\n== a live outage: a TCG guest writes and verifies its disk "
        "(nbdkit over a unix socket), %s" % ATTRS)
    say("   host time in seconds; the guest's t= is its own clock, "
        "lat_ms the time each O_DIRECT 4 KiB I/O took")
    tail = Tail(con.path)
    tail.start()
    h.virsh("create", "/dev/stdin", input=guest_domain_xml(
        DOM, disk.disk_xml(driver_attrs=ATTRS), con.path,
        {"disks": "vda", "blocks": 8, "seconds": 10, "pause_ms": 250}))
    host("guest started")
    # The domain's io-error events, as 'virsh event' prints them.
    events = subprocess.Popen(
        [VIRSH, "-c", h.uri, "event", "--domain", DOM, "--event", "io-error",
         "--loop"], env=libvirt_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=lambda: [
        host("event: " + l.strip()) for l in events.stdout if l.strip()],
        daemon=True).start()
    try:
        con.wait_for("DIH disk dev=vda", 180)
        time.sleep(2)
        disk.outage(True)
        host("storage outage begins (nbdkit fails every request with EIO)")
        time.sleep(2)
        host("domstate: %s; domblkerror: %s" % (
            h.virsh("domstate", DOM).stdout.strip(),
            h.virsh("domblkerror", DOM).stdout.strip()))
        time.sleep(2)
        disk.outage(False)
        host("storage is back")
        con.wait_for("DIH done", 240)
        time.sleep(0.3)
    finally:
        tail.done = True
        tail.join()
        events.terminate()
        events.wait()
    s = con.summary("vda")
    held = max(float(io["lat_ms"]) for io in con.ios())
    say("\n== result: the guest saw %d errors, %d of %d blocks read back "
        "verified; the longest I/O was held %.0f ms" % (
            s["errors"], s["verified"], s["reads"], held))
    check(s["errors"] == 0 and s["bad"] == 0, "no guest error: %s" % s)


def main():
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("demo") as h:
        show_seed_and_argv(h)
        live_outage(h, d, disk)
    return 0


if __name__ == "__main__":
    sys.exit(main())
