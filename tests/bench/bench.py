#!/usr/bin/python3
"""Benchmarks of the retry policy on real processes (SPEC section 11).

    bench.py [NAME...]   run the benchmarks named (fast_path, wait_cost,
                         resume, scale, event_rate, auto_resume; all by
                         default)

How it measures (QEMU's CPU time, the guest's bursts of requests, the
outages that hold them) is tests/bench/measure.py; what each benchmark
does with it, and the report, are here. The test library tests/dih: an
isolated patched virtqemud, the QEMU of environment.QEMU (the patched
build, or DIH_QEMU) under TCG, nbdkit's error filter as the network
disk, the probe as the guest's /init. Each
comparison is paired within one run, so that the machine's load, which
changes single passes by a factor of 3, weighs on both sides alike. The
benchmarks print figures and fail only when a measurement could not be
made, never on a figure. Output: the tables on stdout and in
<build>/bench/results.md (with the machine, its load, the accelerator
the guests' QEMU reports through QMP query-kvm, and the QEMU binary),
pictures in <build>/bench/latency.png (guest I/O through an outage) and
resume.png (resume latency against the retry interval).

Clocks: the host's monotonic clock for what the host does and sees (an
outage begins or ends when the harness creates or unlinks nbdkit's error
file; a console line is stamped when a thread polling the console file
every 0.5 ms reads it; libvirt's io-error events when they arrive); the
guest's clock, whose HPET source follows the host's, only for spans
inside the guest (the probe's t and lat_ms).

- fast_path: one guest, two disks on the same healthy export, one with
  error_policy='retry', the other with 'report'; the probe alternates
  short slices (one pass of 64 blocks written and read back, one I/O at
  a time) in the order vda, vdb, vdb, vda, 16 times: 32 pairs of
  adjacent slices; a second guest swaps the disks' roles, so that their
  order on the PCI bus weighs on both alike. A slice's IOPS are its I/Os
  over the span from its first I/O's start to its last one's end (guest
  clock); besides, its I/Os per second of QEMU CPU time (all threads,
  from its first console line to its last), which leaves out the time
  other processes take the cores away. The figures: the median of the
  per-pair ratios retry / report, its spread and a distribution-free
  95 % confidence interval. Goal: >= 0.99.
- wait_cost: QEMU's CPU time (schedstat of each of its threads, in ns;
  /proc/PID/stat counts in 10 ms ticks, 0.1 % of a core over 10 s) in
  alternating 10 s windows of one guest whose only activity is one
  write every 12 s: idle (the probe asleep between two writes, no
  outage), then held (the next write held by an outage, retry_interval
  1000 ms), six pairs; the difference held - idle per pair, for all
  threads and for those other than the vCPU thread (where retry runs).
  Goal: within noise and < 0.1 % of a core.
- resume: from the end of an outage to the completion of each held
  request (the stamp of its console line), retry_interval 100, 500 and
  1000 ms, 24 outages each, whose lengths are spread over one interval
  so that the samples cover the phase of the retry timer; without other
  I/O (one request held, and 16), and with other I/O on the disk. An
  outage holds every request in flight, and a worker whose request is
  held issues no other, so without other I/O no request on the disk
  succeeds before a held one's own retry; the other 15 are then retried
  at once (the time from the first held request's completion to each
  other's, guest clock, shows it). With other I/O: next to the held
  write, the probe's reader (reader_ms) reads another block of the same
  disk every 10 ms, with rerror_policy='report', so that its reads fail
  during the outage (io-error events 'report', errors the guest sees
  and ignores) instead of being held, and the first one after the
  outage succeeds: the held write is then due at once, without waiting
  for its timer. The table shows also the reader's first success after
  the outage to the held write's completion (guest clock). Goal with
  other I/O: p95 <= 50 ms whatever the interval.
  Bound: interval + 50 ms. latency.png: one more guest, with the
  probe's usual workload (an I/O every 20 ms), through an outage of
  1 s at retry_interval 500 ms.
- scale: 1, 16 and 128 requests held (one disk at depth 1 and 16; two
  disks at depth 64, exercised in parallel) with retry_interval 100 ms,
  three outages each: the resume time (end of the outage to the first
  held request's console line, plus its completion to the last one's on
  the guest clock: the console's time to print 128 lines left out), the
  QEMU CPU of the resume, and QEMU's CPU while the requests are held
  (5 s) against the same guest asleep just before (5 s): the difference
  per retry round, and per round and request beyond the first (what
  resubmitting one more request costs), constant if the cost grows
  linearly with the requests held.

- event_rate: the io-error events a guest can drive (QEMU's
  BLOCK_IO_ERROR, a guest-triggerable event): one disk, 32 I/Os in
  flight, through an outage of 10 s, with error_policy and rerror_policy
  'retry', retry_interval 100 ms (the least QEMU takes) and retry_timeout
  1 ms, so that every request is held, then reported, and the guest
  resubmits at once; paired in each of 3 samples with the same guest on
  'report'. Printed: the guest's failed I/Os per second, the events per
  second by action, and the ratio of the two policies' event rates.
- auto_resume: a domain paused by its storage resuming by itself
  (error_policy='stop', auto_resume='on', no retries): at
  retry_interval 100, 500 and 1000 ms, 20 outages each on one guest
  with the probe's usual workload (an I/O every 20 ms). Each outage
  lasts until the domain paused (libvirt's suspended event, reason I/O
  error), then 0.5 s and a share of one interval spread over the
  samples, so that they cover the phase of QEMU's probe timer; the
  figure is the time from the storage's return (the harness removes
  nbdkit's error file) to libvirt's resumed event (reason storage
  recovered) reaching the client. QEMU delays the first probe of a VM
  stopped again soon after a resume (within 8 intervals; flapping
  storage), so the outages are AUTO_RESUME_SPACING intervals apart. Goal:
  p95 <= interval + 200 ms.

Held requests come from guests writing in bursts (Bursts): on each disk,
depth workers write one block each at the same moment, wait for one
another, sleep pause_ms, and start again. An outage begun while they
sleep holds exactly the next burst, counted by libvirt's io-error events
(one 'retry' event per request that starts being held); nothing
completes until it ends.
"""

