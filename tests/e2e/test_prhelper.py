"""qemu-pr-helper wiring on real processes: a LUN with managed persistent
reservations and the retry policy makes libvirt start qemu-pr-helper
before QEMU; when QEMU then fails to start, the helper is stopped too.

The machine has no SCSI device, so the LUN is a loop device: QEMU's
scsi-block refuses it (no SG_IO) after libvirt has started the helper,
which is exactly the failed start to prove the clean-up with. Wrappers
around the helper and QEMU record their PIDs and start times."""

import os
import subprocess

import libvirt
import pytest

from dih import domxml, environment, policies
from dih.host import Host
from dih.process import pid_alive
from dih.wait import wait_until

POLICY = policies.retry(1000, 30000)


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
        address={"type": "drive", "controller": 0, "bus": 0, "target": 0,
                 "unit": 0})
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
