#!/usr/bin/python3
"""Storage outages on the 'cloud disk' (nbdkit + error filter) seen by the
guest probe, with the error policies that exist without 'retry': the
outage machinery itself is proved here."""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (Console, Host, NbdDisk, check,  # noqa: E402
                     guest_domain_xml, run_tests)


def start_guest(h, d, disk, policy, params):
    con = Console(os.path.join(d, "console.log"))
    h.virsh("create", "/dev/stdin", input=guest_domain_xml(
        "dih-outage", disk.disk_xml(driver_attrs=policy), con.path, params))
    con.wait_for("DIH disk dev=vda", 180)
    return con


def test_report_policy_guest_sees_eio():
    """error_policy='report': during an outage the guest's I/O fails with
    EIO at once, and works again once the outage ends."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("report") as h:
        con = start_guest(h, d, disk, "error_policy='report'",
                          {"disks": "vda", "blocks": 8, "seconds": 12,
                           "pause_ms": 50, "mode": "write"})
        time.sleep(2)
        t_on = disk.outage(True)
        time.sleep(3)
        disk.outage(False)
        con.wait_for("DIH done", 120)
        ios = con.ios()
        errs = [io for io in ios if io["res"] != "ok"]
        check(errs, "the guest saw errors during the outage")
        check(all(io["res"] == "EIO" for io in errs),
              "every failure is EIO: %s" % {io["res"] for io in errs})
        check(ios[-1]["res"] == "ok", "I/O works after the outage")
        check(max(float(io["lat_ms"]) for io in errs) < 1000,
              "report fails fast, no request is held")
        del t_on


def test_stop_policy_pauses_vm():
    """error_policy='stop': the VM pauses with an I/O error; after the
    outage a resume retries the request and the guest sees no error."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("stop") as h:
        con = start_guest(h, d, disk, "error_policy='stop'",
                          {"disks": "vda", "blocks": 8, "passes": 40,
                           "pause_ms": 20})
        time.sleep(1)
        disk.outage(True)
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            state = h.virsh("domstate", "--reason", "dih-outage").stdout.strip()
            if state.startswith("paused"):
                break
            time.sleep(0.2)
        check(state == "paused (I/O error)", "VM paused on the I/O error: %r" % state)
        blkerr = h.virsh("domblkerror", "dih-outage").stdout
        check("vda" in blkerr, "domblkerror names the disk: %r" % blkerr)
        disk.outage(False)
        h.virsh("resume", "dih-outage")
        con.wait_for("DIH done", 300)
        s = con.summary("vda")
        check(s and s["errors"] == 0 and s["bad"] == 0 and s["verified"] == 320,
              "no guest error, every block verified: %s" % s)


if __name__ == "__main__":
    sys.exit(run_tests([test_report_policy_guest_sees_eio,
                        test_stop_policy_pauses_vm]))
