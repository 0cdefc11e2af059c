#!/usr/bin/python3
"""Benchmarks of the retry policy on real processes (the e2e harness: an
isolated patched virtqemud, the patched QEMU under TCG, nbdkit's error
filter as the network disk, the probe as the guest's /init).

They print figures and never fail on a figure: a run fails only when a
measurement could not be made. Output: a table on stdout and in
<build>/bench/results.md, and a picture of guest I/O latency through an
outage in <build>/bench/latency.png.

- Resume latency: time from the end of an outage (the error file removed)
  to the completion of the held I/O, for retry_interval 100, 500 and
  1000 ms. Both ends are taken on the host's monotonic clock: the outage
  ends when the harness unlinks nbdkit's error file; the held I/O has
  completed when the probe's line for it reaches the serial console file
  on the host, which a thread here polls every 0.5 ms. The guest's own
  clock is not used for this (under TCG it is not the host's); the figure
  includes the guest's completion and console write, so it is an upper
  bound of QEMU's resume time. The outage lengths are spread over one
  interval so the samples cover the phase of the retry timer.
- Fast path: IOPS of the same guest on two disks of the same nbdkit
  export, error_policy='retry' (vda) and 'report' (vdb), in one run,
  in the order vda,vdb,vdb,vda four times (a drift in the machine's load
  weighs on both alike); the ratio retry/report of the median pass, and
  of all I/Os.
- Cost of waiting: QEMU's CPU time (utime+stime of all its threads, from
  /proc/PID/stat) during a 10 s outage with retry_interval 1000 ms, as a
  percentage of one core, next to the same 10 s with the guest idle and
  no outage; also for QEMU's threads other than the vCPU thread.
"""

import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from dih_e2e import (TOP, Console, Failure, Host, NbdDisk,  # noqa: E402
                     check, guest_domain_xml)

OUT = os.environ.get("DIH_BENCH_DIR", os.path.join(TOP, "build", "bench"))
INTERVALS = (100, 500, 1000)
SAMPLES = 6
ROUNDS = 4  # of the fast path's vda,vdb,vdb,vda


class TimedConsole:
    """The guest's serial console file, each line stamped with the host's
    monotonic time at which it appeared."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        f = None
        buf = b""
        while not self._stop:
            if f is None:
                try:
                    f = open(self.path, "rb")
                except FileNotFoundError:
                    time.sleep(0.01)
                    continue
            data = f.read()
            if not data:
                time.sleep(0.0005)
                continue
            now = time.monotonic()
            buf += data
            *done, buf = buf.split(b"\n")
            self.lines += [(now, l.decode(errors="replace").strip()) for l in done]
        if f:
            f.close()

    def ios_since(self, t):
        """(host time, probe I/O record) for each I/O line seen after t."""
        return [(h, dict(kv.split("=", 1) for kv in l[7:].split()))
                for h, l in list(self.lines) if h > t and l.startswith("DIH io ")]

    def wait_for(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(l.startswith(prefix) for _, l in list(self.lines)):
                return
            time.sleep(0.05)
        raise Failure("no %r on the guest console within %d s" % (prefix, timeout))

    def stop(self):
        self._stop = True
        self._thread.join()


def start_guest(h, d, name, disks_xml, params):
    path = os.path.join(d, name + ".console")
    # With ACPI the guest's clock is the HPET rather than 4 ms jiffies
    # (TCG makes the TSC unstable), so its latencies are fine-grained.
    xml = guest_domain_xml(name, disks_xml, path, params).replace(
        "  <devices>", "  <features>\n    <acpi/>\n  </features>\n"
        "  <devices>", 1)
    h.virsh("create", "/dev/stdin", input=xml)
    return path


def resume_latency(h, d, disk, interval):
    """Samples of outage end -> held I/O completed, in ms, and the
    console's timed lines with the outages (for the picture)."""
    name = "dih-resume-%d" % interval
    path = start_guest(h, d, name, disk.disk_xml(driver_attrs=(
        "error_policy='retry' rerror_policy='retry' retry_interval='%d' "
        "retry_timeout='0'" % interval)),
        {"disks": "vda", "blocks": 16, "seconds": 900, "pause_ms": 20,
         "mode": "write"})
    con = TimedConsole(path)
    samples, outages = [], []
    try:
        con.wait_for("DIH disk dev=vda", 180)
        time.sleep(1)
        for i in range(SAMPLES):
            time.sleep(0.5)
            t_on = disk.outage(True)
            time.sleep(1.2 + interval / 1000 * (i + 0.5) / SAMPLES)
            t_off = disk.outage(False)
            deadline = time.monotonic() + 60 + interval / 1000
            while time.monotonic() < deadline and not con.ios_since(t_off):
                time.sleep(0.01)
            after = con.ios_since(t_off)
            check(after, "the held I/O completed after the outage "
                  "(interval %d ms)" % interval)
            t_done, io = after[0]
            check(float(io["lat_ms"]) >= 1000 and io["res"] == "ok",
                  "the first I/O to complete after the outage is the held "
                  "one, and succeeded: %s" % io)
            samples.append((t_done - t_off) * 1000)
            outages.append((t_on, t_off))
        time.sleep(1)
        return samples, list(con.lines), outages
    finally:
        con.stop()
        h.virsh("destroy", name, check=False)


