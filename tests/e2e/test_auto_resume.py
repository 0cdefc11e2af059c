"""Retry, pause, resume (SPEC section 14): a domain whose disk has a
pausing policy (error_policy='stop', with or without retries) and
auto_resume='on' pauses on a storage outage and resumes by itself once
the storage is back. While the domain is paused QEMU reads a few KiB at
the failed request's offset once per retry_interval and tells libvirt
when a read succeeds (BLOCK_IO_RECOVERED); libvirt resumes the domain
with the reason 'storage recovered' once every disk whose error paused
it has recovered. The held requests then complete and the guest sees no
error. Checked on the guest probe's log, the domain's state and
lifecycle events, virsh's output, and across a daemon restart, several
disks, an outage that comes back during the resume, and a target that
goes away; the migration of a paused domain is in
test_pause_migration.py."""

import os
import subprocess
import time

import libvirt

from dih import domxml, policies, scenarios
from dih.console import Console
from dih.events import LifecycleWatcher
from dih.guest import WORKLOAD, ProbeGuest
from dih.libvirt_api import qemu_monitor
from dih.process import stop_process
from dih.storage import NbdDisk

# Probe every 200 ms while paused.
INTERVAL_MS = 200
STOP_PROBING = policies.stop_then_resume(INTERVAL_MS)
# The seed's outage: a minute, of which the first 10 s are retried
# (policies.SEED_AUTO_RESUME) and the rest paused.
SEED_OUTAGE = 60


def disk_states(guest):
    """query-block's io-status and io-recovered of each disk, by
    device."""
    return {b["qdev"]: (b.get("io-status"), b.get("io-recovered"))
            for b in qemu_monitor(guest.dom, "query-block")
            if "inserted" in b}


def start_and_pause(guest, storage, lifecycle):
    """Start guest, wait for a whole pass of its probe, then begin an
    outage on storage and wait for the domain to pause on it
    (scenarios.storage_pause()). Returns the pass's counts and the
    console's length when the outage began."""
    guest.start()
    guest.wait_disk()
    before = guest.wait_pass()
    held, _ = scenarios.storage_pause(guest, storage, lifecycle)
    return before, held


def test_stop_resumes_after_outage(host, nbd_disk):
    """Plain error_policy='stop' (no retries) with auto_resume='on' on
    the cloud disk: the domain pauses at the first failed request, says
    which disk paused it, stays paused while the storage fails, and
    resumes by itself after it; virsh event prints the lifecycle event
    and virsh domstate --reason the reason by name."""
    name = "dih-auto-resume"
    guest = ProbeGuest(host, name, [nbd_disk.disk(driver=STOP_PROBING.driver)])
    output = Console(os.path.join(host.dir, "virsh-event.log"))
    with LifecycleWatcher(host, name) as lifecycle:
        guest.start()
        with open(output.path, "w") as out:
            virsh = subprocess.Popen(host.virsh_argv(
                "event", "--domain", name, "--event", "lifecycle", "--loop"),
                stdout=out, stderr=subprocess.STDOUT)
        try:
            guest.wait_disk()
            scenarios.pause_then_resume(guest, nbd_disk, lifecycle,
                                        outage_s=2)
            line = output.wait_for(r"event 'lifecycle' .*: Resumed", 60).string
        finally:
            stop_process(virsh)
    assert line == f"event 'lifecycle' for domain '{name}': " \
                   "Resumed Storage recovered", output.lines()
    assert output.lines()[0] == f"event 'lifecycle' for domain '{name}': " \
                                "Suspended I/O Error", output.lines()
    reason = subprocess.run(host.virsh_argv("domstate", name, "--reason"),
                            capture_output=True, text=True, check=True)
    assert reason.stdout.strip() == "running (storage recovered)", reason


def test_seed_long_outage_pauses_and_resumes(block_device, host, capsys):
    """The seed's disk (the product guide's XML on a host block device,
    with error_policy='stop': retry every 2 s for 10 s, then pause) and
    auto_resume='on', through a 60 s outage: a request is held for
    retry_timeout while the VM runs, then the domain pauses and stays
    paused until the storage is back, then resumes by itself; the held
    request completes, the guest sees no error and every block verifies.
    Prints the time from the storage's return to the resume."""
    devices, target = policies.seed_devices("virtio", block_device.path,
                                            policies.SEED_AUTO_RESUME)
    guest = ProbeGuest(host, "dih-seed-resume", devices,
                       {**WORKLOAD, "disks": "vda"})
    with LifecycleWatcher(host, guest.name) as lifecycle:
        guest.start()
        guest.wait_disk()
        latency = scenarios.pause_then_resume(
            guest, block_device, lifecycle, "vda", target, SEED_OUTAGE)
    with capsys.disabled():
        print(f"\nstorage back to the domain running: "
              f"{latency * 1000:.0f} ms (retry_interval "
              f"{policies.SEED.driver['retry_interval']} ms)")