import collections
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import figures  # noqa: E402
from figures import measured  # noqa: E402
from dih import environment, policies, probe, scenarios  # noqa: E402
from dih.guest import BOOT_TIMEOUT, ProbeGuest  # noqa: E402
from dih.events import EventWatcher, LifecycleWatcher  # noqa: E402
from dih.host import Host  # noqa: E402
from dih.storage import NbdDisk  # noqa: E402
from measure import (POLL, Bursts, QemuCpu, Run, accelerator,  # noqa: E402
                     destroy)

OUT = os.environ.get("DIH_BENCH_DIR",
                     os.path.join(environment.TOP, "build", "bench"))

FAST_ROUNDS = 16  # of vda, vdb, vdb, vda
FAST_GUESTS = 2
FAST_BLOCKS = 64

COST_PAIRS = 6
COST_WINDOW = 10

INTERVALS = (100, 500, 1000)
RESUME_SAMPLES = 24
# (label, requests held, the reader's period in ms or 0: no other I/O)
RESUME_LOADS = (("1 held", 1, 0), ("16 held", 16, 0),
                ("1 held, other I/O", 1, 10))
# The shortest outage, from the moment the last request was held.
RESUME_HOLD = 0.5
# The picture of an outage: the interval, how long the request is held,
# and how many I/Os after it.
PICTURE_INTERVAL = 500
PICTURE_HOLD = 1
PICTURE_AFTER = 50

SCALE = ((1, ("vda",)), (16, ("vda",)), (64, ("vda", "vdb")))
SCALE_INTERVAL = 100
SCALE_SAMPLES = 3
SCALE_WINDOW = 5

AUTO_RESUME_SAMPLES = 20
# Intervals from a resume to the next outage: more than the window in
# which QEMU counts a new stop as flapping storage (8 intervals).
AUTO_RESUME_SPACING = 10
AUTO_RESUME_GOAL_MS = 200

EVENT_SAMPLES = 3
EVENT_DEPTH = 32
EVENT_OUTAGE = 10


class Terminated(Exception):
    """SIGTERM (meson's timeout): end the run, cleaning up."""