def fast_path(h, d, disk):
    """IOPS on vda (retry) and vdb (report), the same export, one run."""
    name = "dih-fastpath"
    disks = (disk.disk_xml(target="vda", driver_attrs=(
        "error_policy='retry' rerror_policy='retry' retry_interval='1000'"))
        + "\n" + disk.disk_xml(target="vdb", driver_attrs=(
            "error_policy='report' rerror_policy='report'")))
    con = Console(start_guest(h, d, name, disks,
                              {"disks": ",".join(["vda", "vdb", "vdb", "vda"] * ROUNDS),
                               "blocks": 256, "passes": 1}))
    con.wait_for("DIH done", 900)
    # Per segment (one disk's pass): I/Os over the time from the start of
    # its first I/O to the end of its last, on the guest's clock.
    segs = []
    seg = []
    for io in con.ios() + [None]:
        if seg and (io is None or io["dev"] != seg[0]["dev"] or
                    (io["op"] == "write" and seg[-1]["op"] == "read")):
            segs.append((seg[0]["dev"], len(seg),
                         float(seg[-1]["t"]) + float(seg[-1]["lat_ms"]) / 1000
                         - float(seg[0]["t"])))
            seg = []
        if io is not None:
            check(io["res"] == "ok", "no I/O error on a healthy disk: %s" % io)
            seg.append(io)
    check(len(segs) == 4 * ROUNDS, "%d passes logged, got %d" % (
        4 * ROUNDS, len(segs)))
    for dev in ("vda", "vdb"):
        s = con.summary(dev)
        check(s and s["bad"] == 0 and s["errors"] == 0,
              "%s verified: %s" % (dev, s))
    out = {}
    for dev in ("vda", "vdb"):
        mine = [sg for sg in segs if sg[0] == dev]
        out[dev] = (sum(sg[1] for sg in mine) / sum(sg[2] for sg in mine),
                    [sg[1] / sg[2] for sg in mine])
    return out


def cpu_ticks(pid):
    """utime+stime of each thread of pid, summed by thread name."""
    ticks = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            stat = f.read()
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[comm] = ticks.get(comm, 0) + int(fields[11]) + int(fields[12])
    return ticks


def cpu_window(pid, seconds):
    """% of one core QEMU used over the window: (all threads, all but the
    vCPU threads, {thread name: %})."""
    hz = os.sysconf("SC_CLK_TCK")
    a, t0 = cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    b, t1 = cpu_ticks(pid), time.monotonic()
    per = {k: 100.0 * (v - a.get(k, 0)) / hz / (t1 - t0) for k, v in b.items()}
    return (sum(per.values()),
            sum(v for k, v in per.items() if not k.startswith("CPU ")),
            {k: v for k, v in per.items() if v > 0})


