#!/usr/bin/python3
"""What a management application sees of a disk I/O hang: the io-error
events 'virsh event' prints (action 'retry' while a request waits,
'report' when retry_timeout gives up on it) and 'virsh domblkerror'
listing the disk while requests wait."""

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (VIRSH, Console, Failure, Host, NbdDisk,  # noqa: E402
                     check, guest_domain_xml, libvirt_env, run_tests,
                     stop_process)

DOM = "dih-events"
# virsh's line for an io-error event: source path (empty for a network
# disk), device alias, action.
EVENT = re.compile(r"^event 'io-error' for domain '(?P<dom>[^']*)': "
                   r"(?P<path>.*) \((?P<alias>[^)]*)\) (?P<action>\S+)$")


class EventWatch:
    """'virsh event --event io-error --loop' on one domain, its output
    parsed as it arrives."""

    def __init__(self, h, dom, path):
        self.path = path
        self.out = open(path, "w")
        self.proc = subprocess.Popen(
            [VIRSH, "-c", h.uri, "event", "--domain", dom,
             "--event", "io-error", "--loop"],
            env=libvirt_env(), stdout=self.out, stderr=subprocess.STDOUT)

    def events(self):
        with open(self.path, errors="replace") as f:
            # only complete lines: virsh may be in the middle of one
            lines = f.read().split("\n")[:-1]
        return [m.groupdict() for m in map(EVENT.match, lines) if m]

    def wait_for(self, action, since=0, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if [e for e in self.events()[since:] if e["action"] == action]:
                return
            time.sleep(0.2)
        raise Failure("no io-error event with action %r within %d s; got:\n%s"
                      % (action, timeout, open(self.path).read()[-2000:]))

    def stop(self):
        stop_process(self.proc)
        self.out.close()


def wait_domblkerror(h, want, timeout=60):
    """Poll 'virsh domblkerror' until its output satisfies want()."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = h.virsh("domblkerror", DOM).stdout.strip()
        if want(out):
            return out
        time.sleep(0.2)
    return out


def test_io_error_events_and_domblkerror():
    """A short outage: 'retry' events naming the disk, no 'report', the
    disk in domblkerror until the held request completes. Then an outage
    longer than retry_timeout: 'retry' followed by 'report'."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("events") as h:
        con = Console(os.path.join(d, "console.log"))
        h.virsh("create", "/dev/stdin", input=guest_domain_xml(
            DOM, disk.disk_xml(driver_attrs=(
                "error_policy='retry' rerror_policy='retry' "
                "retry_interval='500' retry_timeout='5000'")),
            con.path, {"disks": "vda", "blocks": 16, "seconds": 45,
                       "pause_ms": 20, "mode": "write"}))
        watch = EventWatch(h, DOM, os.path.join(d, "events.log"))
        try:
            con.wait_for("DIH disk dev=vda", 180)
            time.sleep(1)
            check(watch.proc.poll() is None, "virsh event is running: %s"
                  % open(watch.path).read())
            check(watch.events() == [], "no io-error event before the outage")
            blk = h.virsh("domblkerror", DOM).stdout.strip()
            check(blk == "No errors found",
                  "domblkerror before the outage: %r" % blk)

            # Short outage: the request waits and is retried.
            disk.outage(True)
            watch.wait_for("retry")
            blk = wait_domblkerror(h, lambda o: o.startswith("vda:"))
            disk.outage(False)
            check(blk.startswith("vda:"),
                  "domblkerror lists vda while a request waits: %r" % blk)
            blk = wait_domblkerror(h, lambda o: o == "No errors found")
            check(blk == "No errors found",
                  "domblkerror clear after the outage: %r" % blk)
            short = watch.events()
            check(short and all(e["action"] == "retry" for e in short),
                  "only 'retry' events for an outage shorter than "
                  "retry_timeout: %s" % short)
            check(all(e["alias"] == "virtio-disk0" and e["dom"] == DOM
                      for e in short),
                  "the events name the disk (virtio-disk0): %s" % short)
            ios = con.ios()
            check(ios and all(io["res"] == "ok" for io in ios),
                  "the guest saw no error in the short outage")

            # Long outage: the first request gives up after retry_timeout.
            disk.outage(True)
            watch.wait_for("retry", since=len(short))
            watch.wait_for("report", since=len(short), timeout=90)
            disk.outage(False)
            blk = wait_domblkerror(h, lambda o: o == "No errors found")
            check(blk == "No errors found",
                  "domblkerror clear once storage is back: %r" % blk)
            con.wait_for("DIH done", 240)
            long_ = [e["action"] for e in watch.events()[len(short):]]
            check(long_[0] == "retry" and "report" in long_,
                  "the long outage gives 'retry', then 'report': %s" % long_)
            errs = [io for io in con.ios() if io["res"] != "ok"]
            check(errs and all(io["res"] == "EIO" for io in errs),
                  "the guest got EIO once retry_timeout passed: %s" % errs[:3])
        finally:
            watch.stop()


if __name__ == "__main__":
    sys.exit(run_tests([test_io_error_events_and_domblkerror]))
