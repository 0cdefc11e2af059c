#!/usr/bin/python3
"""Benchmark: what the retry settings cost virtio-blk's request path,
measured without a guest.

Two QEMU processes with the qtest accelerator (no vCPU, no TCG, no guest
kernel) each have one virtio-blk-pci on a null-co backend that does no
work (read-zeroes=off): A with retry configured (werror=report,
rerror=report, werror-retry=on, rerror-retry=on, retry-interval=1000,
retry-timeout=0), B plain. This script plays the guest over the qtest
protocol (devpath_virtio): 4 KiB requests, alternately reads and writes,
CHAINS of them per notify, each batch awaited in the used ring. Two
figures, A against B:

- Instructions per request of the device path, under valgrind's
  callgrind: collected only inside virtio_blk_handle_output (the
  notify: popping the ring, parsing the requests, submitting them down
  to the null driver) and virtio_blk_rw_complete (the completion:
  status, used ring, interrupt), for a run of K2 and of K1 requests;
  (I(K2) - I(K1)) / (K2 - K1) leaves out what happens once (the first
  requests fill the coroutine pool). The qtest accelerator runs no JIT,
  so the count is the device's own. It varies from run to run mostly
  with the state of glibc's heap (its bins serve what the thread cache
  does not hold with CHAINS requests in flight), so it is measured with
  glibc's defaults and again with a thread cache large enough for all
  of them (GLIBC_TUNABLES), where it repeats to a fraction of an
  instruction (what is left: whether a completion has to wake the main
  loop). The runs are repeated, in the order A B B A. B/A is the
  throughput ratio the count predicts. The part of the count in the
  retry code itself (hw/block/retry.[ch]) is given too.
- Requests per second over the qtest socket, A and B side by side in
  one run on one CPU, in short alternating slices (AB, BA, AB, ...), in
  blocks on new processes: the median of the per-pair ratios A/B, the range of
  the blocks' medians and the quartiles of the ratios. Round trips on
  the socket and other load on the machine weigh on this figure; it
  checks the ratio on real time.

Prints a table and writes it to <build>/bench/devpath.md. It never fails
on a figure, only when a measurement cannot be made.
"""

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import figures  # noqa: E402
from dih import environment  # noqa: E402
from devpath_virtio import CHAINS, Qtest, VirtioBlk  # noqa: E402
from figures import MeasurementError  # noqa: E402

OUT = os.environ.get("DIH_BENCH_DIR",
                     os.path.join(environment.TOP, "build", "bench"))
SLOT = 4
RETRY = ("werror=report,rerror=report,werror-retry=on,rerror-retry=on,"
         "retry-interval=1000,retry-timeout=0")
CONFIGS = {"A": f"virtio-blk-pci,drive=n0,addr={SLOT},{RETRY}",
           "B": f"virtio-blk-pci,drive=n0,addr={SLOT}"}
# Wall clock: blocks (each on new processes), pairs of slices per block,
# rounds (of CHAINS requests) per slice. Short slices: load from
# elsewhere on the machine comes in bursts that then weigh on both
# slices of a pair alike. New processes: one process of a pair can be
# faster than the other for reasons of its own (seen: 1.3 % between two
# processes of the same configuration), the same through a block. One
# CPU for the client and both QEMUs: each round trip hands the CPU from
# one to the other, and across CPUs it would cost whatever waking an
# idle CPU costs (seen unpinned on an idle machine: block medians 0.62
# to 1.56; pinned: 0.995 to 1.016).
BLOCKS = 12
PAIRS = 200
SLICE_ROUNDS = 16
# Callgrind: rounds of the two runs of each configuration, repetitions.
K1_ROUNDS, K2_ROUNDS = 50, 250
REPEATS = 3
TOGGLES = ("virtio_blk_handle_output", "virtio_blk_rw_complete")
# glibc's heap (name, description, GLIBC_TUNABLES): its defaults, and a
# thread cache that holds what CHAINS requests in flight allocate.
HEAPS = (("default", "glibc's default malloc", None),
         ("tcache", "GLIBC_TUNABLES=glibc.malloc.tcache_count=4096",
          "glibc.malloc.tcache_count=4096"))


def qemu_command(device):
    return [environment.QEMU, "-machine", "pc", "-nodefaults",
            "-display", "none", "-m", "16",
            "-blockdev", "null-co,node-name=n0,size=1073741824,"
            "read-zeroes=off",
            "-device", device]


