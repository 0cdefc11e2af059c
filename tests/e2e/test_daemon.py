#!/usr/bin/python3
"""The isolated daemon harness on the patched builds: a private virtqemud
defines, converts, starts and destroys a domain; nothing is left behind."""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (Console, Host, QEMU, check, device_json,  # noqa: E402
                     domain_xml, guest_domain_xml, pid_alive, run_tests)

DISK = """    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' error_policy='stop' rerror_policy='report'/>
      <source file='{img}'/>
      <target dev='vda' bus='virtio'/>
    </disk>"""


def make_image(d):
    img = os.path.join(d, "disk.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    return img


def test_daemon_is_isolated():
    with Host("iso") as h:
        caps = h.virsh("capabilities").stdout
        m = re.search(r"<uuid>([0-9a-f-]+)</uuid>", caps)
        check(m and m.group(1) == h.uuid,
              "host UUID %s from the private config, got %s" % (
                  h.uuid, m.group(1) if m else None))
        h.virsh("define", "/dev/stdin",
                input=domain_xml("dih-iso", DISK.format(img="/dev/null")))
        check(os.path.exists(os.path.join(h.etc, "libvirt/qemu/dih-iso.xml")),
              "the definition lands in the host's private config directory")
        check(not os.path.exists("/etc/libvirt/qemu/dih-iso.xml"),
              "nothing is written to the machine's /etc/libvirt")


def test_define_dumpxml_native():
    with tempfile.TemporaryDirectory() as d, Host("conv") as h:
        xml = domain_xml("dih-conv", DISK.format(img=make_image(d)))
        h.virsh("define", "/dev/stdin", input=xml)
        dump = h.virsh("dumpxml", "dih-conv").stdout
        check("error_policy='stop'" in dump and "rerror_policy='report'" in dump,
              "dumpxml keeps the error policies:\n" + dump)
        argv = h.virsh("domxml-to-native", "qemu-argv", "/dev/stdin",
                       input=xml).stdout
        devs = device_json(argv, "virtio-blk-pci")
        check(len(devs) == 1, "one virtio-blk-pci -device in:\n" + argv)
        check(devs[0].get("werror") == "stop" and devs[0].get("rerror") == "report",
              "werror/rerror on the -device: %s" % devs[0])


def test_start_destroy_leaves_nothing():
    with tempfile.TemporaryDirectory() as d:
        h = Host("run")
        pids = []
        try:
            h.start()
            h.virsh("define", "/dev/stdin",
                    input=domain_xml("dih-run", DISK.format(img=make_image(d))))
            h.virsh("start", "dih-run")
            pids += h.qemu_pids()
            check(len(pids) == 1, "one QEMU process runs, got %s" % pids)
            exe = os.readlink("/proc/%d/exe" % pids[0])
            check(exe == QEMU, "the patched QEMU runs (%s), not %s" % (QEMU, exe))
            state = h.virsh("domstate", "dih-run").stdout.strip()
            check(state == "running", "domain running, got %r" % state)
            h.virsh("destroy", "dih-run")
            check(not pid_alive(pids[0]), "QEMU gone after destroy")
            # A second run is left running for the harness to stop.
            h.virsh("start", "dih-run")
            pids += h.qemu_pids()
            check(len(pids) == 2, "the domain started again: %s" % pids)
        finally:
            daemon = h.proc
            h.cleanup()
        check(daemon.poll() is not None, "the daemon stopped")
        check(not [p for p in pids if pid_alive(p)],
              "no QEMU left behind by the harness: %s" % pids)


def test_guest_probe_io():
    """The test guest boots under the daemon and the probe verifies its
    disk through virtio-blk."""
    with tempfile.TemporaryDirectory() as d, Host("guest") as h:
        con = Console(os.path.join(d, "console.log"))
        h.virsh("create", "/dev/stdin", input=guest_domain_xml(
            "dih-guest", DISK.format(img=make_image(d)), con.path,
            {"disks": "vda", "blocks": 32, "passes": 2}))
        done = con.wait_for("DIH done", 180)
        check(done == "DIH done rc=0", "probe finished cleanly: " + done)
        s = con.summary("vda")
        check(s and s["writes"] == 64 and s["verified"] == 64 and
              s["errors"] == 0 and s["bad"] == 0,
              "every block written and verified: %s" % s)


if __name__ == "__main__":
    sys.exit(run_tests([test_daemon_is_isolated, test_define_dumpxml_native,
                        test_start_destroy_leaves_nothing,
                        test_guest_probe_io]))
