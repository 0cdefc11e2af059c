#!/usr/bin/python3
"""A chaos soak of the retry policy: random outages, an oracle, figures.

    soak.py [--seconds N | --outages N] [--seed S] [--lifetime N]

Four probe guests run at once on the patched libvirt and QEMU, each
with one disk on storage of its own (tests/dih/storage.py):

    blk    virtio-blk, no iothread, the seed's host block device (a loop
           device over an nbdfuse file); a second, healthy disk (vdc)
           that the soak unplugs and plugs back
    iot    virtio-blk in an iothread, QEMU's NBD client
    scsi   scsi-hd on virtio-scsi, QEMU's NBD client
    iscsi  scsi-hd on virtio-scsi, QEMU's iSCSI client to tgtd

The probe writes, and reads back, 64 blocks at queue depth 8; it opens
its disk O_DIRECT | O_SYNC, so each write it counts as acknowledged was
followed by a flush that succeeded (the guest's kernel sends one after
every such write to a disk with a write cache: cache none and
writeback). On the SCSI disk on NBD it also resets the device every
2 s (SG_SCSI_RESET), at random points of the outages (not on the iSCSI
disk: see SCSI_RESET_S).

Each guest has a policy and a cache mode drawn from the seed, and is
destroyed and started again on a new draw after --lifetime of its
outages. A round is one outage on every guest's storage at once, each
drawn on its own: shorter than the retry timeout, about as long, longer,
or flapping (storage up and down within an interval); on the iSCSI guest
sometimes the target itself killed and started again. During a round,
one of these may happen too: nothing, live migration of a guest on a
network disk to the other host (and back, later), a restart of a host's
daemon, virsh suspend and resume, the hot-unplug and re-plug of the
healthy disk.

The oracle, after each round, on each guest:

- the processes live (QEMU, both daemons, nbdkit, tgtd), and QMP
  answers within 1 s, also during the outage;
- the guest saw an I/O error only when its policy lets one through (an
  outage longer than the timeout with a 'report' policy after the
  retries, 'report' without retries, or a write with the host page
  cache, which is never held); after an outage longer than the timeout
  by more than an interval and 2 s, QEMU gave up on time: a final
  io-error event came, and on virtio-blk the guest saw the error (the
  guest's SCSI layer retries a command that failed with ABORTED COMMAND,
  QEMU's sense for EIO, up to 5 times); a pausing policy paused the
  domain instead, and only then; 'auto_resume' resumed it once the
  storage was back;
- once the storage is back and the domain runs, query-block shows
  nothing held (io-status not 'failed', 'retrying' false) within an
  interval and 2 s, and libvirt's state from the events agrees within 3 s
  (no "being retried" message);
- the guest's I/O goes on: a write and a read succeed;
- the probe found no read that returned other data than the last
  acknowledged write (or a later failed one), and, at the end of each
  guest's life, the host reads its image and checks every block against
  a ledger of the writes the guest saw acknowledged (the console's io
  lines: the generation of a write is its pass);
- QEMU's RSS and open file descriptors, sampled after each round, do
  not grow over a process's life (growth());
- at the end, no process, loop device, mount or runtime directory (with
  the sockets in it) of the soak is left.

A failed check ends the run with its seed and the command that replays
it. The run prints a table of figures and a verdict, and writes
build/soak/results.md and soak.png (DIH_SOAK_DIR overrides where).
"""

import argparse
import collections
import contextlib
import dataclasses
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "bench"))

import libvirt  # noqa: E402

import figures  # noqa: E402
from dih import domxml, environment, policies, probe  # noqa: E402
from dih.events import EventWatcher, LifecycleWatcher  # noqa: E402
from dih.guest import BOOT_TIMEOUT, IO_TIMEOUT, ProbeGuest  # noqa: E402
from dih.libvirt_api import (RESUMED_STORAGE_RECOVERED,  # noqa: E402
                             qemu_monitor)
from dih.migration import migrate, two_hosts  # noqa: E402
from dih.process import pid_alive  # noqa: E402
from dih.storage import (BlockDevice, FileImage, IscsiTarget,  # noqa: E402
                         NbdDisk)
from dih.wait import WaitFailed, wait_until  # noqa: E402

OUT = os.environ.get("DIH_SOAK_DIR",
                     os.path.join(environment.TOP, "build", "soak"))

BLOCKS = 64
BS = 4096
DEPTH = 8
PAUSE_MS = 40
# The probe resets the SCSI disk on NBD every SCSI_RESET_S seconds. Not
# the iSCSI disk: scsi_disk_reset() drains the device's requests
# (blk_drain() in scsi_device_purge_requests()) with the BQL held, and
# while the iSCSI target is away libiscsi keeps its requests until it
# reconnects, so a LUN reset by the guest freezes the VM and QMP until
# the target is back. That is QEMU without the series too.
SCSI_RESET_S = 2
INTERVALS = (100, 200, 500)
RESUME_INTERVALS = (100, 200)   # with auto_resume (see draw())
TIMEOUTS = (1000, 2000, 3000)
CACHES = ("none", "writeback", "directsync")
# (name, weight): the policies a guest's life draws from.
POLICIES = (("retry", 4), ("retry-pause-resume", 2), ("stop-resume", 2),
            ("retry-pause", 1), ("report", 1), ("stop", 1))
