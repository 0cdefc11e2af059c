"""Retry, then pause, and a live migration of the paused domain: with
error_policy='stop' and a short retry_timeout the VM pauses once an
outage outlasts the timeout; paused, it is live-migrated between two
daemons isolated as two hosts (dih.migration), both QEMUs on the same
nbdkit export; the storage comes back and the VM is resumed on the
destination, where the held request completes. The checks are on the
guest probe's log and on both daemons' views."""

import os

import libvirt

from dih import domxml, policies, scenarios
from dih.events import EventWatcher, LifecycleWatcher
from dih.guest import WORKLOAD, ProbeGuest
from dih.libvirt_api import qemu_monitor
from dih.migration import migrate
from dih.wait import assert_stays

DOM = "dih-pause-mig"
TIMEOUT_MS = 3000
POLICY = policies.retry_then_pause(TIMEOUT_MS, 500)
PAUSED_USER = [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER]
# How long the paused VM is watched for I/O that must not come, in seconds.
WATCH = 3


def test_paused_domain_migrates_and_resumes(hosts, nbd_disk, scratch):
    """An outage longer than retry_timeout: the request is held for the
    timeout (a 'retry' event, then 'pause' at least retry_timeout later)
    and the VM pauses with reason I/O error. Migrated while paused and
    the outage lasts, it arrives paused on the destination (libvirt
    reports reason 'user' there, QEMU's run state is still 'io-error'),
    its disk with the same policy, and stays paused after the storage is
    back; the source has no domain and no QEMU left. Resumed on the
    destination, the held request completes having waited the timeout in
    the guest's time (the time paused not counted), no failure is
    reported, no guest error, and a whole pass afterwards verifies."""
    a, b = hosts
    with EventWatcher(a, DOM) as a_events, EventWatcher(b, DOM) as b_events:
        guest = ProbeGuest(a, DOM, [nbd_disk.disk(target="vdb",
                                                  driver=POLICY.driver)],
                           WORKLOAD,
                           console=os.path.join(scratch, "console.log"),
                           append=True).start()
        guest.wait_disk()
        before = guest.wait_pass()
        nbd_disk.outage(True)
        guest.wait(lambda: guest.dom.state() == scenarios.PAUSED_IOERROR,
                   60,
                   "the VM paused on an I/O error after retry_timeout")
        paused = len(guest.console)
        retry, pause = a_events.wait_for("retry"), a_events.wait_for("pause")
        assert a_events.actions() == ["retry", "pause"], a_events.events()
        assert (pause.time - retry.time) * 1000 >= TIMEOUT_MS - 50, \
            f"held {(pause.time - retry.time) * 1000:.0f} ms before the pause"

        migrate(guest.dom, b)
        guest.reconnect(b)
        assert a.domain_names() == [] and not a.qemu_pids()
        assert guest.dom.state() == PAUSED_USER, guest.dom.state()
        status = qemu_monitor(guest.dom, "query-status")
        assert status["status"] == "io-error" and not status["running"], status
        attrs = domxml.driver_attributes(guest.dom.XMLDesc(0), "vdb")
        assert domxml.subset(POLICY.driver, attrs), attrs

        nbd_disk.outage(False)
        assert_stays(lambda: not guest.console.ios(paused) and
                     guest.dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED,
                     WATCH, "the VM stays paused with its I/O held",
                     state=lambda: f"state {guest.dom.state()}\n"
                                   f"{guest.console.tail()}")
        guest.dom.resume()
        first = guest.wait_io(paused, "the held I/O to complete")
        # The guest's clock stood still while the VM was paused (WATCH
        # seconds and the migration): it saw the request wait the timeout.
        assert first.ok and \
            TIMEOUT_MS <= first.lat_ms < TIMEOUT_MS + WATCH * 1000, first
        assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        scenarios.assert_clean(guest.wait_pass(), before)
        assert b_events.actions() == [], b_events.events()
        assert a.domain_names() == [] and not a.qemu_pids()


def test_paused_domain_resumes_on_destination(hosts, nbd_disk, scratch):
    """error_policy='stop' with auto_resume='on': the VM pauses on an
    outage and is live-migrated while paused and the outage lasts; on
    the destination its disk has the same policy, and once the storage
    is back the destination's QEMU sees it and the destination's daemon
    resumes the domain by itself with the reason 'storage recovered';
    the held request completes, no guest error, nothing is left on the
    source."""
    a, b = hosts
    policy = policies.stop_then_resume(200)
    name = DOM + "-resume"
    with LifecycleWatcher(a, name) as a_life, \
            LifecycleWatcher(b, name) as b_life:
        guest = ProbeGuest(a, name, [nbd_disk.disk(target="vdb",
                                                   driver=policy.driver)],
                           WORKLOAD,
                           console=os.path.join(scratch, "console.log"),
                           append=True).start()
        guest.wait_disk()
        before = guest.wait_pass()
        held, _ = scenarios.storage_pause(guest, nbd_disk, a_life, "vda",
                                          "vdb")
        migrate(guest.dom, b)
        guest.reconnect(b)
        assert a.domain_names() == [] and not a.qemu_pids()
        assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
        attrs = domxml.driver_attributes(guest.dom.XMLDesc(0), "vdb")
        assert domxml.subset(policy.driver, attrs), attrs
        scenarios.stays_paused(guest, 1, any_reason=True)
        scenarios.storage_resume(guest, nbd_disk, b_life, held)
        assert guest.dom.state() == scenarios.RUNNING_RECOVERED
        scenarios.assert_clean(guest.wait_pass(), before)
    assert a.domain_names() == [] and not a.qemu_pids()