def _terminated(signum, _frame):
    raise Terminated(f"terminated by signal {signum}")


def fast_path_slices(run, name, drivers):
    """One guest's slices, in order: (disk, IOPS, I/Os per second of QEMU
    CPU time); drivers: the <driver> attributes of vda and vdb."""
    order = ["vda", "vdb", "vdb", "vda"] * FAST_ROUNDS
    guest = ProbeGuest(run.host, name, [
        run.disk.disk(dev, driver=driver)
        for dev, driver in zip(("vda", "vdb"), drivers)],
        {"disks": ",".join(order), "blocks": FAST_BLOCKS, "passes": 1}).start()
    try:
        cpu = QemuCpu(run.host.qemu_pids()[0])
        # QEMU's CPU time when a slice's first line (its disk's) and its
        # last (its summary) arrive.
        edges = []

        def on_line(line):
            if isinstance(line.record, probe.Disk) or \
                    isinstance(line.record, probe.Counts) and \
                    line.record.pass_ is None:
                edges.append(cpu.sample())
        with guest.console.follow(POLL, on_line):
            guest.wait_disk("vda", BOOT_TIMEOUT)
            run.accelerators.add(accelerator(guest.dom))
            rc = guest.wait_done(BOOT_TIMEOUT + 60 * FAST_ROUNDS)
    finally:
        destroy(guest.dom)
    measured(rc == 0, f"the probe verified both disks (rc={rc})")
    slices = []
    for record in guest.console.records((probe.Disk, probe.IO)):
        if isinstance(record, probe.Disk):
            slices.append((record.dev, []))
        else:
            slices[-1][1].append(record)
    measured([dev for dev, _ in slices] == order and
             len(edges) == 2 * len(order),
             f"{len(order)} slices in the order {order}, each begun and ended")
    return [(dev, len(ios) / (ios[-1].t + ios[-1].lat_ms / 1000 - ios[0].t),
             len(ios) / QemuCpu.between(edges[2 * n], edges[2 * n + 1]).total)
            for n, (dev, ios) in enumerate(slices)]


def fast_path(run):
    """IOPS with retry configured vs not, paired slices of two guests."""
    pairs = []
    for n in range(FAST_GUESTS):
        # Every other guest swaps the disks' roles, so that the disks'
        # order on the PCI bus weighs on both policies alike.
        retried = ("vda", "vdb")[n % 2]
        slices = fast_path_slices(run, f"dih-fastpath-{n}", [
            policies.retry(1000).driver if dev == retried else
            policies.REPORT.driver for dev in ("vda", "vdb")])
        # Adjacent slices pair up: (vda, vdb), (vdb, vda), ...
        pairs += [(a, b) if a[0] == retried else (b, a)
                  for a, b in zip(slices[::2], slices[1::2])]
    rows = []
    for k, what in ((1, "IOPS (guest clock)"),
                    (2, "I/Os per second of QEMU CPU time")):
        ratios = [a[k] / b[k] for a, b in pairs]
        print("fast path, %s, retry/report per pair: %s" % (what, " ".join(
            "%.0f/%.0f" % (a[k], b[k]) for a, b in pairs)), flush=True)
        rows.append([what, len(pairs),
                     "%.0f / %.0f" % (statistics.median(a[k] for a, _ in pairs),
                                      statistics.median(b[k] for _, b in pairs)),
                     figures.spread(ratios, digits=3),
                     "%.3f to %.3f" % figures.median_ci(ratios), ">= 0.99"])
    iops = [x[1] for pair in pairs for x in pair]
    return "Fast path: `retry` / `report`", figures.table(
        ["measure", "pairs", "median slice: `retry` / `report`",
         "ratio `retry` / `report` per pair", "95 % CI of the median ratio",
         "goal"], rows) + (
        "\n\nSlices of %d I/Os (%d blocks written, then read back, one at a "
        "time), in the order vda, vdb, vdb, vda; %d guests of %d pairs, "
        "the disks' roles swapped in every other one; single slices %.0f to %.0f IOPS. The CPU time is that of all of "
        "QEMU's threads from a slice's first console line to its last: "
        "unlike the IOPS, it leaves out the time other processes on the "
        "machine take the cores away." % (
            2 * FAST_BLOCKS, FAST_BLOCKS, FAST_GUESTS, 2 * FAST_ROUNDS,
            min(iops), max(iops)))


