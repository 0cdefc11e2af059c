#!/usr/bin/python3
"""qemu-pr-helper wiring with real processes: a LUN with managed persistent
reservations and the 'retry' policy makes libvirt start qemu-pr-helper
before QEMU; when QEMU then fails to start, the helper is stopped too.

This machine has no SCSI device, so the LUN is a loop device: QEMU's
scsi-block refuses it (no SG_IO) after libvirt has started the helper,
which is exactly the failed start to prove clean-up with."""

import contextlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (QEMU, QEMU_BUILD, Host, check,  # noqa: E402
                     domain_xml, pid_alive, run_tests)

PR_HELPER = os.path.join(QEMU_BUILD, "qemu-pr-helper")

LUN = """    <disk type='block' device='lun'>
      <driver name='qemu' type='raw' cache='none' error_policy='retry' rerror_policy='retry' retry_interval='1000' retry_timeout='30000'/>
      <source dev='{dev}'>
        <reservations managed='yes'/>
      </source>
      <target dev='sda' bus='scsi'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>"""

CONTROLLER = "    <controller type='scsi' index='0' model='virtio-scsi'/>\n"


@contextlib.contextmanager
def loop_device(d):
    img = os.path.join(d, "lun.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    dev = subprocess.run(["losetup", "--find", "--show", img], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def wrapper(d, name, real):
    """An executable that records its PID, start time and arguments in
    NAME.starts, then becomes REAL."""
    log = os.path.join(d, name + ".starts")
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write('#!/bin/sh\necho "$$ $(date +%%s.%%N) $*" >> %s\nexec %s "$@"\n'
                % (log, real))
    os.chmod(path, 0o755)
    return path, log


def starts(log, match=""):
    """(pid, time, args) of each recorded start whose args contain match."""
    out = []
    if os.path.exists(log):
        for line in open(log):
            f = line.split(None, 2)
            if len(f) >= 2 and match in line:
                out.append((int(f[0]), float(f[1]), f[2] if len(f) > 2 else ""))
    return out


def helper_pids():
    r = subprocess.run(["pgrep", "-f", "qemu-pr-helper"], capture_output=True,
                       text=True)
    return {int(p) for p in r.stdout.split()}


def test_failed_start_leaves_no_helper():
    before = helper_pids()
    with tempfile.TemporaryDirectory() as d, loop_device(d) as dev:
        helper, helper_log = wrapper(d, "qemu-pr-helper", PR_HELPER)
        qemu, qemu_log = wrapper(d, "qemu-system-x86_64", QEMU)
        h = Host("pr")
        try:
            h.start(qemu_conf_extra='pr_helper = "%s"\n' % helper)
            h.virsh("define", "/dev/stdin",
                    input=domain_xml("dih-pr", LUN.format(dev=dev),
                                     devices_extra=CONTROLLER).replace(
                                         "<emulator>%s<" % QEMU,
                                         "<emulator>%s<" % qemu))
            dump = h.virsh("dumpxml", "dih-pr").stdout
            check("<reservations managed='yes'/>" in dump and
                  "error_policy='retry'" in dump,
                  "the LUN keeps retry and managed reservations:\n" + dump)

            r = h.virsh("start", "dih-pr", check=False)
            check(r.returncode != 0, "starting with a loop device as LUN fails")
            check("scsi-block" in r.stderr and "SCSI" in r.stderr,
                  "QEMU's scsi-block refuses the loop device: " + r.stderr.strip())

            helpers = starts(helper_log)
            check(len(helpers) == 1,
                  "libvirt started the managed qemu-pr-helper once: %s" % helpers)
            pid, when, args = helpers[0]
            check("-k" in args.split(), "the helper got its socket (-k): %s" % args)
            guests = starts(qemu_log, "guest=dih-pr")
            check(len(guests) == 1, "QEMU was started for the domain: %s" % guests)
            check(when < guests[0][1],
                  "the helper started (%.3f) before QEMU (%.3f)" % (
                      when, guests[0][1]))

            # The failed start stops the helper; give its exit a moment.
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            check(not pid_alive(pid), "qemu-pr-helper %d gone after the "
                  "failed start" % pid)
            check(helper_pids() - before == set(),
                  "no qemu-pr-helper left: %s" % (helper_pids() - before))
            check(h.qemu_pids() == [], "no QEMU left: %s" % h.qemu_pids())
            state = h.virsh("domstate", "dih-pr").stdout.strip()
            check(state == "shut off", "domain shut off, got %r" % state)
        except Exception:
            sys.stderr.write("--- daemon log ---\n%s\n" % h.daemon_log_tail())
            raise
        finally:
            h.cleanup()
    check(helper_pids() - before == set(), "no qemu-pr-helper left at the end")


if __name__ == "__main__":
    sys.exit(run_tests([test_failed_start_leaves_no_helper]))
