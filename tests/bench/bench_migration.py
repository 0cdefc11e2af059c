#!/usr/bin/python3
"""Benchmark: live migration time of a guest with an error_policy='retry'
disk, with and without requests held by an outage.

The two isolated hosts of tests/e2e/test_migration.py; the guest migrates
back and forth between them, first while its I/O flows, then during an
outage while a request is held (it travels in the migration stream). At
the end the outage ends and the held request must complete without a
guest error. Prints min/median/max and writes them to
<build>/bench/migration.md. Figures only: nothing here passes or fails on
time.
"""

import os
import re
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from dih_e2e import NbdDisk, check  # noqa: E402
from test_migration import (DOM, RETRY, free_port, migrate,  # noqa: E402
                            start_guest, two_hosts, wait_hung, wait_more_ios)

TOP = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.environ.get("DIH_BENCH_DIR", os.path.join(TOP, "build", "bench"))
RUNS = int(os.environ.get("DIH_BENCH_MIGRATION_RUNS", "5"))


def job_ms(h):
    """Time elapsed and total downtime (ms) of the last completed
    (incoming) migration job on host h, from virsh domjobinfo
    --completed (which forgets the job once read)."""
    out = h.virsh("domjobinfo", "--completed", DOM).stdout
    got = []
    for field in ("Time elapsed", "Total downtime"):
        m = re.search(r"^%s:\s+(\d+)\s+ms" % field, out, re.M)
        got.append(int(m.group(1)) if m else None)
    return got


def migrations(hosts, con, runs, held):
    """Migrate back and forth `runs` times; returns a list of
    (wall seconds, elapsed ms, downtime ms) per migration."""
    out = []
    for _ in range(runs):
        src, dst = hosts
        if not src.virsh("list", "--name").stdout.split():
            src, dst = dst, src
        n = len(con.ios())
        t = time.monotonic()
        r, _ = migrate(src, dst, free_port(dst.addr), wire=False)
        wall = time.monotonic() - t
        check(r.returncode == 0, "migration %s -> %s succeeds: %s" % (
            src.hostname, dst.hostname, r.stderr.strip()))
        if held:
            check(len(con.ios()) == n, "the request is still held")
        out.append((wall, *job_ms(dst)))
    return out


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return "%s / %s / %s" % tuple(
        ("%.2f" % v) if isinstance(v, float) else str(v)
        for v in (min(values), statistics.median(values), max(values)))


def main():
    results = {}
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            two_hosts() as hosts:
        con = start_guest(hosts[0], d, disk, dict(RETRY, retry_timeout="0"),
                          {"disks": "vda", "blocks": 16, "seconds": 900,
                           "pause_ms": 20})
        wait_more_ios(con, 20)
        results["I/O flowing, nothing held"] = migrations(hosts, con, RUNS,
                                                          held=False)
        disk.outage(True)
        wait_hung(con)
        results["outage, one request held"] = migrations(hosts, con, RUNS,
                                                         held=True)
        n = len(con.ios())
        disk.outage(False)
        wait_more_ios(con, n + 10)
        errs = [io for io in con.ios() if io["res"] != "ok"]
        check(not errs, "the held request completed without a guest error: "
              "%s" % errs[:3])

    lines = [
        "# Live migration with error_policy='retry'",
        "",
        "Guest: 256 MiB, 1 vCPU, TCG, probe doing O_DIRECT I/O on the shared "
        "NBD disk; two isolated hosts on one machine (%d cores), "
        "migration over loopback (tcp, no TLS); %d migrations per case, "
        "back and forth. Wall time is `virsh migrate`'s; elapsed and "
        "downtime are the destination's `virsh domjobinfo --completed`."
        % (os.cpu_count(), RUNS),
        "",
        "| case | wall time (s) min / median / max | elapsed (ms) | "
        "downtime (ms) |",
        "|---|---|---|---|",
    ]
    for case, runs in results.items():
        lines.append("| %s | %s | %s | %s |" % (
            case, stats([r[0] for r in runs]), stats([r[1] for r in runs]),
            stats([r[2] for r in runs])))
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "migration.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