def check_qemu():
    """The QEMU binary exists and has virtio-blk's retry properties."""
    if not os.access(environment.QEMU, os.X_OK):
        raise MeasurementError(f"no QEMU at {environment.QEMU}")
    props = subprocess.run(
        [environment.QEMU, "-device", "virtio-blk-pci,help"],
        capture_output=True, text=True).stdout
    missing = [p for p in ("werror-retry", "rerror-retry", "retry-interval",
                           "retry-timeout") if p not in props]
    if missing:
        raise MeasurementError(
            f"{environment.QEMU}: virtio-blk-pci has no {', '.join(missing)}"
            " (not the patched QEMU)")


@contextlib.contextmanager
def one_cpu():
    """Run this process, and the processes it starts, on one CPU."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cpus)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


def wall_clock(tmpdir):
    """Requests/s of A and B in alternating slices, BLOCKS times on a
    new pair of QEMU processes, started A first and B first in turn:
    per block, per pair, {config: (requests/s of the whole slice, of
    its fastest round)}."""
    with one_cpu():
        return wall_clock_blocks(tmpdir)


def wall_clock_blocks(tmpdir):
    blocks = []
    for block in range(BLOCKS):
        order = "AB" if block % 2 == 0 else "BA"
        with contextlib.ExitStack() as stack:
            devices = {}
            for name in order:
                qt = stack.enter_context(Qtest(qemu_command(CONFIGS[name]),
                                               tmpdir, f"wall{block}-{name}"))
                devices[name] = VirtioBlk(qt, SLOT)
                devices[name].run(SLICE_ROUNDS)
            pairs = []
            for i in range(PAIRS):
                pair = {}
                for name in (order if i % 2 == 0 else order[::-1]):
                    rounds = devices[name].run(SLICE_ROUNDS)
                    pair[name] = (len(rounds) * CHAINS / sum(rounds),
                                  CHAINS / min(rounds))
                pairs.append(pair)
            blocks.append(pairs)
    return blocks


def callgrind_run(tmpdir, config, rounds, tunables, tag):
    """Instructions callgrind collected in TOGGLES during rounds x
    CHAINS requests on configuration config, with QEMU's GLIBC_TUNABLES
    set to tunables (unset if None): (all, in the retry code)."""
    out = os.path.join(tmpdir, f"callgrind.{tag}")
    command = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
               f"--callgrind-out-file={out}"]
    command += [f"--toggle-collect={f}" for f in TOGGLES]
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    with Qtest(command + qemu_command(CONFIGS[config]), tmpdir, tag,
               timeout=300, env=env) as qt:
        VirtioBlk(qt, SLOT).run(rounds, timeout=300)
    if qt.proc.returncode != 0 or not os.path.exists(out):
        raise MeasurementError(
            f"{tag}: QEMU under callgrind exited with status "
            f"{qt.proc.returncode}, no profile:\n{qt.log_text()}")
    with open(out) as f:
        found = re.search(r"^totals: (\d+)", f.read(), re.M)
    if not found or int(found.group(1)) == 0:
        raise MeasurementError(
            f"{tag}: callgrind collected nothing in {', '.join(TOGGLES)}"
            " (functions not in this QEMU?)")
    return int(found.group(1)), retry_code(out)


def retry_code(profile):
    """Instructions of a callgrind profile in the retry code: the self
    cost of hw/block/retry.[ch], inlined code included."""
    annotate = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", profile],
        capture_output=True, text=True)
    if annotate.returncode != 0:
        raise MeasurementError(
            f"callgrind_annotate {profile}: {annotate.stderr.strip()}")
    return sum(int(cost.replace(",", "")) for cost in re.findall(
        r"^\s*([\d,]+) .*/hw/block/retry\.[ch]:", annotate.stdout, re.M))


def instructions(tmpdir, heap, tunables):
    """Device-path instructions per request with the given heap
    settings: {config: [(all, in the retry code) per repetition]}; each
    repetition runs A, B with K1 and B, A with K2 rounds."""
    per_request = {"A": [], "B": []}
    for rep in range(REPEATS):
        counts = {}
        for config, rounds in (("A", K1_ROUNDS), ("B", K1_ROUNDS),
                               ("B", K2_ROUNDS), ("A", K2_ROUNDS)):
            counts[config, rounds] = callgrind_run(
                tmpdir, config, rounds, tunables,
                f"{heap}.{rep}.{config}{rounds}")
        for config in per_request:
            k1, k2 = counts[config, K1_ROUNDS], counts[config, K2_ROUNDS]
            per_request[config].append(tuple(
                (b - a) / ((K2_ROUNDS - K1_ROUNDS) * CHAINS)
                for a, b in zip(k1, k2)))
    return per_request


def machine():
    with open("/etc/os-release") as f:
        system = re.search(r'^PRETTY_NAME="?([^"\n]*)', f.read(), re.M)
    with open("/proc/cpuinfo") as f:
        cpu = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
    return "%s, %s, %d cores" % (system.group(1) if system else "unknown",
                                 cpu.group(1) if cpu else "unknown CPU",
                                 os.cpu_count())


def instructions_row(description, per_request):
    def cell(runs):
        return "%.2f (%s); in retry.[ch] %.2f" % (
            statistics.mean(r[0] for r in runs),
            ", ".join("%.2f" % r[0] for r in runs),
            statistics.mean(r[1] for r in runs))
    ia, ib = (statistics.mean(r[0] for r in per_request[c]) for c in "AB")
    return (
        "| device path, instructions per request (callgrind; %s; "
        "%d - %d requests, %d times) | %s | %s | B/A = **%.4f** |" % (
            description, K2_ROUNDS * CHAINS, K1_ROUNDS * CHAINS, REPEATS,
            cell(per_request["A"]), cell(per_request["B"]), ib / ia))


def wall_clock_row(description, blocks, estimator):
    """The row of requests/s by estimator (0: whole slices, 1: fastest
    round of each slice)."""
    pairs = [pair for block in blocks for pair in block]
    ratios = [pair["A"][estimator] / pair["B"][estimator] for pair in pairs]
    medians = sorted(statistics.median(pair["A"][estimator] /
                                       pair["B"][estimator] for pair in block)
                     for block in blocks)
    return (
        "| requests/s over the qtest socket, %s (one CPU; %d blocks on "
        "new processes, each %d pairs of slices of %d requests, AB, BA, ...)"
        " | median %.0f | median %.0f | median of A/B per pair "
        "**%.4f**; per block %.4f to %.4f; quartiles of the pairs "
        "%.4f, %.4f |" % (
            description, len(blocks), len(blocks[0]), SLICE_ROUNDS * CHAINS,
            statistics.median(pair["A"][estimator] for pair in pairs),
            statistics.median(pair["B"][estimator] for pair in pairs),
            statistics.median(ratios), medians[0], medians[-1],
            figures.quantile(ratios, 0.25), figures.quantile(ratios, 0.75)))


def table(per_heap, blocks):
    lines = ["| measurement | A: retry configured | B: plain | A vs B "
             "(goal >= 0.99) |", "|---|---|---|---|"]
    lines += [instructions_row(description, per_request)
              for (_, description, _), per_request in zip(HEAPS, per_heap)]
    lines.append(wall_clock_row("whole slices", blocks, 0))
    lines.append(wall_clock_row("fastest round of each slice", blocks, 1))
    return "\n".join(lines)


def main():
    try:
        check_qemu()
        if not shutil.which("valgrind"):
            raise MeasurementError(
                "valgrind is not installed (Debian: valgrind)")
        with environment.runtime_directory("dih-devpath-") as tmpdir:
            start = time.monotonic()
            blocks = wall_clock(tmpdir)
            per_heap = [instructions(tmpdir, heap, tunables)
                        for heap, _, tunables in HEAPS]
            elapsed = time.monotonic() - start
    except MeasurementError as e:
        print(f"devpath: measurement failed: {e}", file=sys.stderr)
        return 1
    version = subprocess.run([environment.QEMU, "-version"],
                             capture_output=True, text=True).stdout
    text = (
        "# Device path: virtio-blk with and without retry, no guest\n\n"
        "Machine: %s. QEMU: %s (%s).\n\n"
        "qtest accelerator, pc machine, virtio-blk-pci (legacy interface) "
        "on null-co (read-zeroes=off); 4 KiB requests, alternately reads "
        "and writes, %d per notify. A: `%s`; B: none of these.\n\n%s\n\n"
        "Measured in %.0f s.\n" % (
            machine(), environment.QEMU, version.splitlines()[0].strip(),
            CHAINS, RETRY, table(per_heap, blocks), elapsed))
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "devpath.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    print("written: %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