def wait_cost(run):
    """QEMU's CPU with a request held vs the same guest idle."""
    with Bursts(run.host, run.disk, "dih-waitcost", 1000, 1,
                (COST_WINDOW + 2) * 1000) as guest:
        run.accelerators.add(guest.accelerator)
        outages = [guest.outage(COST_WINDOW, idle=COST_WINDOW)
                   for _ in range(COST_PAIRS)]
    rows = []
    for n, o in enumerate(outages, 1):
        print("QEMU CPU, pair %d: idle %.3f %% (non-vCPU %.3f %%), held "
              "%.3f %% (%.3f %%)" % (n, o.idle_cpu.total_pct,
                                     o.idle_cpu.other_pct, o.held_cpu.total_pct,
                                     o.held_cpu.other_pct), flush=True)
        rows.append([n, "%.3f / %.3f" % (o.idle_cpu.total_pct,
                                         o.held_cpu.total_pct),
                     "%+.3f" % (o.held_cpu.total_pct - o.idle_cpu.total_pct),
                     "%.3f / %.3f" % (o.idle_cpu.other_pct,
                                      o.held_cpu.other_pct),
                     "%+.3f" % (o.held_cpu.other_pct - o.idle_cpu.other_pct)])
    total = [o.held_cpu.total_pct - o.idle_cpu.total_pct for o in outages]
    other = [o.held_cpu.other_pct - o.idle_cpu.other_pct for o in outages]
    rows.append(["all pairs", "", figures.spread(total, digits=3), "",
                 figures.spread(other, digits=3)])
    lost = sum(o.idle_cpu.lost + o.held_cpu.lost for o in outages)
    return "Cost of waiting: QEMU CPU, % of one core", figures.table(
        ["pair", "all threads: idle / held", "held - idle",
         "non-vCPU threads: idle / held", "held - idle"], rows) + (
        "\n\n%d s windows, `retry_interval` 1000 ms; idle: the guest "
        "asleep, healthy storage; held: one write held by an outage. "
        "Goal: within noise and < 0.1 %% of a core.%s" % (
            COST_WINDOW, "" if not lost else
            " %d threads exited during a window: their time is missing." % lost))


def resume(run):
    """Resume latency after outages: one and 16 requests held, without
    other I/O; one held with other I/O on the disk."""
    samples, after_first, reader = {}, {}, {}
    for interval in INTERVALS:
        for label, depth, reader_ms in RESUME_LOADS:
            with Bursts(run.host, run.disk,
                        f"dih-resume-{interval}-{depth}-{reader_ms}",
                        interval, depth, 200, reader_ms=reader_ms) as guest:
                run.accelerators.add(guest.accelerator)
                outages = []
                for i in range(RESUME_SAMPLES):
                    outages.append(guest.outage(
                        RESUME_HOLD + interval / 1000 * (i + 0.5) / RESUME_SAMPLES))
                    guest.next_burst()
            key = interval, label
            samples[key] = [x for o in outages for x in o.latencies()]
            after_first[key] = [x for o in outages for x in o.after_first()]
            if reader_ms:
                reader[key] = [o.reader_to_completion() for o in outages]
            print("resume latency, retry_interval %d ms, %s: %s ms" % (
                interval, label, " ".join("%.0f" % x for x in samples[key])),
                flush=True)
    rows = []
    for (interval, label), s in samples.items():
        key = interval, label
        rows.append(["%d ms" % interval, label, len(s),
                     "%.0f / %.0f / %.0f" % (figures.quantile(s, 0.5),
                                             figures.quantile(s, 0.95), max(s)),
                     "%d ms" % (interval + 50),
                     "%.1f / %.1f" % (figures.quantile(after_first[key], 0.5),
                                      figures.quantile(after_first[key], 0.95))
                     if after_first[key] else "",
                     "%.1f / %.1f" % (figures.quantile(reader[key], 0.5),
                                      figures.quantile(reader[key], 0.95))
                     if key in reader else ""])
    outage_timeline(run)
    figures.resume_bars(samples, os.path.join(OUT, "resume.png"))
    run.pictures.append(("resume latency against the retry interval",
                         "resume.png"))
    return "Resume latency after an outage", figures.table(
        ["retry_interval", "load", "samples",
         "end of outage to completion: p50 / p95 / max (ms)", "bound",
         "first held completion to the others: p50 / p95 (ms)",
         "reader's first success to the held completion: p50 / p95 (ms)"],
        rows) + (
        "\n\n%d outages per row, their lengths spread over one interval "
        "(from %.1f s after the last request was held). Other I/O: the "
        "probe's reader, one read of another block every %d ms, read errors "
        "reported. Goal with other I/O: p95 <= 50 ms." % (
            RESUME_SAMPLES, RESUME_HOLD,
            next(r for _, _, r in RESUME_LOADS if r)))