def test_several_disks_only_one_fails(host, nbd_disk, scratch):
    """Two disks with auto_resume='on', each on its own storage; an
    outage on the first: the domain pauses because of it alone (only it
    among the disk errors, only its io-status failed), and resumes when
    its storage is back; the guest's I/O on both disks verifies."""
    with NbdDisk(scratch, "other") as other:
        guest = ProbeGuest(host, "dih-resume-two", [
            nbd_disk.disk("vda", driver=STOP_PROBING.driver),
            other.disk("vdb", driver=STOP_PROBING.driver)],
            {**WORKLOAD, "disks": "vda,vdb", "parallel": 1})
        with LifecycleWatcher(host, guest.name) as lifecycle:
            guest.start()
            guest.wait_disk("vdb")
            before = guest.wait_pass("vdb")
            held, _ = scenarios.storage_pause(guest, nbd_disk, lifecycle)
            states = disk_states(guest)
            assert [s for s in states.values() if s[0] != "ok"] == \
                [("failed", False)], states
            scenarios.stays_paused(guest, 1)
            scenarios.storage_resume(guest, nbd_disk, lifecycle, held)
            assert guest.dom.state() == scenarios.RUNNING_RECOVERED
            scenarios.assert_clean(guest.wait_pass("vdb"), before)
            scenarios.assert_clean(guest.wait_pass("vda"))


def test_outage_again_during_resume(host, nbd_disk):
    """The storage comes back, fails again as the domain resumes, and
    comes back again: the domain resumes, pauses again on the new
    outage (a second suspended event), and resumes by itself again once
    the storage is back; the held requests complete and the guest has
    seen no error."""
    guest = ProbeGuest(host, "dih-resume-flap",
                       [nbd_disk.disk(driver=STOP_PROBING.driver)])
    with LifecycleWatcher(host, guest.name) as lifecycle:
        before, held = start_and_pause(guest, nbd_disk, lifecycle)
        mark = len(lifecycle)
        nbd_disk.outage(False)
        lifecycle.wait_for(libvirt.VIR_DOMAIN_EVENT_RESUMED,
                           scenarios.RESUMED_STORAGE_RECOVERED, mark)
        # the outage begins again as soon as the domain runs
        scenarios.storage_pause(guest, nbd_disk, lifecycle)
        scenarios.storage_resume(guest, nbd_disk, lifecycle, held)
        assert guest.dom.state() == scenarios.RUNNING_RECOVERED
        scenarios.assert_clean(guest.wait_pass(), before)
    kinds = [(e.event, e.detail) for e in lifecycle.events()]
    assert kinds.count((libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
                        libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR)) == 2, kinds


def test_daemon_restart_while_paused(host, nbd_disk):
    """The daemon stops while the domain is paused by its storage, the
    storage comes back while no daemon listens (QEMU's event is lost),
    and the daemon starts again: it finds the domain paused, asks QEMU
    whether its disks recovered, and resumes it with the reason
    'storage recovered'; the held request completes, no guest error."""
    guest = ProbeGuest(host, "dih-resume-daemon",
                       [nbd_disk.disk(driver=STOP_PROBING.driver)])
    with LifecycleWatcher(host, guest.name) as lifecycle:
        before, held = start_and_pause(guest, nbd_disk, lifecycle)
    host.stop_daemon()
    nbd_disk.outage(False)
    # Several probes' worth of time for QEMU to see the storage back
    # while no daemon listens.
    time.sleep(5 * INTERVAL_MS / 1000)
    host.start()
    guest.reconnect(host)
    guest.wait(lambda: guest.dom.state() == scenarios.RUNNING_RECOVERED, 60,
               "the domain to resume with reason 'storage recovered'")
    first = guest.wait_io(held, "the held I/O to complete")
    assert first.ok, first
    scenarios.assert_clean(guest.wait_pass(), before)


def test_iscsi_target_away_while_paused(iscsi_target, host):
    """virtio-scsi (scsi-hd) on an iSCSI LUN: the storage behind the
    target fails and the domain pauses; the target goes away too (tgtd
    killed) and the storage behind it comes back: the domain stays
    paused while the target is away (QEMU's read waits in libiscsi),
    then once the target is back resumes by itself; the held request
    completes and the guest sees no error."""
    devices = [domxml.controller("scsi", 0, "virtio-scsi"),
               iscsi_target.disk("sda", "scsi", STOP_PROBING.driver,
                                 address=domxml.SCSI_DRIVE)]
    guest = ProbeGuest(host, "dih-resume-iscsi", devices,
                       {**WORKLOAD, "disks": "sda"})
    with LifecycleWatcher(host, guest.name) as lifecycle:
        guest.start()
        guest.wait_disk("sda")
        before = guest.wait_pass("sda")
        held, _ = scenarios.storage_pause(guest, iscsi_target, lifecycle,
                                          "sda")
        iscsi_target.stop_tgtd()
        iscsi_target.outage(False)
        scenarios.stays_paused(guest, 3)
        mark = len(lifecycle)
        iscsi_target.start_tgtd()
        lifecycle.wait_for(libvirt.VIR_DOMAIN_EVENT_RESUMED,
                           scenarios.RESUMED_STORAGE_RECOVERED, mark,
                           timeout=90)
        first = guest.wait_io(held, "the held I/O to complete", dev="sda")
        assert first.ok, first
        assert guest.dom.state() == scenarios.RUNNING_RECOVERED
        scenarios.assert_clean(guest.wait_pass("sda"), before)
