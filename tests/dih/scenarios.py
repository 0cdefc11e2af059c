"""The scenarios' shared checks on a probe guest (dih.guest.ProbeGuest):
what an outage on its storage must look like under each policy, and the
probe's counts without a guest error. The guest model only waits and
reports; the checks that assert are here."""

import time

import libvirt

from .libvirt_api import (RESUMED_STORAGE_RECOVERED,
                          RUNNING_STORAGE_RECOVERED, is_running)
from .wait import assert_stays

# dom.state() of a domain paused by an I/O error, and of one that resumed
# by itself once its storage recovered.
PAUSED_IOERROR = [libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR]
RUNNING_RECOVERED = [libvirt.VIR_DOMAIN_RUNNING, RUNNING_STORAGE_RECOVERED]


def ride_out_outage(guest, storage, hold, dev="vda", target=None):
    """An outage on storage (storage.NbdDisk) that the retry policy
    rides out: a request on dev (the guest's name; target is the
    disk's in the domain XML, dev unless given) is held and the
    guest's I/O stays held for hold seconds while the VM runs; after
    the outage the held request completes, having waited at least
    hold seconds, and a whole pass afterwards verifies with no
    error."""
    before = guest.wait_pass(dev)
    storage.outage(True)
    held = guest.wait_held(target or dev)
    guest.assert_held(held, hold)
    storage.outage(False)
    first = guest.wait_io(held, "the held I/O to complete", dev=dev)
    assert first.ok and first.lat_ms >= hold * 1000, first
    assert_clean(guest.wait_pass(dev), before)


def late_error(guest, storage, events, timeout, interval, dev="vda"):
    """An outage on storage longer than the disk's retry_timeout
    (timeout ms, retry_interval interval ms) while the probe writes
    (mode write): a write is held for the timeout, then fails with
    EIO in the guest, which waited as long, not less (and at most one
    interval and 1 s more); its 'retry' and 'report' events (events:
    the domain's EventWatcher) are as far apart, 50 ms of the host's
    clock aside; the VM runs all along, and writes work again after
    the outage."""
    guest.wait_pass(dev)
    mark = len(guest.console)
    storage.outage(True)
    failed = guest.wait_io(mark, "a write to fail after the timeout",
                           lambda io: not io.ok, dev=dev)
    assert is_running(guest.dom), guest.dom.state()
    back = len(guest.console)
    storage.outage(False)
    guest.wait_io(back, "a successful write", lambda io: io.ok, dev=dev)
    assert failed.res == "EIO" and \
        timeout <= failed.lat_ms <= timeout + interval + 1000, failed
    actions = events.events()
    start = next(e for e in actions if e.action == "retry")
    end = next(e for e in actions if e.action == "report")
    held_ms = (end.time - start.time) * 1000
    assert timeout - 50 <= held_ms <= timeout + interval + 1000, \
        f"held {held_ms:.0f} ms for retry_timeout {timeout} ms: {actions}"


def retry_then_pause(guest, storage, events, timeout, dev="vda",
                     target=None):
    """An outage on storage with error_policy='stop' and a
    retry_timeout of timeout ms on dev (target: its name in the
    domain XML, dev unless given): a request is held while the VM
    runs, then the domain pauses with reason I/O error no earlier than
    the timeout after the wait began ('retry', then 'pause' among
    events, the domain's EventWatcher); it stays paused when the
    storage is back, and once resumed the request completes having
    waited the timeout, and a whole pass verifies with no error."""
    before = guest.wait_pass(dev)
    storage.outage(True)
    held = guest.wait_held(target or dev)
    guest.wait(lambda: guest.dom.state() == PAUSED_IOERROR, 60,
               "the domain to pause on the I/O error")
    events.wait_for("pause")
    assert events.actions()[:2] == ["retry", "pause"], events.events()
    start, pause = events.events()[:2]
    assert (pause.time - start.time) * 1000 >= timeout - 50, \
        f"paused {pause.time - start.time:.2f} s after the wait began"
    storage.outage(False)
    assert guest.dom.state() == PAUSED_IOERROR, \
        "no resume without virsh resume"
    guest.dom.resume()
    first = guest.wait_io(held, "the held I/O to complete", dev=dev)
    assert first.ok and first.lat_ms >= timeout, first
    assert_clean(guest.wait_pass(dev), before)