def outage_timeline(run):
    """latency.png: a guest's I/O through one outage, the probe's usual
    workload (one I/O every 20 ms), retry_interval PICTURE_INTERVAL."""
    guest = ProbeGuest(run.host, "dih-timeline", [run.disk.disk(
        driver=policies.retry(PICTURE_INTERVAL, 0).driver)]).start()
    try:
        with guest.console.follow(POLL):
            guest.wait_disk()
            guest.wait_pass()
            begin = run.disk.outage(True)
            held = guest.wait_held()
            time.sleep(PICTURE_HOLD)
            end = run.disk.outage(False)
            first = guest.wait_io(held, "the held I/O to complete")
            guest.wait_ios(held, "I/O after the outage", count=PICTURE_AFTER)
    finally:
        destroy(guest.dom)
    measured(first.ok and first.lat_ms >= PICTURE_HOLD * 1000,
             f"the held I/O waited the outage out and succeeded: {first}")
    points, held_ios = [], []
    for line in guest.console.stamped():
        if isinstance(line.record, probe.IO):
            start = line.time - line.record.lat_ms / 1000 - begin
            if -2 <= start <= end - begin + 2:
                points.append((start, line.record.lat_ms))
                if line.record.lat_ms >= PICTURE_HOLD * 1000:
                    held_ios.append(points[-1])
    figures.timeline(points, held_ios, (0, end - begin), PICTURE_INTERVAL,
                     os.path.join(OUT, "latency.png"))
    run.pictures.append(("guest I/O through an outage", "latency.png"))


def scale(run):
    """Resume time and CPU with 1, 16 and 128 requests held."""
    rounds = 1000 / SCALE_INTERVAL
    measured = []
    for depth, devs in SCALE:
        with Bursts(run.host, run.disk, f"dih-scale-{depth * len(devs)}",
                    SCALE_INTERVAL, depth, (SCALE_WINDOW + 2) * 1000,
                    devs) as guest:
            run.accelerators.add(guest.accelerator)
            outages = [guest.outage(
                SCALE_WINDOW + SCALE_INTERVAL / 1000 * (i + 0.5) / SCALE_SAMPLES,
                idle=SCALE_WINDOW) for i in range(SCALE_SAMPLES)]
        measured.append((guest.requests, outages))
        print("scale, %d held: resume %s ms, non-vCPU CPU idle %s %%, held "
              "%s %%" % (guest.requests,
                         " ".join("%.0f" % o.resume_time() for o in outages),
                         " ".join("%.3f" % o.idle_cpu.other_pct for o in outages),
                         " ".join("%.3f" % o.held_cpu.other_pct for o in outages)),
              flush=True)
    rows = []
    for n, outages in measured:
        more = [o.held_cpu.other_pct - o.idle_cpu.other_pct for o in outages]
        # CPU seconds a second held, over retry rounds a second.
        per_round = statistics.median(more) / 100 / rounds * 1e6
        if n == measured[0][0]:
            first = per_round
        rows.append([
            n, figures.brief([o.resume_time() for o in outages], "%.0f"),
            "%.1f" % statistics.median(max(o.after_first(), default=0)
                                       for o in outages),
            "%.1f / %.1f" % (
                statistics.median(o.resume_cpu.total * 1000 for o in outages),
                statistics.median(o.resume_cpu.other * 1000 for o in outages)),
            "%.3f / %.3f" % (
                statistics.median(o.idle_cpu.other_pct for o in outages),
                statistics.median(o.held_cpu.other_pct for o in outages)),
            figures.brief(more, "%+.3f"), "%.0f" % per_round,
            "%.1f" % ((per_round - first) / (n - 1)) if n > 1 else ""])
    return "Scale: requests held", figures.table(
        ["requests held", "resume time (ms): median (range)",
         "first to last completion (ms, guest clock)",
         "QEMU CPU during the resume (ms): all / non-vCPU threads",
         "QEMU CPU, non-vCPU threads: idle / held (% of one core)",
         "held - idle: median (range)", "held - idle per retry round (us)",
         "per round and request beyond the first (us)"], rows) + (
        "\n\n`retry_interval` %d ms (%.0f retry rounds a second, each "
        "resubmitting every held request), %d outages each; %d = two disks "
        "at depth %d, in parallel. Resume time: end of the outage to the "
        "first held request's console line, plus its completion to the "
        "last one's on the guest clock (the console's own time to print the "
        "lines is left out). CPU: %d s held against %d s of the same guest "
        "asleep just before. The CPU of a retry round over the requests "
        "beyond the first is the cost of resubmitting one request: constant "
        "if the cost grows linearly with the requests held." % (
            SCALE_INTERVAL, rounds, SCALE_SAMPLES,
            SCALE[-1][0] * len(SCALE[-1][1]), SCALE[-1][0], SCALE_WINDOW,
            SCALE_WINDOW))


