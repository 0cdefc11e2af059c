"""What a management application sees of a disk I/O hang: io-error events
(action 'retry' when a request starts to wait, the policy's action when
retry_timeout gives up on it) and the domain's disk errors (virsh
domblkerror) listing the disk while a request waits; and the line virsh
event prints for the new action."""

import os
import subprocess

from dih import policies
from dih.console import Console
from dih.events import EventWatcher
from dih.guest import ProbeGuest
from dih.libvirt_api import DISK_ERROR_RETRYING
from dih.process import stop_process

DOM = "dih-events"


def test_io_error_events_and_disk_errors(host, nbd_disk):
    """A short outage: 'retry' events naming the disk, no other action,
    the disk among the disk errors as retrying (and in the domain's
    messages as an I/O error being retried) until the held request
    completes, then no disk error and no message, no guest error. An outage longer than retry_timeout: 'retry' when a
    request starts to wait and 'report' when it fails, the guest gets EIO.
    QEMU rate limits the events per device and action, so the test counts
    no events: a 'report' never goes without a 'retry' before it, and the
    guest's failed writes are at least as many as the 'report' events;
    the domain's messages keep that I/O error.
    """
    guest = ProbeGuest(host, DOM, [nbd_disk.disk(
        driver=policies.retry(500, 5000).driver)],
        {"blocks": 16, "passes": 0, "pause_ms": 20, "mode": "write"}).start()
    with EventWatcher(host, DOM) as watch:
        guest.wait_disk()
        guest.wait_pass()
        assert watch.events() == []
        assert guest.dom.diskErrors() == {}

        nbd_disk.outage(True)
        watch.wait_for("retry")
        guest.wait(lambda: "vda" in guest.dom.diskErrors(), 60,
                   "vda among the disk errors")
        # retrying, not failed: domblkerror and the domain's messages
        assert guest.dom.diskErrors() == {"vda": DISK_ERROR_RETRYING}
        assert disk_messages(guest) == ["I/O error being retried"], \
            guest.dom.messages(0)
        nbd_disk.outage(False)
        guest.wait(lambda: guest.dom.diskErrors() == {}, 60,
                   "no disk error once the storage is back")
        # recovered: no stale error (BLOCK_IO_RETRY_END, which ends the
        # retrying state, may come up to a second late: QEMU rate limits
        # it)
        guest.wait(lambda: disk_messages(guest) == [], 10,
                   "no message about vda once its requests succeeded")
        short = watch.events()
        assert {e.action for e in short} == {"retry"}, short
        assert {(e.dev_alias, e.src_path) for e in short} == \
            {("virtio-disk0", "")}, short
        assert all(io.ok for io in guest.console.ios())

        mark = len(guest.console)
        nbd_disk.outage(True)
        watch.wait_for("report", since=len(short), timeout=90)
        watch.wait_for("retry", since=len(watch) - 1)
        nbd_disk.outage(False)
        guest.wait(lambda: guest.dom.diskErrors() == {}, 60,
                   "no disk error once the storage is back")
        guest.wait_io(len(guest.console), "a successful write",
                      lambda io: io.ok)
        long = watch.actions(len(short))
        assert long[0] == "retry" and "report" in long and \
            set(long) == {"retry", "report"}, long
        failed = [io for io in guest.console.ios(mark) if not io.ok]
        assert failed and {io.res for io in failed} == {"EIO"}, failed
        assert len(failed) >= long.count("report"), (failed, long)
        # the error the guest got stays on record, as any I/O error does
        guest.wait(lambda: disk_messages(guest) == ["I/O error"], 10,
                   "only vda's last I/O error among the messages")


def disk_messages(guest, disk="vda"):
    """The kinds of the domain's messages (virDomainGetMessages) about
    disk's I/O errors: 'I/O error' or 'I/O error being retried'."""
    return [m.split(":")[0] for m in guest.dom.messages(0)
            if m.startswith("I/O error") and f"disk='{disk}'" in m]


def test_virsh_event_prints_retry(host, nbd_disk):
    """virsh event --event io-error prints the new action by name."""
    name = "dih-virsh-event"
    guest = ProbeGuest(host, name, [nbd_disk.disk(
        driver=policies.retry(500, 0).driver)]).start()
    output = Console(os.path.join(host.dir, "virsh-event.log"))
    with open(output.path, "w") as out:
        virsh = subprocess.Popen(host.virsh_argv(
            "event", "--domain", name, "--event", "io-error", "--loop"),
            stdout=out, stderr=subprocess.STDOUT)
    try:
        guest.wait_disk()
        nbd_disk.outage(True)
        guest.wait_held()
        line = output.wait_for(r"event ", 60).string
        nbd_disk.outage(False)
    finally:
        stop_process(virsh)
    assert line == f"event 'io-error' for domain '{name}':  (virtio-disk0) retry"
