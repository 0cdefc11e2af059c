"""How the benchmarks (tests/bench/bench.py) measure: QEMU's CPU time per
thread (schedstat), the probe guest's bursts of requests and the outages
that hold them, and what the benchmarks of one run share. The methods
and clocks are in bench.py's docstring."""

import collections
import contextlib
import dataclasses
import os
import time

import libvirt

from figures import measured
from dih import policies, probe
from dih.events import EventWatcher
from dih.guest import IO_TIMEOUT, ProbeGuest
from dih.libvirt_api import qemu_monitor
from dih.wait import wait_until

# How often the console reader reads the console file.
POLL = 0.0005


# QEMU's CPU time.

@dataclasses.dataclass(frozen=True)
class CpuUse:
    """QEMU's CPU time over a window of wall seconds: of all its threads
    and of those other than the vCPU threads, in CPU seconds; lost is
    the number of threads that exited during the window (whose time is
    missing)."""
    wall: float
    total: float
    other: float
    lost: int

    @property
    def total_pct(self):
        """All threads, % of one core."""
        return 100 * self.total / self.wall

    @property
    def other_pct(self):
        """The threads other than the vCPU's, % of one core."""
        return 100 * self.other / self.wall


class QemuCpu:
    """The CPU time of each thread of the QEMU process pid, from
    /proc/PID/task/TID/schedstat (nanoseconds on the CPU), which counts
    finer than the clock ticks of /proc/PID/stat (10 ms, 0.1 % of a core
    over 10 s)."""

    def __init__(self, pid):
        self.pid = pid

    def sample(self):
        """(now, {tid: (thread name, ns)})."""
        threads = {}
        task = f"/proc/{self.pid}/task"
        for tid in os.listdir(task):
            with contextlib.suppress(FileNotFoundError):
                with open(f"{task}/{tid}/comm") as f:
                    name = f.read().strip()
                with open(f"{task}/{tid}/schedstat") as f:
                    threads[tid] = (name, int(f.read().split()[0]))
        return time.monotonic(), threads

    @staticmethod
    def between(a, b):
        """The CpuUse from sample a to sample b."""
        total = other = 0
        for tid, (name, ns) in b[1].items():
            used = ns - a[1].get(tid, (name, 0))[1]
            total += used
            if not name.startswith("CPU "):
                other += used
        return CpuUse(b[0] - a[0], total / 1e9, other / 1e9,
                      len(set(a[1]) - set(b[1])))


# Guests.

def destroy(dom):
    """Destroy the domain if it still runs."""
    with contextlib.suppress(libvirt.libvirtError):
        dom.destroy()


def accelerator(dom):
    """The accelerator the domain's QEMU uses, as QMP query-kvm tells."""
    kvm = qemu_monitor(dom, "query-kvm")
    return "KVM" if kvm["enabled"] else \
        "TCG (QMP query-kvm: enabled=false, present=%s)" % \
        str(kvm["present"]).lower()


@dataclasses.dataclass
class Outage:
    """One outage of Bursts.outage(): the host time it ended; the held
    requests' console lines; QEMU's CPU while the guest was idle before
    (or None), while the requests were held, and from the end of the
    outage until the last held request's line arrived; with a reader,
    its first successful read after the outage."""
    end: float
    lines: list
    idle_cpu: CpuUse | None
    held_cpu: CpuUse
    resume_cpu: CpuUse
    reader: probe.Reader | None = None

    def latencies(self):
        """End of the outage to each held request's completion (ms)."""
        return [(line.time - self.end) * 1000 for line in self.lines]

    def resume_time(self):
        """End of the outage to the last held request's completion (ms):
        to the first one's console line (host clock), then to the last
        completion on the guest clock, which leaves out the time the
        console takes to print the other lines."""
        return min(self.latencies()) + max(self.after_first(), default=0)

    def reader_to_completion(self):
        """The reader's first success after the outage to the first held
        request's completion (ms, guest clock)."""
        done = min(line.record.t + line.record.lat_ms / 1000
                   for line in self.lines)
        return (done - self.reader.t - self.reader.lat_ms / 1000) * 1000

    def after_first(self):
        """The first held request's completion to each other's (ms,
        guest clock)."""
        done = sorted(line.record.t + line.record.lat_ms / 1000
                      for line in self.lines)
        return [(c - done[0]) * 1000 for c in done[1:]]