def event_rate(run):
    """io-error events a guest drives through an outage with
    retry_timeout 1 ms, paired with the same guest reporting its errors
    at once."""
    rows, ratios = [], []
    cases = (("report", policies.REPORT),
             ("retry, retry_interval 100 ms, retry_timeout 1 ms",
              policies.retry(100, 1)))
    for sample in range(EVENT_SAMPLES):
        rates = {}
        for label, policy in cases:
            guest = ProbeGuest(
                run.host, f"dih-events-{sample}-{len(rates)}",
                [run.disk.disk(driver=policy.driver)],
                {"depth": EVENT_DEPTH, "blocks": EVENT_DEPTH, "passes": 0,
                 "mode": "rw"}).start()
            try:
                with EventWatcher(run.host, guest.name) as events, \
                        guest.console.follow(POLL):
                    run.accelerators.add(accelerator(guest.dom))
                    guest.wait_disk()
                    guest.wait_pass()
                    since, mark = len(events), len(guest.console)
                    begin = run.disk.outage(True)
                    time.sleep(EVENT_OUTAGE)
                    end = run.disk.outage(False)
                    guest.wait_pass(since=len(guest.console))
                    seen = [e for e in events.events(since)
                            if begin <= e.time <= end]
                    failed = [line for line in guest.console.stamped(mark)
                              if isinstance(line.record, probe.IO)
                              and not line.record.ok
                              and begin <= line.time <= end]
            finally:
                destroy(guest.dom)
            seconds = end - begin
            measured(failed, f"{label}: the guest saw errors during the "
                     f"outage: {guest.console.tail()}")
            actions = collections.Counter(e.action for e in seen)
            rates[label] = len(seen) / seconds
            rows.append([sample + 1, label, "%.1f" % (len(failed) / seconds),
                         "%.2f" % rates[label],
                         ", ".join("%s %.2f" % (a, n / seconds)
                                   for a, n in sorted(actions.items()))])
            print("event rate, %s: %d failed guest I/Os, %d events in %.1f s"
                  " (%s)" % (label, len(failed), len(seen), seconds,
                             dict(actions)), flush=True)
        ratios.append(rates[cases[1][0]] / rates[cases[0][0]])
    return "io-error events a guest drives", figures.table(
        ["sample", "policy", "failed guest I/Os per s",
         "io-error events per s", "by action, per s"], rows) + (
        "\n\nRatio of the event rates, retry_timeout 1 ms / report, per "
        "sample: %s. One disk, %d I/Os in flight, an outage of %d s; events "
        "as libvirt's io-error events reach a client, counted from the "
        "outage's beginning to its end. QEMU rate limits BLOCK_IO_ERROR per "
        "device and action (one per second, the last of a burst kept)." % (
            " ".join("%.2f" % r for r in ratios), EVENT_DEPTH, EVENT_OUTAGE))


