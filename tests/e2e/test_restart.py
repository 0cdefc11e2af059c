"""A daemon restart while a guest's I/O hangs: virtqemud stops and starts
again on the same configuration and state while a request waits for the
storage. The domain runs on in the same QEMU, the status XML keeps the
retry configuration, and once the outage ends the guest sees no error."""

import libvirt

from dih import domxml, policies, scenarios
from dih.guest import ProbeGuest
from dih.process import pid_alive

POLICY = policies.retry(1000, 0)
HOLD = 2


def test_daemon_restart_during_hang(host, nbd_disk):
    guest = ProbeGuest(host, "dih-restart",
                       [nbd_disk.disk(driver=POLICY.driver)]).start()
    guest.wait_disk()
    pids = host.qemu_pids()
    assert len(pids) == 1
    before = guest.wait_pass()
    nbd_disk.outage(True)
    held = guest.wait_held()
    guest.assert_held(held, HOLD)

    old = host.restart_daemon()
    assert host.daemon_pid != old and not pid_alive(old)
    assert host.qemu_pids() == pids, "the same QEMU runs on"
    guest.reconnect(host)
    assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    attrs = domxml.driver_attributes(guest.dom.XMLDesc(0), "vda")
    assert domxml.subset(POLICY.driver, attrs), attrs
    assert "vda" in guest.dom.diskErrors()
    guest.assert_held(held, HOLD, "the guest's I/O still hangs")

    nbd_disk.outage(False)
    first = guest.wait_io(held, "the held I/O to complete")
    assert first.ok and first.lat_ms >= 2 * HOLD * 1000, first
    scenarios.assert_clean(guest.wait_pass(), before)
