"""Statistics, the machine's description and the pictures of the
benchmarks (tests/bench/*.py), and what they do when a measurement
cannot be made (measured(), MeasurementError). One definition of each
statistic: every benchmark's quantiles are quantile()'s."""

import json
import math
import os
import subprocess
import time


class MeasurementError(RuntimeError):
    """A measurement could not be made (a benchmark fails only then)."""


def measured(condition, what):
    """A measurement could not be made unless condition holds."""
    if not condition:
        raise MeasurementError(f"measurement failed: {what}")


def quantile(values, q):
    """The q-quantile (0 <= q <= 1) of values, interpolated linearly
    between neighbouring order statistics (the "inclusive" method of
    Python's statistics.quantiles(), numpy's default)."""
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median_ci(values, level=0.95):
    """A distribution-free confidence interval of the median: the k-th
    smallest and k-th largest value, k the largest for which fewer than
    k of n values fall below the median with probability at most
    (1 - level) / 2 (binomial, p = 1/2). With too few values it is
    (min, max), of lower confidence."""
    s = sorted(values)
    n = len(s)

    def below(k):
        """P(at most k of n values below the median)."""
        return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    k = 1
    while k < n // 2 and below(k) <= (1 - level) / 2:
        k += 1
    return s[k - 1], s[n - k]


def spread(values, unit="", digits=1):
    """'median m (IQR q1 to q3, min to max)' of values."""
    f = f"%.{digits}f{unit}"
    return "median %s (IQR %s to %s, range %s to %s)" % tuple(
        f % v for v in (quantile(values, 0.5), quantile(values, 0.25),
                        quantile(values, 0.75), min(values), max(values)))


def brief(values, fmt):
    """'median (min to max)' of values, each formatted with fmt."""
    return "%s (%s to %s)" % tuple(fmt % v for v in (
        quantile(values, 0.5), min(values), max(values)))


def machine():
    """The machine, as a line of text: CPU model, cores, OS, kernel, and
    the load average now."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    system = "unknown OS"
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                system = line.split("=", 1)[1].strip().strip('"')
    return "%s, %d cores, %s, Linux %s" % (model, os.cpu_count(), system,
                                            os.uname().release)


def load_average():
    return "%.2f / %.2f / %.2f" % os.getloadavg()


def qemu_build(path):
    """What can be told of the QEMU binary at path: its version line,
    when it was built, and where the source tree it was built from (its
    meson build directory's, if any) stands now."""
    version = subprocess.run([path, "--version"], capture_output=True,
                             text=True).stdout.splitlines()
    text = "%s (%s, built %s" % (path, version[0] if version else "no version",
                                 _mtime(path))
    info = os.path.join(os.path.dirname(path), "meson-info", "meson-info.json")
    if os.path.exists(info):
        with open(info) as f:
            source = json.load(f)["directories"]["source"]
        head = subprocess.run(
            ["git", "-C", source, "log", "-1", "--format=%s"],
            capture_output=True, text=True)
        describe = subprocess.run(
            ["git", "-C", source, "describe", "--tags", "--always", "--dirty"],
            capture_output=True, text=True)
        if head.returncode == 0 and describe.returncode == 0:
            text += "; its source tree %s is now at %s, \"%s\"" % (
                source, describe.stdout.strip(), head.stdout.strip())
    return text + ")"


def _mtime(path):
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))


def table(header, rows):
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def timeline(points, held, outage, interval, path):
    """Guest I/O latency against time through one outage: points are
    (start, latency ms) of each I/O, held those of the held ones, outage
    (begin, end); times in seconds from the outage's beginning."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.axvspan(*outage, color="tab:red", alpha=0.15, label="storage outage")
    # A log scale cannot show 0: the probe's 0.000 ms (below the guest
    # clock's resolution) is drawn at 0.01 ms.
    ax.scatter([p[0] for p in points], [max(p[1], 0.01) for p in points], s=8,
               label="guest I/O (O_DIRECT 4 KiB write or read)")
    ax.hlines([p[1] for p in held], [p[0] for p in held],
              [p[0] + p[1] / 1000 for p in held], color="tab:orange",
              label="held request, from issue to completion")
    ax.set_yscale("log")
    ax.set_xlabel("I/O start, seconds from the start of the outage (host clock)")
    ax.set_ylabel("latency seen by the guest (ms)")
    ax.set_title("error_policy='retry', retry_interval=%d ms: the held request "
                 "completes after the outage" % interval)
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def resume_bars(resume, path):
    """p50 and p95 of the resume latency against the retry interval, one
    group of bars per interval: resume maps (interval, label) to the
    latencies in ms."""
    plt = _pyplot()
    intervals = sorted({i for i, _ in resume})
    labels = sorted({label for _, label in resume})
    width = 0.8 / (2 * len(labels))
    fig, ax = plt.subplots(figsize=(8, 4))
    for n, label in enumerate(labels):
        for m, (q, shade) in enumerate(((0.5, 1.0), (0.95, 0.5))):
            x = [i + (2 * n + m - len(labels) + 0.5) * width
                 for i in range(len(intervals))]
            y = [quantile(resume[(i, label)], q) for i in intervals]
            ax.bar(x, y, width, alpha=shade, color="C%d" % n,
                   label="%s, p%d" % (label, round(q * 100)))
    ax.hlines([i + 50 for i in intervals], [n - 0.45 for n in range(len(intervals))],
              [n + 0.45 for n in range(len(intervals))], color="black",
              label="bound: interval + 50 ms")
    ax.set_xticks(range(len(intervals)))
    ax.set_xticklabels(["%d ms" % i for i in intervals])
    ax.set_xlabel("retry_interval")
    ax.set_ylabel("end of outage to completion (ms, host clock)")
    ax.set_title("Resume latency of held requests")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
