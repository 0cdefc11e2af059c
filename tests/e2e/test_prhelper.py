"""qemu-pr-helper wiring on real processes: a LUN with managed persistent
reservations and the retry policy makes libvirt start qemu-pr-helper
before QEMU; when QEMU then fails to start, the helper is stopped too.

The failed start needs no SCSI device: the LUN is a loop device, which
QEMU's scsi-block refuses (no SG_IO) after libvirt has started the
helper, which is exactly the failed start to prove the clean-up with. A
guest that runs with the helper and sends reservations through it needs
a host SCSI disk that the test may write to, named by DIH_SCSI_LUN;
without one that test is skipped. (Reservations on a real SCSI target,
without the helper: test_reservations.py, over iSCSI.) Wrappers around
the helper and QEMU record their PIDs and start times."""

import glob
import os
import subprocess

import libvirt
import pytest

from dih import domxml, environment, policies, probe, scenarios
from dih.fixtures import require_root
from dih.guest import ProbeGuest
from dih.host import Host
from dih.process import pid_alive
from dih.wait import wait_until

POLICY = policies.retry(1000, 30000)
KEY = 0xd1a0


def wrapper(directory, name, real):
    """An executable that records its PID, start time and arguments in
    NAME.starts, then becomes real. Returns (path, record)."""
    record = os.path.join(directory, name + ".starts")
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho "$$ $(date +%s.%N) $*" >> {record}\n'
                f'exec {real} "$@"\n')
    os.chmod(path, 0o755)
    return path, record


def starts(record, match=""):
    """(pid, time, arguments) of each recorded start whose arguments
    contain match."""
    found = []
    if os.path.exists(record):
        with open(record) as f:
            for line in f:
                pid, when, args = (line.rstrip("\n").split(" ", 2) + [""])[:3]
                if match in args:
                    found.append((int(pid), float(when), args))
    return found


def helper_pids():
    """PIDs of every qemu-pr-helper on the machine."""
    r = subprocess.run(["pgrep", "-x", "qemu-pr-helper"], capture_output=True,
                       text=True)
    return {int(p) for p in r.stdout.split()}


def test_failed_start_leaves_no_helper(loop_device, scratch):
    before = helper_pids()
    helper, helper_record = wrapper(scratch, "qemu-pr-helper",
                                    environment.PR_HELPER)
    qemu, qemu_record = wrapper(scratch, "qemu-system-x86_64",
                                environment.QEMU)
    lun = loop_device.disk(
        "sda", "scsi", POLICY.driver, device="lun",
        source_children=[domxml.element("reservations", {"managed": "yes"})],
        address=domxml.SCSI_DRIVE)
    dom_xml = domxml.add_devices(domxml.domain("dih-pr", emulator=qemu),
                                 domxml.controller("scsi", 0, "virtio-scsi"),
                                 lun)
    with Host("pr", qemu_conf=f'pr_helper = "{helper}"\n') as host:
        dom = host.conn.defineXML(domxml.to_string(dom_xml))
        disk = domxml.find_disk(domxml.parse(dom.XMLDesc(0)), "sda")
        assert domxml.subset(POLICY.driver, disk.find("driver").attrib)
        assert disk.find("source/reservations").get("managed") == "yes"

        with pytest.raises(libvirt.libvirtError) as failed:
            dom.create()
        message = failed.value.get_error_message()
        assert "scsi-block" in message and "SCSI" in message, message

        helpers = starts(helper_record)
        assert len(helpers) == 1, helpers
        pid, when, args = helpers[0]
        assert "-k" in args.split(), args
        guests = starts(qemu_record, "guest=dih-pr")
        assert len(guests) == 1, guests
        assert when < guests[0][1], "the helper started before QEMU"

        # The failed start stops the helper; its exit may take a moment.
        wait_until(lambda: not pid_alive(pid), 10,
                   f"qemu-pr-helper {pid} to exit")
        assert helper_pids() - before == set()
        assert host.qemu_pids() == []
        assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert helper_pids() - before == set()


def host_scsi_disk():
    """The host SCSI disk named by DIH_SCSI_LUN (the test writes to it and
    reserves it), or skip saying why there is none."""
    path = os.environ.get("DIH_SCSI_LUN")
    if not path:
        need = ("needs a host SCSI disk that the test may overwrite and "
                "reserve, named by DIH_SCSI_LUN=/dev/sdX: ")
        if not os.path.isdir("/sys/bus/scsi"):
            # No SCSI disk can be made here (scsi_debug, LIO's tcm_loop,
            # a kernel iSCSI login to the tests' tgtd all need it); a loop
            # device or an NVMe disk has no SCSI reservations.
            pytest.skip(need + f"this machine's kernel "
                        f"({os.uname().release}) has no SCSI subsystem "
                        "(no /sys/bus/scsi)")
        disks = glob.glob("/sys/class/scsi_disk/*")
        pytest.skip(need + f"this machine has {len(disks)} SCSI disk(s), "
                    "none named")
    if not os.path.exists(path):
        pytest.fail(f"DIH_SCSI_LUN={path}: no such device")
    return path


def test_managed_helper_serves_running_guest(scratch):
    """A running guest's reservations go through the managed helper: it is
    started before QEMU and runs as long as the guest does; the guest
    registers a key and reserves the LUN, reads both back, and writes and
    reads its blocks with no error; destroying the domain stops the
    helper."""
    require_root()
    path = host_scsi_disk()
    before = helper_pids()
    helper, helper_record = wrapper(scratch, "qemu-pr-helper",
                                    environment.PR_HELPER)
    lun = domxml.disk(
        "block", {"dev": path}, "sda", "scsi", POLICY.driver, device="lun",
        source_children=[domxml.element("reservations", {"managed": "yes"})],
        address=domxml.SCSI_DRIVE)
    with Host("prlive", qemu_conf=f'pr_helper = "{helper}"\n') as host:
        guest = ProbeGuest(
            host, "dih-prlive",
            [domxml.controller("scsi", 0, "virtio-scsi"), lun],
            {"disks": "sda", "blocks": 8, "passes": 0, "pause_ms": 20,
             "pr": f"{KEY:x}", "pr_read": 1}).start()
        helpers = starts(helper_record)
        assert len(helpers) == 1, helpers
        pid = helpers[0][0]
        guest.wait_disk("sda")
        scenarios.assert_clean(guest.wait_pass("sda"))
        results = {r.op: r.res for r in guest.console.records(probe.PR)}
        assert results == {"register": "ok", "reserve": "ok",
                           "read_keys": "ok", "read_reservation": "ok"}, \
            results
        prin = guest.console.records(probe.PRIn)
        assert prin and KEY in prin[0].keys and prin[0].holder == KEY, prin
        assert pid_alive(pid), "the helper runs while the guest does"
        guest.dom.destroy()
        wait_until(lambda: not pid_alive(pid), 10,
                   f"qemu-pr-helper {pid} to exit")
    assert helper_pids() - before == set()