def auto_resume(run):
    """Time from the storage's return to the domain running again, for
    a domain paused by its storage with auto_resume='on'."""
    rows = []
    for interval in INTERVALS:
        policy = policies.stop_then_resume(interval)
        guest = ProbeGuest(run.host, f"dih-auto-resume-{interval}",
                           [run.disk.disk(driver=policy.driver)])
        latencies = []
        try:
            with LifecycleWatcher(run.host, guest.name) as lifecycle:
                guest.start()
                run.accelerators.add(accelerator(guest.dom))
                guest.wait_disk()
                guest.wait_pass()
                for i in range(AUTO_RESUME_SAMPLES):
                    held, _ = scenarios.storage_pause(guest, run.disk,
                                                      lifecycle)
                    time.sleep(RESUME_HOLD + interval / 1000 *
                               (i + 0.5) / AUTO_RESUME_SAMPLES)
                    latencies.append(1000 * scenarios.storage_resume(
                        guest, run.disk, lifecycle, held))
                    time.sleep(AUTO_RESUME_SPACING * interval / 1000)
                scenarios.assert_clean(guest.wait_pass())
        finally:
            destroy(guest.dom)
        print("auto-resume latency, retry_interval %d ms: %s ms" % (
            interval, " ".join("%.0f" % x for x in latencies)), flush=True)
        p95 = figures.quantile(latencies, 0.95)
        goal = interval + AUTO_RESUME_GOAL_MS
        rows.append(["%d ms" % interval, len(latencies),
                     "%.0f / %.0f / %.0f / %.0f" % (
                         min(latencies), figures.quantile(latencies, 0.5),
                         p95, max(latencies)),
                     "%d ms: %s" % (goal, "met" if p95 <= goal else "missed")])
    return "Auto-resume: storage back to the domain running", figures.table(
        ["retry_interval", "outages",
         "storage back to the resumed event: min / p50 / p95 / max (ms)",
         "goal: p95 <= interval + %d ms" % AUTO_RESUME_GOAL_MS], rows) + (
        "\n\nerror_policy='stop', auto_resume='on'; one guest per interval, "
        "an I/O every 20 ms; each outage from the pause on %.1f s plus a "
        "share of one interval; outages %d intervals apart." % (
            RESUME_HOLD, AUTO_RESUME_SPACING))


BENCHMARKS = {"fast_path": fast_path, "wait_cost": wait_cost,
              "resume": resume, "scale": scale, "event_rate": event_rate,
              "auto_resume": auto_resume}


def main(names):
    environment.use_libvirt_build()
    signal.signal(signal.SIGTERM, _terminated)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; "
                 f"known: {', '.join(BENCHMARKS)}")
    os.makedirs(OUT, exist_ok=True)
    started, load = time.monotonic(), figures.load_average()
    sections = []
    with environment.runtime_directory("dih-bench-") as d, NbdDisk(d) as disk, \
            Host("bench") as host:
        run = Run(host, disk)
        for name in names or BENCHMARKS:
            sections.append(BENCHMARKS[name](run))
    minutes = (time.monotonic() - started) / 60
    text = "# Benchmarks\n\n" + "\n".join([
        "- Machine: %s." % figures.machine(),
        "- Load average (1 / 5 / 15 min): %s at the start, %s at the end; "
        "run time %.1f min." % (load, figures.load_average(), minutes),
        "- Accelerator of the guests' QEMU: %s." % " / ".join(
            sorted(run.accelerators)),
        "- QEMU: %s." % figures.qemu_build(environment.QEMU),
    ]) + "".join("\n\n## %s\n\n%s" % s for s in sections) + "".join(
        "\n\n![%s](%s)" % p for p in run.pictures) + "\n"
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    print("written: %s" % ", ".join(os.path.join(OUT, name) for name in
                                    ["results.md"] + [p[1] for p in run.pictures]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