def wait_cost(h, d, disk):
    """QEMU CPU % of one core: the guest idle (no outage), then a request
    held for 10 s with retry_interval 1000 ms."""
    name = "dih-waitcost"
    con = Console(start_guest(h, d, name, disk.disk_xml(driver_attrs=(
        "error_policy='retry' rerror_policy='retry' retry_interval='1000' "
        "retry_timeout='0'")),
        {"disks": "vda", "blocks": 3, "pause_ms": 14000, "mode": "write"}))
    try:
        con.wait_for("DIH io dev=vda op=write blk=0", 180)
        pid = h.qemu_pids()[0]
        # The probe sleeps 14 s after its first write: the guest is idle.
        time.sleep(1)
        idle = cpu_window(pid, 10)
        check(not any(l.startswith("DIH io dev=vda op=write blk=1")
                      for l in con.lines()), "the guest stayed idle")
        disk.outage(True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not h.virsh(
                "domblkerror", name).stdout.startswith("vda:"):
            time.sleep(0.2)
        check(h.virsh("domblkerror", name).stdout.startswith("vda:"),
              "the guest's second write waits on vda")
        held = cpu_window(pid, 10)
        check(h.virsh("domblkerror", name).stdout.startswith("vda:"),
              "the write was held through the window")
        disk.outage(False)
        con.wait_for("DIH io dev=vda op=write blk=1", 60)
        return idle, held
    finally:
        h.virsh("destroy", name, check=False)


def picture(lines, outage, interval, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t_on, t_off = outage
    pts = []
    for t_host, l in lines:
        if l.startswith("DIH io "):
            io = dict(kv.split("=", 1) for kv in l[7:].split())
            lat = float(io["lat_ms"])
            start = t_host - lat / 1000 - t_on
            if -2 <= start <= t_off - t_on + 2:
                pts.append((start, lat))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.axvspan(0, t_off - t_on, color="tab:red", alpha=0.15,
               label="storage outage")
    # A log scale cannot show 0: the probe's 0.000 ms (below the guest
    # clock's resolution) is drawn at 0.01 ms.
    ax.scatter([p[0] for p in pts], [max(p[1], 0.01) for p in pts], s=8,
               label="guest I/O (O_DIRECT 4 KiB write)")
    held = [p for p in pts if p[1] > 100]
    ax.hlines([p[1] for p in held], [p[0] for p in held],
              [p[0] + p[1] / 1000 for p in held], color="tab:orange",
              label="held write, from issue to completion")
    ax.set_yscale("log")
    ax.set_xlabel("I/O start, seconds from the start of the outage (host clock)")
    ax.set_ylabel("latency seen by the guest (ms)")
    ax.set_title("error_policy='retry', retry_interval=%d ms: the held write "
                 "completes after the outage" % interval)
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            Host("bench") as h:
        resume = {}
        for interval in INTERVALS:
            samples, lines, outages = resume_latency(h, d, disk, interval)
            resume[interval] = samples
            print("resume latency, retry_interval %d ms: %s ms" % (
                interval, " ".join("%.1f" % s for s in samples)), flush=True)
            if interval == 500:
                picture(lines, outages[-1], interval,
                        os.path.join(OUT, "latency.png"))
        fast = fast_path(h, d, disk)
        for dev, what in (("vda", "retry"), ("vdb", "report")):
            print("fast path, %s: %.0f IOPS (passes: %s)" % (
                what, fast[dev][0], " ".join("%.0f" % x for x in fast[dev][1])),
                flush=True)
        # The median pass: a burst of load from elsewhere on the machine
        # slows single passes (seen: one pass at 70 % of the others).
        iops = {dev: statistics.median(fast[dev][1]) for dev in fast}
        idle, held = wait_cost(h, d, disk)
        for what, w in (("idle guest", idle), ("10 s outage", held)):
            print("QEMU CPU, %s: %.2f %% of one core, non-vCPU threads %.2f %%"
                  " (%s)" % (what, w[0], w[1], ", ".join(
                      "%s %.2f %%" % kv for kv in sorted(w[2].items()))),
                  flush=True)

    for interval in INTERVALS:
        s = resume[interval]
        rows.append(("resume latency, retry_interval %d ms (%d samples)"
                     % (interval, len(s)),
                     "min %.0f / median %.0f / max %.0f ms" % (
                         min(s), statistics.median(s), max(s)),
                     "<= %d ms" % (interval + 50)))
    spread = [x for dev in fast for x in fast[dev][1]]
    rows.append(("fast path: IOPS retry / report, same export, one run "
                 "(%d passes of 512 I/Os each)" % len(spread),
                 "median pass %.0f / %.0f IOPS = **%.3f**; all I/Os %.0f / %.0f "
                 "= %.3f; single passes %.0f to %.0f IOPS" % (
                     iops["vda"], iops["vdb"], iops["vda"] / iops["vdb"],
                     fast["vda"][0], fast["vdb"][0],
                     fast["vda"][0] / fast["vdb"][0],
                     min(spread), max(spread)),
                 ">= 0.98"))
    rows.append(("QEMU CPU during a 10 s outage, retry_interval 1000 ms",
                 "%.2f %% of one core (non-vCPU threads %.2f %%); idle guest, "
                 "no outage: %.2f %% (%.2f %%)" % (held[:2] + idle[:2]),
                 "< 1 %"))
    table = ["| benchmark | measured | bound / goal |", "|---|---|---|"]
    table += ["| %s | %s | %s |" % r for r in rows]
    text = ("# Benchmarks\n\nMachine: %s, %d cores, %s.\n\n%s\n\n"
            "![guest I/O latency through an outage](latency.png)\n" % (
                machine(), os.cpu_count(),
                "KVM" if os.path.exists("/dev/kvm") else "no KVM (TCG guests)",
                "\n".join(table)))
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text)
    print()
    print("\n".join(table))
    print("\nwritten: %s, %s" % (os.path.join(OUT, "results.md"),
                                 os.path.join(OUT, "latency.png")))
    return 0


def machine():
    with open("/etc/os-release") as f:
        for l in f:
            if l.startswith("PRETTY_NAME="):
                return l.split("=", 1)[1].strip().strip('"')
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
