"""Storage outages on the 'cloud disk' (nbdkit and its error filter) as the
guest's probe sees them, with the error policies that exist without
retry: the outage machinery itself is proved here."""

import libvirt

from dih import policies, scenarios
from dih.guest import ProbeGuest


def test_report_policy_guest_sees_eio(host, nbd_disk):
    """error_policy='report': during an outage writes fail with EIO while
    it lasts (none is held until it ends), the VM runs on, and writes work
    again after it."""
    guest = ProbeGuest(host, "dih-report",
                       [nbd_disk.disk(driver=policies.REPORT.driver)],
                       {"blocks": 8, "passes": 0, "pause_ms": 50,
                        "mode": "write"}).start()
    guest.wait_disk()
    mark = len(guest.console)
    nbd_disk.outage(True)
    # Three failures come back while the outage lasts: none is held
    # until it ends.
    failed = guest.wait_ios(mark, "three failed writes",
                            lambda io: not io.ok, 3)
    assert {io.res for io in failed} == {"EIO"}
    assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    back = len(guest.console)
    nbd_disk.outage(False)
    guest.wait_io(back, "a successful write", lambda io: io.ok)
    assert {io.res for io in guest.console.ios(mark) if not io.ok} == {"EIO"}


def test_stop_policy_pauses_vm(host, nbd_disk):
    """error_policy='stop': the VM pauses on the I/O error with the disk
    in its disk errors; resumed after the outage, the request is redone
    and the guest sees no error."""
    guest = ProbeGuest(host, "dih-stop",
                       [nbd_disk.disk(driver=policies.STOP.driver)]).start()
    guest.wait_disk()
    before = guest.wait_pass()
    nbd_disk.outage(True)
    guest.wait(lambda: guest.dom.state() == [libvirt.VIR_DOMAIN_PAUSED,
                                             libvirt.VIR_DOMAIN_PAUSED_IOERROR],
               60, "the VM paused on an I/O error")
    assert "vda" in guest.dom.diskErrors()
    nbd_disk.outage(False)
    guest.dom.resume()
    scenarios.assert_clean(guest.wait_pass(), before)