class Bursts:
    """A probe guest writing in bursts (see the module's docstring) on
    the disks devs, all on the export disk (an NbdDisk), each with
    error_policy='retry', retry_interval interval ms and no timeout. With
    reader_ms, the probe's reader reads each disk every reader_ms ms
    besides, and read errors are reported (rerror_policy='report')."""

    def __init__(self, host, disk, name, interval, depth, pause_ms,
                 devs=("vda",), reader_ms=0):
        self.host = host
        self.disk = disk
        self.depth = depth
        self.devs = devs
        self.pause = pause_ms / 1000
        self.reader_ms = reader_ms
        policy = policies.retry(interval, 0,
                                read="report" if reader_ms else "retry")
        self.guest = ProbeGuest(host, name, [
            disk.disk(dev, driver=policy.driver) for dev in devs],
            {"disks": ",".join(devs), "parallel": 1, "depth": depth,
             "blocks": depth, "passes": 0, "pause_ms": pause_ms,
             "mode": "write", **({"reader_ms": reader_ms} if reader_ms else {})})
        self.cpu = None
        self.accelerator = None
        self._mark = 0
        self._stack = contextlib.ExitStack()

    @property
    def requests(self):
        """The requests of a burst, on all disks."""
        return self.depth * len(self.devs)

    def __enter__(self):
        try:
            self.events = self._stack.enter_context(
                EventWatcher(self.host, self.guest.name))
            self.guest.start()
            self._stack.callback(destroy, self.guest.dom)
            self._stack.enter_context(self.guest.console.follow(POLL))
            for dev in self.devs:
                self.guest.wait_disk(dev)
            self.accelerator = accelerator(self.guest.dom)
            self.cpu = QemuCpu(self.host.qemu_pids()[0])
            self.next_burst()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def next_burst(self):
        """Wait until the next burst has completed on every disk; return
        its lines."""
        def burst():
            count = {dev: 0 for dev in self.devs}
            lines = []
            for n, line in enumerate(self.guest.console.stamped(self._mark)):
                if isinstance(line.record, probe.IO):
                    count[line.record.dev] += 1
                    lines.append(line)
                    if all(c == self.depth for c in count.values()):
                        return self._mark + n + 1, lines
            return None
        self._mark, lines = self.guest.wait(
            burst, self.pause + IO_TIMEOUT, f"a burst of {self.depth} "
            f"writes on each of {', '.join(self.devs)}", interval=0.002)
        return lines

    def outage(self, hold, idle=0):
        """An outage begun now, while the workers sleep: the next burst
        is held, hold seconds from when the last of its requests was,
        then the outage ends and the burst completes. Before, idle
        seconds of QEMU's CPU are measured with the guest asleep."""
        idle_cpu = None
        if idle:
            a = self.cpu.sample()
            time.sleep(idle)
            idle_cpu = QemuCpu.between(a, self.cpu.sample())
            measured(not self.guest.console.ios(self._mark),
                     f"the guest stayed idle for {idle} s")
        since, mark = len(self.events), self._mark

        def retried():
            return [e for e in self.events.events(since) if e.action == "retry"]

        def held():
            found = retried()
            return found if len(found) >= self.requests else None
        self.disk.outage(True)
        held_at = wait_until(
            held, self.pause + IO_TIMEOUT,
            f"{self.requests} held requests ('retry' io-error events)",
            interval=0.002,
            state=lambda: "io-error events by action: %s" % dict(
                collections.Counter(self.events.actions(since))),
            failed=self.guest.failure)[-1].time
        a = self.cpu.sample()
        time.sleep(max(0, held_at + hold - time.monotonic()))
        b = self.cpu.sample()
        end = self.disk.outage(False)
        lines = self.next_burst()
        c = self.cpu.sample()
        reader = None
        if self.reader_ms:
            reader = self.guest.wait(lambda: next((
                line.record for line in self.guest.console.stamped(mark)
                if isinstance(line.record, probe.Reader) and
                line.record.ok and line.time > end), None),
                IO_TIMEOUT, "the reader's first success after the outage",
                interval=0.002)
        measured(len(retried()) == self.requests,
                 f"{self.requests} requests held, one event each: "
                 f"{self.events.events(since)}")
        measured(self.reader_ms or len(self.events.events(since)) ==
                 self.requests, "no other io-error event without a reader: "
                 f"{self.events.events(since)}")
        measured(all(line.time > end for line in lines),
                 "no request completed during the outage")
        waited = (end - held_at) * 1000
        measured(all(line.record.ok and line.record.lat_ms >= waited
                     for line in lines),
                 f"each held request waited the outage out ({waited:.0f} ms) "
                 f"and succeeded: {[line.text for line in lines]}")
        return Outage(end, lines, idle_cpu,
                      QemuCpu.between(a, b), QemuCpu.between(b, c), reader)


# The benchmarks: each returns its section of results.md.

class Run:
    """What the benchmarks of one run share: the host, the export, the
    accelerators their guests reported, the pictures written."""

    def __init__(self, host, disk):
        self.host = host
        self.disk = disk
        self.accelerators = set()
        self.pictures = []