# (name, weight): what may happen during a round's outages.
ACTIONS = (("none", 6), ("suspend", 2), ("migrate", 2), ("restart", 1),
           ("hotplug", 2))
# The largest QMP round trip allowed (through libvirt), in seconds.
QMP_LIMIT = 1.0
# A leak (growth()): the RSS of a QEMU process at its last sample more
# than RSS_LEAK_MIB MiB above its maximum over the first half of its
# samples, or its open files more than FD_LEAK above theirs; judged for
# processes with at least MIN_SAMPLES (rounds).
MIN_SAMPLES = 10
FD_LEAK = 4
RSS_LEAK_MIB = 8


class Failed(Exception):
    """An invariant does not hold."""


class Terminated(Exception):
    pass


def _terminated(signum, _frame):
    raise Terminated(f"terminated by signal {signum}")


def check(condition, message):
    if not condition:
        raise Failed(message)


@dataclasses.dataclass
class Draw:
    """A guest's life: its policy and cache mode."""
    policy: str
    cache: str
    interval: int
    timeout: int | None

    def driver(self):
        if self.policy == "retry":
            p = policies.retry(self.interval, self.timeout)
        elif self.policy == "report":
            p = policies.REPORT
        elif self.policy == "stop":
            p = policies.STOP
        elif self.policy == "stop-resume":
            p = policies.stop_then_resume(self.interval)
        else:
            p = policies.retry_then_pause(self.timeout, self.interval)
            if self.policy == "retry-pause-resume":
                p = p.auto_resume()
        return dict(p.driver, cache=self.cache)

    @property
    def buffered(self):
        """Whether QEMU uses the host page cache, in which case it holds
        no failed write or flush (docs/user-guide.md)."""
        return self.cache == "writeback"

    @property
    def pauses(self):
        return self.policy.startswith("stop") or "pause" in self.policy

    @property
    def resumes(self):
        return self.policy.endswith("resume")

    @property
    def retries(self):
        return self.timeout is not None

    def __str__(self):
        text = f"{self.policy} cache={self.cache}"
        if self.policy not in ("report", "stop"):
            text += f" interval={self.interval}"
        if self.retries:
            text += f" timeout={self.timeout}"
        return text


def draw(rng):
    policy = rng.choices([p for p, _ in POLICIES],
                         [w for _, w in POLICIES])[0]
    timeout = rng.choice(TIMEOUTS) \
        if policy in ("retry", "retry-pause", "retry-pause-resume") else None
    # QEMU takes storage that fails again within 8 intervals of a resume
    # for flapping, and probes it less and less often (up to every 64
    # intervals): with rounds a few seconds apart, 500 ms would make
    # every round wait for that.
    intervals = RESUME_INTERVALS if policy.endswith("resume") else INTERVALS
    return Draw(policy, rng.choice(CACHES), rng.choice(intervals), timeout)


@dataclasses.dataclass
class Outage:
    """One outage on a guest's storage: kind short, at, long, flap or
    target (the iSCSI target killed); its planned length, and for flap
    the on/off periods."""
    kind: str
    seconds: float
    periods: tuple = ()
    begin: float = 0.0
    end: float = 0.0

    @property
    def solid(self):
        return self.kind != "flap"


def plan_outage(rng, lane, d):
    t = (d.timeout or 2000) / 1000
    kinds = ["short", "at", "long", "flap"]
    weights = [3, 2, 3, 2]
    if lane.kind == "iscsi":
        kinds.append("target")
        weights.append(1)
    kind = rng.choices(kinds, weights)[0]
    if kind == "short":
        return Outage(kind, rng.uniform(0.2, 0.6) * t)
    if kind == "at":
        return Outage(kind, rng.uniform(0.9, 1.1) * t)
    if kind in ("long", "target"):
        return Outage(kind, rng.uniform(1.5, 2.5) * t)
    periods = []
    total = rng.uniform(0.5, 1.5) * t
    while sum(periods) < total:
        periods.append(rng.uniform(0.2, 0.9) * d.interval / 1000)
    return Outage(kind, sum(periods), tuple(periods))


class Ledger:
    """The writes a guest's probe saw acknowledged, from its console:
    per block, the generation (pass) of the last acknowledged write and
    the last pass that may have written it."""

    def __init__(self, dev):
        self.dev = dev
        self.passes = 0
        self.acked = {}
        self.seen = 0
        self.verified = 0
        self.bad = []

    def feed(self, console):
        """Read the console's lines that are new since the last call."""
        lines = console.stamped(self.seen)
        self.seen += len(lines)
        for line in lines:
            rec = line.record
            if isinstance(rec, probe.Counts) and rec.dev == self.dev and \
                    rec.pass_ is not None:
                self.passes = rec.pass_ + 1
                self.verified = rec.verified
                # The probe's own count of bad reads, besides its lines
                if rec.bad and not self.bad:
                    self.bad.append(rec)
            elif isinstance(rec, probe.IO) and rec.dev == self.dev and \
                    rec.op == "write" and rec.ok:
                self.acked[rec.blk] = self.passes
            elif isinstance(rec, probe.Bad) and rec.dev == self.dev:
                self.bad.append(rec)

    def check_image(self, path):
        """Read the guest's image on the host and check every block the
        guest saw a write of acknowledged: it holds that write, or a
        later one that failed or was in flight. Returns the number of
        blocks checked and a list of the bad ones."""
        bad = []
        with open(path, "rb") as f:
            for blk, acked in sorted(self.acked.items()):
                f.seek(blk * BS)
                data = f.read(BS)
                gen = block_generation(data, blk)
                if gen is None or not acked <= gen <= self.passes:
                    bad.append((blk, acked, gen))
        return len(self.acked), bad