def storage_pause(guest, storage, lifecycle, dev="vda", target=None,
                  timeout=60):
    """Begin an outage on storage under a disk with a pausing policy
    and auto_resume='on' (dev in the guest; target: its name in the
    domain XML, dev unless given) and wait for the domain to pause on
    it: the state and the lifecycle event (lifecycle: the domain's
    events.LifecycleWatcher) say I/O error, and the domain says which
    disk: the disk errors list it and so do libvirt's messages. Returns
    the console's length when the outage began, after which the held
    request completes, and the host's monotonic time it began."""
    mark = len(lifecycle)
    begin = storage.outage(True)
    held = len(guest.console)
    guest.wait(lambda: guest.dom.state() == PAUSED_IOERROR, timeout,
               "the domain to pause on the I/O error")
    lifecycle.wait_for(libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
                       libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR, mark)
    errors = guest.dom.diskErrors()
    assert list(errors) == [target or dev], errors
    messages = guest.dom.messages(0)
    assert any(f"disk='{target or dev}'" in m and "I/O error" in m
               for m in messages), messages
    return held, begin


def stays_paused(guest, seconds, any_reason=False):
    """The domain stays paused with reason I/O error (for whatever
    reason, if any_reason: a domain migrated while paused has reason
    'user' on the destination) for seconds, while its storage fails."""
    def paused():
        state = guest.dom.state()
        return state[0] == libvirt.VIR_DOMAIN_PAUSED if any_reason else \
            state == PAUSED_IOERROR
    assert_stays(paused, seconds,
                 "the domain stays paused while the storage fails",
                 state=lambda: f"state {guest.dom.state()}")


def storage_resume(guest, storage, lifecycle, held, dev="vda"):
    """End the outage on storage of a domain that storage_pause() saw
    pause (held: what it returned) and wait for the domain to resume by
    itself (the lifecycle event says 'storage recovered'), and the held
    request completes without error. Returns the seconds
    from the storage's return to the resumed event."""
    mark = len(lifecycle)
    back = storage.outage(False)
    resumed = lifecycle.wait_for(libvirt.VIR_DOMAIN_EVENT_RESUMED,
                                 RESUMED_STORAGE_RECOVERED, mark)
    first = guest.wait_io(held, "the held I/O to complete", dev=dev)
    assert first.ok, first
    return resumed.time - back


def pause_then_resume(guest, storage, lifecycle, dev="vda", target=None,
                      outage_s=0):
    """An outage on storage of a disk with a pausing policy and
    auto_resume='on' (dev in the guest; target: its name in the domain
    XML), outage_s seconds long from its beginning (or until the domain
    paused, if longer): the domain pauses on it (storage_pause()),
    stays paused while the storage fails, and resumes by itself once the
    storage is back (storage_resume()), in state running with reason
    'storage recovered'; a whole pass afterwards verifies with no error.
    Returns the seconds from the storage's return to the resumed
    event."""
    before = guest.wait_pass(dev)
    held, begin = storage_pause(guest, storage, lifecycle, dev, target,
                                timeout=max(60, outage_s + 60))
    stays_paused(guest, max(begin + outage_s - time.monotonic(), 1))
    latency = storage_resume(guest, storage, lifecycle, held, dev)
    assert guest.dom.state() == RUNNING_RECOVERED, guest.dom.state()
    assert_clean(guest.wait_pass(dev), before)
    return latency


def assert_clean(counts, since_counts=None):
    """The counts show no failed I/O and no bad or unknown read, and
    more verified reads than since_counts."""
    assert counts.clean, f"no guest error, every read verified: {counts}"
    if since_counts is not None:
        assert counts.verified > since_counts.verified, \
            f"more reads verified ({since_counts} -> {counts})"
