#!/usr/bin/python3
"""A daemon restart while a guest's I/O hangs: virtqemud stops and starts
again on the same config and state while requests wait for the storage.
The domain runs on in the same QEMU, the status XML keeps the retry
configuration, and once the outage ends the guest sees no error."""

import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (Console, Host, NbdDisk, check,  # noqa: E402
                     check_verified, guest_domain_xml, pid_alive, run_tests)

DOM = "dih-restart"
RETRY_ATTRS = ("error_policy='retry' rerror_policy='retry' "
               "retry_interval='1000' retry_timeout='0'")


def restart_daemon(h):
    """Stop only the daemon (SIGTERM: its domains keep running), then
    start it again on the host's config and state."""
    daemon = h.proc
    os.killpg(daemon.pid, signal.SIGTERM)
    daemon.wait(timeout=60)
    h.stderr.close()
    h.start()
    return daemon


def test_daemon_restart_during_hang():
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("restart") as h:
        con = Console(os.path.join(d, "console.log"))
        h.virsh("create", "/dev/stdin", input=guest_domain_xml(
            DOM, disk.disk_xml(driver_attrs=RETRY_ATTRS), con.path,
            {"disks": "vda", "blocks": 16, "seconds": 20, "pause_ms": 20}))
        con.wait_for("DIH disk dev=vda", 180)
        pids = h.qemu_pids()
        check(len(pids) == 1, "one QEMU runs: %s" % pids)
        time.sleep(2)
        disk.outage(True)
        time.sleep(3)
        n = len(con.ios())
        time.sleep(2)
        check(len(con.ios()) == n, "the guest's I/O is hanging")
        check(h.virsh("domblkerror", DOM).stdout.startswith("vda:"),
              "a request waits on vda")

        old = restart_daemon(h)
        check(old.poll() is not None and h.proc.pid != old.pid,
              "a new daemon runs (pid %d, was %d)" % (h.proc.pid, old.pid))
        check(h.qemu_pids() == pids and pid_alive(pids[0]),
              "the same QEMU runs on: %s, was %s" % (h.qemu_pids(), pids))
        state = h.virsh("domstate", "--reason", DOM).stdout.strip()
        check(state.startswith("running"), "the domain still runs: %r" % state)
        live = h.virsh("dumpxml", DOM).stdout
        check(RETRY_ATTRS in live,
              "the status XML keeps the retry attributes:\n" + live)
        check(len(con.ios()) == n, "the guest's I/O still hangs")

        disk.outage(False)
        con.wait_for("DIH done", 240)
        check_verified(con)
        held = max(float(io["lat_ms"]) for io in con.ios())
        check(held >= 5000, "an I/O was held through the outage and the "
              "restart (max %.0f ms)" % held)


if __name__ == "__main__":
    sys.exit(run_tests([test_daemon_restart_during_hang]))