MAGIC = 0x4449482d50524f42   # "DIH-PROB"


def probe_block(blk, gen):
    """The probe's block blk of generation gen, as fill() in
    src/dih-probe.c writes it: the header (magic, block, generation),
    then a pattern derived from both."""
    m = (1 << 64) - 1
    x = ((blk * 0x9E3779B97F4A7C15) & m) ^ \
        (((gen + 1) * 0xC2B2AE3D27D4EB4F) & m)
    words = [MAGIC, blk, gen]
    for _ in range(3, BS // 8):
        x ^= (x << 13) & m
        x ^= x >> 7
        x ^= (x << 17) & m
        words.append(x)
    return struct.pack(f"<{BS // 8}Q", *words)


def block_generation(data, blk):
    """The generation of the probe's block blk in data, or None if data
    is not such a block."""
    if len(data) != BS:
        return None
    magic, num, gen = struct.unpack_from("<QQQ", data)
    if magic != MAGIC or num != blk or data != probe_block(blk, gen):
        return None
    return gen


class Lane:
    """One guest slot: its storage, and the guest of its current life."""

    def __init__(self, kind, storage, image, dirpath):
        self.kind = kind
        self.storage = storage
        self.image = image
        self.dir = dirpath
        self.name = f"soak-{kind}"
        self.scsi = kind in ("scsi", "iscsi")
        self.target = "sda" if self.scsi else "vda"
        self.spare = None
        self.host = None
        self.guest = None
        self.draw = None
        self.life = 0
        self.broken = False
        self.outages = 0
        self.life_outages = 0
        self.ledger = None
        self._alias = None
        self.samples = []   # (life outages, QEMU pid, RSS KiB, fds)
        # per life: (draw, outages, *growth(), blocks checked)
        self.lives = []

    def devices(self):
        driver = self.draw.driver()
        if self.kind == "blk":
            driver["io"] = "native" if self.draw.cache != "writeback" \
                else "threads"
        if self.kind == "iot":
            driver["iothread"] = "1"
        devices = []
        if self.scsi:
            devices.append(domxml.controller("scsi", 0, "virtio-scsi"))
            devices.append(self.storage.disk(target="sda", bus="scsi",
                                             driver=driver,
                                             address=domxml.SCSI_DRIVE))
        else:
            devices.append(self.storage.disk(target="vda", bus="virtio",
                                             driver=driver))
        if self.kind == "blk":
            devices.append(self.spare_disk())
        return devices

    def spare_disk(self):
        return self.spare.disk(target="vdc", bus="virtio")

    def start(self, host, rng):
        self.host = host
        self.draw = draw(rng)
        self.life += 1
        self.broken = False
        self.life_outages = 0
        self.samples = []
        params = {"blocks": BLOCKS, "bs": BS, "passes": 0,
                  "pause_ms": PAUSE_MS, "depth": DEPTH,
                  "disks": self.target}
        # Not on the iSCSI disk (see SCSI_RESET_S)
        if self.kind == "scsi":
            params["scsi_reset"] = SCSI_RESET_S
        console = os.path.join(self.dir, f"{self.name}-{self.life}.console")
        self.guest = ProbeGuest(host, self.name, self.devices(), params,
                                console=console, append=True,
                                iothreads=1 if self.kind == "iot" else 0)
        self.guest.start()
        self._alias = None
        self.ledger = Ledger(self.target)

    def stop(self):
        """Destroy the guest and check its image against the ledger;
        returns the bad blocks."""
        with contextlib.suppress(libvirt.libvirtError):
            self.guest.dom.destroy()
        self.ledger.feed(self.guest.console)
        checked, bad = self.ledger.check_image(self.image)
        slope, rise, fds = growth(self.samples)
        self.lives.append((str(self.draw), self.life_outages, slope, rise,
                           fds, checked))
        return checked, bad

    def qemu_pid(self):
        path = os.path.join(self.host.run, "libvirt", "qemu",
                            self.name + ".pid")
        with open(path) as f:
            return int(f.read().strip())

    def alias(self):
        """The disk's device alias (the same all its life, also across
        a migration)."""
        if self._alias is None:
            disk = domxml.find_disk(self.guest.live_xml(), self.target)
            self._alias = disk.find("alias").get("name")
        return self._alias

    def device_state(self):
        """(io-status, retrying) of the disk in query-block."""
        alias = self.alias()
        for b in qemu_monitor(self.guest.dom, "query-block"):
            if alias in b.get("qdev", ""):
                return b.get("io-status", "ok"), b.get("retrying", False)
        raise Failed(f"{self.name}: no device {alias} in query-block")

    def state(self):
        return self.guest.dom.state()


def growth(samples):
    """How the QEMU processes of samples ((outages, pid, RSS KiB, fds);
    a migration starts another process) grew, each over the second half
    of its samples, after the first half's warm-up (TCG's translation
    cache, the guest's memory): the largest RSS slope in MiB per 100
    outages (least squares), the largest rise of RSS in MiB and of open
    files above the first half's maximum. None, None, None if no
    process had MIN_SAMPLES."""
    slopes, rises, fds = [], [], []
    for pid in dict.fromkeys(p for _, p, _, _ in samples):
        s = [x for x in samples if x[1] == pid]
        if len(s) < MIN_SAMPLES:
            continue
        first, second = s[:len(s) // 2], s[len(s) // 2:]
        xs = [x for x, _, _, _ in second]
        ys = [r / 1024 for _, _, r, _ in second]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slopes.append(100 * sum((x - mx) * (y - my)
                                for x, y in zip(xs, ys)) / den
                      if den else 0.0)
        rises.append((second[-1][2] - max(x[2] for x in first)) / 1024)
        fds.append(second[-1][3] - max(x[3] for x in first))
    if not slopes:
        return None, None, None
    return max(slopes), max(rises), max(fds)


def proc_figures(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f
                   if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def outage_thread(storage, outage):
    """Run outage on storage in a thread of its own; returns it. A
    'target' outage kills the iSCSI target (storage.IscsiTarget) and
    starts it again; the others toggle the storage's error file."""
    def run():
        outage.begin = time.monotonic()
        if outage.kind == "target":
            storage.stop_tgtd()
            time.sleep(max(outage.seconds - (time.monotonic() - outage.begin),
                           0))
            outage.end = storage.start_tgtd()
            return
        if outage.solid:
            storage.outage(True)
            time.sleep(outage.seconds)
            outage.end = storage.outage(False)
            return
        for i, period in enumerate(outage.periods):
            storage.outage(i % 2 == 0)
            time.sleep(period)
        outage.end = storage.outage(False)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.hosts = []
        self.lanes = []
        self.io_events = []
        self.life_events = []
        self.watchers = {}
        self.rounds = 0
        self.outages = 0
        self.outage_seconds = 0.0
        self.stats = collections.Counter()
        self.holds = []          # ms, the longest hold of each outage
        self.resumes = []        # ms, storage back -> resumed event
        self.events_per_outage = []
        self.qmp = []            # s
        self.timeline = []       # (t, lane kind, hold ms)
        self.rss = collections.defaultdict(list)  # lane -> (outages, MiB)
        self.actions = collections.Counter()
        self.plans = {}
        self.restarted = set()
        self.suspended = {}   # lane name -> seconds suspended this round
        self.started = None

    # Hosts and watchers

    def watch(self, host):
        old = self.watchers.pop(host.name, None)
        if old:
            for w in old:
                w.close()
        self.watchers[host.name] = (
            EventWatcher(host, on_event=self.io_events.append),
            LifecycleWatcher(host, None, on_event=self.life_events.append))

    def other(self, host):
        return self.hosts[1] if host is self.hosts[0] else self.hosts[0]

    # Rounds

    def round(self):
        rng = self.rng
        plans = self.plans = {lane.name: plan_outage(rng, lane, lane.draw)
                              for lane in self.lanes}
        action = rng.choices([a for a, _ in ACTIONS],
                             [w for _, w in ACTIONS])[0]
        subject = rng.choice(self.lanes)
        self.restarted = set()
        self.suspended = {}
        marks = {lane.name: len(lane.guest.console) for lane in self.lanes}
        io_mark, life_mark = len(self.io_events), len(self.life_events)
        threads = []
        for lane in self.lanes:
            threads.append(outage_thread(lane.storage, plans[lane.name]))
        shortest = min(p.seconds for p in plans.values())
        time.sleep(min(shortest * 0.5, 1.0))
        try:
            self.during(plans)
            self.act(action, subject)
            self.actions[action] += 1
            for t in threads:
                t.join()
            for lane in self.lanes:
                self.recover(lane, plans[lane.name], marks[lane.name],
                             io_mark, life_mark)
        except (Failed, AssertionError, libvirt.libvirtError) as e:
            what = ", ".join(f"{lane.name} {lane.draw} {plans[lane.name].kind}"
                             f" {plans[lane.name].seconds:.2f} s"
                             for lane in self.lanes)
            raise Failed(f"round {self.rounds + 1} ({what}; {action} on "
                         f"{subject.name}): {type(e).__name__}: {e}") from e
        self.rounds += 1

    def during(self, plans):
        """While the storage fails: every process there, QMP answers in
        time, and a device holding requests says so in io-status."""
        for lane in self.lanes:
            self.alive(lane)
            io_status, retrying = self.timed(
                lane, "query-block during an outage", lane.device_state)
            check(not retrying or io_status in ("failed", "nospace"),
                  f"{lane.name}: query-block retrying with io-status "
                  f"{io_status}")

    def timed(self, lane, what, call):
        """call(), a QMP command through libvirt, which must answer
        within QMP_LIMIT; returns its result."""
        t0 = time.monotonic()
        result = call()
        self.qmp.append(time.monotonic() - t0)
        check(self.qmp[-1] <= QMP_LIMIT,
              f"{lane.name}: {what} took {self.qmp[-1]:.2f} s")
        return result

    def lifecycle(self, lane, since, event, detail):
        """lane's lifecycle events (event, detail) from position since
        on."""
        return [e for e in self.life_events[since:]
                if e.domain == lane.name and e.event == event and
                e.detail == detail]

    def alive(self, lane):
        for host in self.hosts:
            check(host.proc.poll() is None,
                  f"the daemon of {host.name} exited")
        check(pid_alive(lane.qemu_pid()), f"{lane.name}: QEMU is gone")
        for proc in storage_processes(lane.storage):
            check(proc.poll() is None,
                  f"{lane.name}: {proc.args[0]} exited ({proc.returncode})")

    def act(self, action, lane):
        # Every draw from the seed comes before anything that depends on
        # timing (the domain's state), so that a replay draws the same.
        if action == "suspend":
            dom = lane.guest.dom
            seconds = self.rng.uniform(0.2, 1.0)
            if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                self.actions["suspend skipped"] += 1
                return
            t0 = time.monotonic()
            dom.suspend()
            time.sleep(seconds)
            dom.resume()
            self.suspended[lane.name] = time.monotonic() - t0
        elif action == "migrate":
            # The block device and the spare file are local storage,
            # which libvirt refuses to migrate without VIR_MIGRATE_UNSAFE:
            # a guest on the network disks instead.
            if lane.kind == "blk":
                lane = self.rng.choice([x for x in self.lanes
                                        if x.kind != "blk"])
            dst = self.other(lane.host)
            try:
                migrate(lane.guest.dom, dst)
            except libvirt.libvirtError as e:
                # The destination's QEMU cannot open an iSCSI LUN whose
                # target is away: the migration fails, and the domain
                # goes on on the source.
                if not (lane.kind == "iscsi" and
                        self.plans[lane.name].kind == "target"):
                    raise
                check(lane.guest.dom.isActive(),
                      f"{lane.name}: not running on the source after a "
                      f"refused migration ({e})")
                self.actions["migrate refused, target away"] += 1
                return
            lane.guest.reconnect(dst)
            lane.host = dst
        elif action == "restart":
            host = lane.host
            self.restarted.add(host.name)
            host.restart_daemon()
            self.watch(host)
            for other in self.lanes:
                if other.host is host:
                    other.guest.reconnect(host)
        elif action == "hotplug":
            blk = next(x for x in self.lanes if x.kind == "blk")
            dom = blk.guest.dom
            # The guest takes part in the unplug (ACPI): not while paused
            if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                self.actions["hotplug skipped"] += 1
                return
            xml = domxml.to_string(blk.spare_disk())
            flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.detachDeviceFlags(xml, flags)
            wait_until(lambda: not any(
                d.find("target").get("dev") == "vdc"
                for d in blk.guest.live_xml().iter("disk")), 90,
                "vdc to be unplugged",
                state=lambda: f"state {dom.state()}")
            dom.attachDeviceFlags(xml, flags)

    def recover(self, lane, outage, mark, io_mark, life_mark):
        d = lane.draw
        guest = lane.guest
        self.alive(lane)
        lane.outages += 1
        lane.life_outages += 1
        self.outages += 1
        self.outage_seconds += outage.end - outage.begin
        bound = 64 * d.interval / 1000 + 15
        paused = self.lifecycle(lane, life_mark,
                                libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
                                libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR)
        if lane.kind == "blk" and d.buffered and (paused or any(
                not io.ok and io.op == "write"
                for io in guest.console.ios(mark, lane.target))):
            # QEMU's file driver fails every flush after one failed:
            # the guest cannot write any more until it starts again
            # (docs/user-guide.md); a new life, after the checks of the
            # guest's errors so far.
            self.judge(lane, outage, mark, bool(paused), io_mark)
            self.check_ledger(lane)
            self.stats["lives ended by a failed flush"] += 1
            lane.broken = True
            return
        # Paused: only a pausing policy may, and auto_resume resumes.
        if lane.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            check(d.pauses, f"{lane.name}: paused ({lane.state()}) under "
                  f"{d}")
            if d.resumes:
                guest.wait(lambda: lane.state()[0] ==
                           libvirt.VIR_DOMAIN_RUNNING, bound,
                           "the domain to resume by itself")
            else:
                guest.dom.resume()
                self.stats["manual resumes"] += 1
        paused = self.lifecycle(lane, life_mark,
                                libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
                                libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR)
        resumed = self.lifecycle(lane, life_mark,
                                 libvirt.VIR_DOMAIN_EVENT_RESUMED,
                                 RESUMED_STORAGE_RECOVERED)
        if paused:
            self.stats["pauses"] += 1
        for e in resumed:
            if e.time >= outage.end:
                self.resumes.append((e.time - outage.end) * 1000)
        # Nothing held once the storage is back and an interval passed.
        def settled():
            io_status, retrying = lane.device_state()
            return io_status == "ok" and not retrying
        wait_until(settled, d.interval / 1000 + 2,
                   f"{lane.name}: nothing held after the storage is back",
                   interval=0.05, state=lambda: str(lane.device_state()))

        # libvirt's state from the events agrees (the rate limit's tail
        # arrives within a second).
        def agrees():
            return not any(f"disk='{lane.target}'" in m and "retried" in m
                           for m in guest.dom.messages(0))
        wait_until(agrees, 3, f"{lane.name}: libvirt to see the retry end",
                   state=lambda: str(guest.dom.messages(0)))
        # The I/O goes on.
        back = len(guest.console)
        for op in ("write", "read"):
            guest.wait_io(back, f"a successful {op} after the outage",
                          lambda io, op=op: io.ok and io.op == op,
                          dev=lane.target, timeout=IO_TIMEOUT)
        self.judge(lane, outage, mark, bool(paused), io_mark)
        self.check_ledger(lane)
        events = [e for e in self.io_events[io_mark:] if e.domain == lane.name]
        self.events_per_outage.append(len(events))
        pid = lane.qemu_pid()
        rss, fds = proc_figures(pid)
        lane.samples.append((lane.life_outages, pid, rss, fds))
        self.rss[lane.name].append((lane.outages, rss / 1024))
        self.timed(lane, "query-status",
                   lambda: qemu_monitor(guest.dom, "query-status"))

    def check_ledger(self, lane):
        lane.ledger.feed(lane.guest.console)
        self.stats["bad blocks"] += len(lane.ledger.bad)
        check(not lane.ledger.bad, f"{lane.name}: the probe read back "
              f"other data than written: {lane.ledger.bad[:3]}")

    def check_image(self, lane):
        """End lane's life: its image against its ledger."""
        checked, bad = lane.stop()
        self.stats["blocks checked on the host"] += checked
        self.stats["ios verified"] += lane.ledger.verified
        self.stats["bad blocks"] += len(bad) + len(lane.ledger.bad)
        check(not bad, f"{lane.name}: blocks whose image does not hold "
              f"the last acknowledged write (block, acknowledged pass, "
              f"found): {bad[:5]}")
        self.life_end_leaks(lane)

    def outlasts_timeout(self, lane, outage):
        """Whether outage on lane's storage must have made QEMU give up
        on a request (or, without retries, fail one): a solid outage
        (the storage's error file), as long as the timeout, an interval
        and 2 s more, besides the time the domain was suspended (which
        does not count toward the timeout). On the disk the guest resets
        every SCSI_RESET_S, each reset drops the held requests, which
        the guest sends again and QEMU holds anew (docs/user-guide.md),
        so only a timeout and an interval shorter than the resets' period
        are certain to run out, in the period after a reset."""
        d = lane.draw
        if not outage.solid or outage.kind == "target":
            return False
        wait = (d.timeout / 1000 + d.interval / 1000 if d.retries else 0) + 2
        if lane.kind == "scsi":
            if wait - 2 >= SCSI_RESET_S:
                return False
            wait += SCSI_RESET_S
        return (outage.end - outage.begin -
                self.suspended.get(lane.name, 0)) >= wait

    def judge(self, lane, outage, mark, paused, io_mark):
        """The guest's errors, the final io-error events from io_mark on,
        and whether the domain paused, against what the policy says."""
        d = lane.draw
        # The events of a host whose daemon restarted in this round may
        # have come while it was away.
        observed = lane.host.name not in self.restarted
        ios = lane.guest.console.ios(mark, lane.target)
        errors = [io for io in ios if not io.ok]
        held = [io.lat_ms for io in ios if io.ok]
        hold = max(held) if held else 0
        self.holds.append(hold)
        self.timeline.append((outage.begin - self.started, lane.kind, hold))
        self.stats["ios"] += len(ios)
        length = outage.end - outage.begin
        interval = d.interval / 1000
        outlasts = self.outlasts_timeout(lane, outage)
        if d.policy == "report":
            may, must = True, False
        elif d.policy == "retry":
            may = length + interval + 0.5 >= d.timeout / 1000 or \
                outage.kind == "target"
            must = outlasts
        else:
            may, must = False, False
        # With the host page cache a failed write or flush is not held:
        # the policy's final action at once.
        unexpected = [io for io in errors if not may and not (
            d.buffered and io.op == "write" and not d.pauses)]
        if errors:
            self.stats["errors expected"] += len(errors) - len(unexpected)
            if unexpected:
                self.stats["errors unexpected"] += len(unexpected)
                raise Failed(f"{lane.name}: {len(unexpected)} I/O errors in "
                             f"the guest under {d}, outage {outage.kind} "
                             f"{length:.2f} s: {unexpected[:3]}")
        elif must and not lane.scsi:
            raise Failed(f"{lane.name}: no error in the guest under {d} "
                         f"after an outage of {length:.2f} s: a request "
                         "was held past its timeout")
        if must and observed:
            # The guest's SCSI layer retries a command that failed with
            # ABORTED COMMAND, up to 5 times: QEMU's final event says
            # that it gave up on time.
            wait_until(lambda: any(
                e.domain == lane.name and e.action == "report"
                for e in self.io_events[io_mark:]), 2,
                f"{lane.name}: a final io-error event ('report') under {d} "
                f"after an outage of {length:.2f} s (a request held past "
                "its timeout?)",
                state=lambda: str([e for e in self.io_events[io_mark:]
                                   if e.domain == lane.name]))
        if d.pauses and observed and outlasts:
            check(paused, f"{lane.name}: no pause under {d} after an "
                  f"outage of {length:.2f} s")
        if paused:
            check(d.pauses, f"{lane.name}: paused under {d}")

    # The run

    def new_life(self, lane):
        self.check_image(lane)
        lane.start(lane.host, self.rng)
        lane.guest.wait_disk(lane.target, BOOT_TIMEOUT)

    def life_end_leaks(self, lane):
        _, rise, fds = growth(lane.samples)
        if rise is not None:
            check(fds <= FD_LEAK, f"{lane.name}: QEMU's open files grew by "
                  f"{fds} in the second half of its samples: {lane.samples}")
            check(rise <= RSS_LEAK_MIB, f"{lane.name}: QEMU's RSS grew "
                  f"{rise:.1f} MiB in the second half of its samples: "
                  f"{lane.samples}")

    def done(self):
        if self.args.outages:
            return self.outages >= self.args.outages
        return time.monotonic() - self.started >= self.args.seconds

    def run(self):
        a, b = self.hosts
        for host in self.hosts:
            self.watch(host)
        for lane in self.lanes:
            lane.start(a, self.rng)
        for lane in self.lanes:
            lane.guest.wait_disk(lane.target, BOOT_TIMEOUT)
            print(f"{lane.name}: {lane.draw}", flush=True)
        self.started = time.monotonic()
        while not self.done():
            self.round()
            for lane in self.lanes:
                if lane.broken or lane.life_outages >= self.args.lifetime:
                    self.new_life(lane)
                    print(f"{lane.name}: life {lane.life}: {lane.draw}",
                          flush=True)
            if self.rounds % 10 == 0:
                print(f"round {self.rounds}: {self.outages} outages, "
                      f"{time.monotonic() - self.started:.0f} s", flush=True)
        for lane in self.lanes:
            self.check_image(lane)


def storage_processes(storage):
    found = []
    for obj in (storage, getattr(storage, "file", None),
                getattr(getattr(storage, "file", None), "nbd", None),
                getattr(storage, "nbd", None)):
        proc = getattr(obj, "proc", None) if obj is not None else None
        if proc is not None:
            found.append(proc)
    return found


def leftovers(dirs):
    """What the soak left behind of what it started in its runtime
    directories dirs (other tests may run beside it): processes whose
    command line or environment names one of them, loop devices and
    mounts on a path in them, and the directories themselves."""
    def ours(text):
        return any(d in text for d in dirs)
    procs = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                text = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                text += f.read().decode(errors="replace")
            if ours(text) and pid_alive(int(pid)):
                with open(f"/proc/{pid}/comm") as f:
                    procs.append(f"{pid} {f.read().strip()}")
    loops = [line for line in subprocess.run(
        ["losetup", "-a"], capture_output=True, text=True).stdout.splitlines()
        if ours(line)]
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if ours(line.split()[4])]
    left = {"processes": procs, "loop devices": loops, "mounts": mounts}
    if not os.environ.get("DIH_KEEP"):
        left["runtime directories"] = [d for d in dirs if os.path.exists(d)]
    return {k: v for k, v in left.items() if v}


def report(soak, verdict, failure, minutes, load):
    def q(values, p):
        return "%.0f" % figures.quantile(values, p) if values else "-"
    ev = soak.events_per_outage
    judged = [life for lane in soak.lanes for life in lane.lives
              if life[2] is not None]
    rss_slopes = [life[2] for life in judged]
    rss_rises = [life[3] for life in judged]
    fd_growth = [life[4] for life in judged]
    rows = [
        ("seed", soak.args.seed),
        ("rounds", soak.rounds),
        ("outages survived", soak.outages),
        ("seconds of outage", "%.0f" % soak.outage_seconds),
        ("guest I/Os in the outages' rounds", soak.stats["ios"]),
        ("reads verified by the probe", soak.stats["ios verified"]),
        ("bytes verified", soak.stats["ios verified"] * BS),
        ("blocks checked on the host against the ledger",
         soak.stats["blocks checked on the host"]),
        ("lost or corrupted blocks", soak.stats["bad blocks"]),
        ("guest errors expected / unexpected", "%d / %d" % (
            soak.stats["errors expected"], soak.stats["errors unexpected"])),
        ("hold, ms: p95 / max", "%s / %s" % (q(soak.holds, 0.95),
                                            q(soak.holds, 1.0))),
        ("pauses / manual resumes", "%d / %d" % (
            soak.stats["pauses"], soak.stats["manual resumes"])),
        ("resume latency (auto_resume), ms: n / p50 / p95 / max",
         "%d / %s / %s / %s" % (len(soak.resumes), q(soak.resumes, 0.5),
                                q(soak.resumes, 0.95), q(soak.resumes, 1.0))),
        ("io-error events per outage: p50 / p95 / max", "%s / %s / %s" % (
            q(ev, 0.5), q(ev, 0.95), q(ev, 1.0))),
        ("QMP round trip, ms: p95 / max", "%s / %s" % (
            q([x * 1000 for x in soak.qmp], 0.95),
            q([x * 1000 for x in soak.qmp], 1.0))),
        ("QEMU RSS growth per 100 outages, MiB, second half of each "
         "process: median / max",
         "%.1f / %.1f" % (figures.quantile(rss_slopes, 0.5),
                          max(rss_slopes)) if rss_slopes else "-"),
        ("QEMU RSS rise above the first half, MiB: max",
         "%.1f" % max(rss_rises) if rss_rises else "-"),
        ("QEMU open files rise above the first half: max",
         max(fd_growth) if fd_growth else "-"),
        ("actions during outages", ", ".join(
            f"{k} {v}" for k, v in sorted(soak.actions.items()))),
        ("guest lives / ended by a failed flush (cache=writeback)",
         "%d / %d" % (sum(lane.life for lane in soak.lanes),
                      soak.stats["lives ended by a failed flush"])),
    ]
    lives = [(lane.name, i + 1, life[0], life[1],
              "-" if life[2] is None else "%.1f" % life[2],
              "-" if life[3] is None else "%.1f" % life[3],
              "-" if life[4] is None else life[4], life[5])
             for lane in soak.lanes for i, life in enumerate(lane.lives)]
    text = "# Soak\n\n" + "\n".join([
        "- Machine: %s." % figures.machine(),
        "- Load average (1 / 5 / 15 min): %s at the start, %s at the end; "
        "run time %.1f min." % (load, figures.load_average(), minutes),
        "- QEMU: %s." % figures.qemu_build(environment.QEMU),
        "- Verdict: **%s**%s" % (verdict, "" if not failure else
                                 ": " + failure),
    ]) + "\n\n" + figures.table(("figure", "value"), rows) + \
        "\n\n## Guest lives\n\n" + figures.table(
            ("guest", "life", "policy", "outages", "RSS MiB/100 outages",
             "RSS rise MiB", "files rise", "blocks checked"), lives) + \
        "\n\n![soak](soak.png)\n"
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    picture(soak, os.path.join(OUT, "soak.png"))
    print("\n" + text, flush=True)


def picture(soak, path):
    if not soak.timeline:
        return
    plt = figures._pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7))
    colors = {"blk": "tab:blue", "iot": "tab:orange", "scsi": "tab:green",
              "iscsi": "tab:red"}
    for kind, color in colors.items():
        pts = [(t, h) for t, k, h in soak.timeline if k == kind]
        if pts:
            top.scatter([p[0] for p in pts], [p[1] for p in pts], s=8,
                        color=color, label=kind)
    top.set_xlabel("seconds into the soak (each point: one outage)")
    top.set_ylabel("longest guest I/O, ms")
    top.set_yscale("symlog")
    top.legend()
    for name, pts in soak.rss.items():
        bottom.plot([p[0] for p in pts], [p[1] for p in pts],
                    label=name, color=colors[name.split("-", 1)[1]])
    bottom.set_xlabel("outages of the guest (a step: another QEMU process, "
                      "after a migration or in a new life)")
    bottom.set_ylabel("QEMU RSS, MiB")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def replay_command(args, outages):
    return f"./dih soak --seed {args.seed} --outages {outages} " \
           f"--lifetime {args.lifetime}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--outages", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--lifetime", type=int, default=40)
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    environment.use_libvirt_build()
    signal.signal(signal.SIGTERM, _terminated)
    load = figures.load_average()
    soak = Soak(args)
    verdict, failure = "PASS", None
    print(f"soak: seed {args.seed}", flush=True)
    t0 = time.monotonic()
    dirs = []
    try:
        with contextlib.ExitStack() as stack:
            scratch = stack.enter_context(
                environment.runtime_directory("dih-soak-"))
            spare = FileImage(scratch, "spare", 16)
            stores = [
                ("blk", BlockDevice(scratch, "blk")),
                ("iot", NbdDisk(scratch, "iot")),
                ("scsi", NbdDisk(scratch, "scsi")),
                ("iscsi", IscsiTarget(scratch, "iscsi")),
            ]
            for kind, st in stores:
                stack.enter_context(st)
                image = getattr(st, "img", None) or st.file.nbd.img
                lane = Lane(kind, st, image, scratch)
                lane.spare = spare
                soak.lanes.append(lane)
            dirs.append(scratch)
            soak.hosts = list(stack.enter_context(two_hosts()))
            dirs.extend(host.dir for host in soak.hosts)
            try:
                soak.run()
            finally:
                for lane in soak.lanes:
                    with contextlib.suppress(Exception):
                        lane.guest.dom.destroy()
    except (Failed, WaitFailed, AssertionError, libvirt.libvirtError,
            Terminated) as e:
        verdict, failure = "FAIL", f"{type(e).__name__}: {e}"
    minutes = (time.monotonic() - t0) / 60
    time.sleep(1)
    for what, items in leftovers(dirs).items():
        verdict = "FAIL"
        failure = (failure + "; " if failure else "") + \
            f"left behind: {what}: {items[:5]}"
    report(soak, verdict, failure, minutes, load)
    if verdict != "PASS":
        print(f"soak: FAIL at outage {soak.outages} (seed {args.seed}); "
              "replay: "
              f"{replay_command(args, soak.outages + len(soak.lanes))}",
              flush=True)
        return 1
    print(f"soak: PASS, {soak.outages} outages (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
