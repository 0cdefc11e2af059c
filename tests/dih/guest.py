"""The test guest: a TCG domain whose /init is the I/O probe.

It boots the Debian cloud kernel cached by tools/guest-kernel.sh and the
initramfs of tools/mkinitramfs.sh (src/dih-probe.c as /init) and writes
the probe's log to a serial console file. The probe's parameters are
dih.NAME=VALUE on the kernel command line; by default it passes over its
disks until the domain is stopped from outside, so that a test decides
when the workload has shown what it checks.
"""

import os
import time

import libvirt

from . import domxml, environment, probe
from .console import Console
from .libvirt_api import is_running
from .wait import assert_stays, wait_until

# Passes over 16 blocks, one I/O every 20 ms, until stopped.
WORKLOAD = {"blocks": 16, "passes": 0, "pause_ms": 20}

# How long a guest may take to boot to /init and find its disk, and to
# show an awaited state of its I/O, on a slow machine. Bounds only: the
# tests go on as soon as the state is there.
BOOT_TIMEOUT = 180
IO_TIMEOUT = 120

# Console lines the guest may have written before a request was held can
# still be on their way to the file (the emulated UART): the I/O counts as
# held once none has arrived for this long.
SETTLE = 0.5


class ProbeGuest:
    """A probe guest on host with the given <disk> (and other device)
    elements.

    params are the probe's (WORKLOAD by default; its disks, as the guest
    names them, are "vda" unless params give "disks");
    console is the path of its serial console file (in the host's
    directory by default; append=True opens it in append mode, which a
    migration needs: the destination's QEMU opens it while the source's
    still writes). machine, memory_mib and iothreads (the number of
    I/O threads a disk's <driver iothread='N'> can name) shape the
    domain.

    The machine has ACPI, and the guest's clock source is its HPET, which
    follows the host's clock: without, the kernel falls back to counting
    timer interrupts (4 ms jiffies; TCG makes the TSC unstable), which a
    loaded host delays, and the probe's latencies come out short and
    coarse.
    """

    def __init__(self, host, name, devices, params=None, console=None,
                 append=False, machine="pc", memory_mib=256, iothreads=0):
        self.host = host
        self.name = name
        self.devices = list(devices)
        self.params = {"disks": "vda",
                       **(WORKLOAD if params is None else params)}
        unknown = sorted(set(self.params) - set(probe.PARAMS))
        if unknown:
            raise ValueError(f"the probe has no parameter {unknown}: "
                             f"it knows {probe.PARAMS}")
        self.console = Console(console or os.path.join(host.dir,
                                                       name + ".console"))
        self.append = append
        self.machine = machine
        self.memory_mib = memory_mib
        self.iothreads = iothreads
        self.dom = None

    def xml(self):
        """The domain XML (ElementTree element)."""
        cmdline = " ".join(
            ["console=ttyS0", "loglevel=1", "clocksource=hpet",
             "no_timer_check", "panic=-1"] +
            [f"dih.{k}={v}" for k, v in self.params.items()])
        dom = domxml.domain(self.name, self.memory_mib, self.machine)
        if self.iothreads:
            domxml.set_iothreads(dom, self.iothreads)
        domxml.boot_kernel(dom, environment.KERNEL, environment.INITRAMFS,
                           cmdline)
        domxml.enable_acpi(dom)
        domxml.destroy_on_exit(dom)
        domxml.add_devices(dom, *self.devices,
                           domxml.serial_file(self.console.path, self.append))
        return dom

    def start(self):
        """Create the (transient) domain; returns self."""
        self.dom = self.host.conn.createXML(domxml.to_string(self.xml()), 0)
        return self

    def reconnect(self, host):
        """Look the domain up on host, where it runs now (after a
        migration, or on the new connection after a daemon restart)."""
        self.host = host
        self.dom = host.conn.lookupByName(self.name)
        return self

    def live_xml(self):
        """The domain's live XML (ElementTree element)."""
        return domxml.parse(self.dom.XMLDesc(0))

    # Waiting on the probe: every wait fails at once when the guest can
    # no longer get there (failure()).

    def failure(self):
        """Why the guest's probe can no longer reach an awaited state, or
        None: it reported an error (DIH error), it ended with an exit
        code other than 0, or its domain is no longer running or paused
        (powered off, destroyed, gone)."""
        errors = self.console.records(probe.Error)
        if errors:
            return f"the probe reported: DIH error {errors[0].message}"
        done = self.console.records(probe.Done)
        if done and done[0].rc != 0:
            return f"the probe ended with DIH done rc={done[0].rc}"
        if self.dom is not None:
            try:
                active = self.dom.isActive()
            except libvirt.libvirtError as e:
                return f"the domain {self.name} is gone: {e}"
            if not active:
                return f"the domain {self.name} is no longer running " \
                       f"(state {self.dom.state()})"
        return None

    def wait(self, condition, timeout, what, interval=0.2):
        """wait_until() for the guest: the failure message has the
        console's last lines, and failure() ends the wait at once."""
        return wait_until(condition, timeout, what, interval,
                          state=self.console.tail, failed=self.failure)

    def wait_line(self, pattern, timeout=IO_TIMEOUT, since=0):
        """Wait for a console line (Console.wait_for) that matches
        pattern; return its match."""
        return self.console.wait_for(pattern, timeout, since,
                                     failed=self.failure)

    def wait_disk(self, dev="vda", timeout=BOOT_TIMEOUT):
        """Wait until the probe found dev and began its I/O."""
        self.wait_line(rf"DIH disk dev={dev}$", timeout)

    def wait_done(self, timeout=IO_TIMEOUT):
        """Wait for the end of a probe run of a fixed number of passes;
        return its exit code."""
        done = self.wait(lambda: self.console.records(probe.Done), timeout,
                         "the probe to finish")
        return done[0].rc

    def wait_ios(self, since, what, condition=None, count=1, dev="vda",
                 timeout=IO_TIMEOUT):
        """Wait until count I/Os on dev from console position since on
        satisfy condition (any I/O by default); return them."""
        def found():
            ios = [io for io in self.console.ios(since, dev)
                   if condition is None or condition(io)]
            return ios if len(ios) >= count else None
        return self.wait(found, timeout, f"{what} on {dev}")

    def wait_io(self, since, what, condition=None, dev="vda",
                timeout=IO_TIMEOUT):
        """The first I/O of wait_ios()."""
        return self.wait_ios(since, what, condition, 1, dev, timeout)[0]

    def wait_pass(self, dev="vda", since=None, timeout=IO_TIMEOUT):
        """Wait until the probe completed a pass over dev that began after
        console position since (now by default); return the counts."""
        mark = len(self.console) if since is None else since
        # The first pass line after mark may end a pass that had begun
        # before it: wait for the second.
        def second():
            found = [c for c in self.console.records(probe.Counts, mark)
                     if c.dev == dev]
            return found[1] if len(found) > 1 else None
        return self.wait(second, timeout, f"a whole pass over {dev}")

    def wait_held(self, target="vda", timeout=IO_TIMEOUT):
        """Wait until a request is held on the disk whose target (in the
        domain XML) is target, which libvirt then lists among the domain's
        disk errors, and the guest's I/O has stopped; return the console
        position from which on nothing arrived."""
        self.wait(lambda: target in self.dom.diskErrors(), timeout,
                  f"a request held on {target} (in the domain's disk "
                  "errors)")
        self.wait(lambda: self._idle_for(SETTLE), timeout,
                  "the guest's console to fall silent", interval=0.05)
        return len(self.console)

    def _idle_for(self, seconds):
        lines = self.console.stamped()
        return not lines or lines[-1].time <= time.monotonic() - seconds

    def assert_held(self, since, duration, what="the guest's I/O stays held"):
        """Check that no I/O completes from console position since on for
        duration seconds while the domain runs."""
        assert_stays(lambda: not self.console.ios(since) and
                     is_running(self.dom),
                     duration, what,
                     state=lambda: f"state {self.dom.state()}\n"
                                   f"{self.console.tail()}")
