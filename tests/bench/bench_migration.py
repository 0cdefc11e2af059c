#!/usr/bin/python3
"""Benchmark: live migration time of a guest with an error_policy='retry'
disk, with and without requests held by an outage.

The two isolated hosts of the test library (dih.migration); the guest
migrates back and forth between them, first while its I/O flows, then
during an outage while a request is held (it travels in the migration
stream). At the end the outage ends and the held request must complete
without a guest error. Prints min/median/max and writes them to
<build>/bench/migration.md. Figures only: nothing here passes or fails on
time.
"""

import os
import statistics
import sys
import time

import libvirt

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dih import environment, policies  # noqa: E402
from dih.guest import WORKLOAD, ProbeGuest  # noqa: E402
from dih.migration import migrate, two_hosts  # noqa: E402
from dih.storage import NbdDisk  # noqa: E402
from figures import measured  # noqa: E402

OUT_DIR = os.environ.get("DIH_BENCH_DIR",
                         os.path.join(environment.TOP, "build", "bench"))
RUNS = int(os.environ.get("DIH_BENCH_MIGRATION_RUNS", "5"))


def job_ms(dom):
    """Time elapsed and total downtime (ms) of the last completed
    (incoming) migration job of dom, which the query forgets."""
    stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return stats.get("time_elapsed"), stats.get("downtime")


def migrations(hosts, guest, runs, held):
    """Migrate back and forth runs times; returns (wall seconds, elapsed
    ms, downtime ms) of each migration."""
    out = []
    for _ in range(runs):
        dst = hosts[1] if guest.host is hosts[0] else hosts[0]
        n = len(guest.console.ios())
        start = time.monotonic()
        migrate(guest.dom, dst, wire=False)
        wall = time.monotonic() - start
        guest.reconnect(dst)
        if held:
            measured(len(guest.console.ios()) == n, "the request is still held")
        out.append((wall, *job_ms(guest.dom)))
    return out


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return "%s / %s / %s" % tuple(
        ("%.2f" % v) if isinstance(v, float) else str(v)
        for v in (min(values), statistics.median(values), max(values)))


def main():
    environment.use_libvirt_build()
    results = {}
    with environment.runtime_directory("dih-bench-") as d, NbdDisk(d) as disk, \
            two_hosts() as hosts:
        guest = ProbeGuest(hosts[0], "dih-mig", [disk.disk(
            target="vdb", driver=policies.retry(1000, 0).driver)], WORKLOAD,
            console=os.path.join(d, "console.log"), append=True).start()
        guest.wait_disk()
        guest.wait_pass()
        results["I/O flowing, nothing held"] = migrations(hosts, guest, RUNS,
                                                          held=False)
        disk.outage(True)
        held = guest.wait_held("vdb")
        results["outage, one request held"] = migrations(hosts, guest, RUNS,
                                                         held=True)
        disk.outage(False)
        guest.wait_io(held, "the held I/O to complete")
        counts = guest.wait_pass()
        measured(counts.errors == 0 and counts.bad == 0,
                 f"the held request completed without a guest error: {counts}")

    lines = [
        "# Live migration with error_policy='retry'",
        "",
        "Guest: 256 MiB, 1 vCPU, TCG, probe doing O_DIRECT I/O on the shared "
        "NBD disk; two isolated hosts on one machine (%d cores), "
        "migration over loopback (tcp, no TLS); %d migrations per case, "
        "back and forth. Wall time is that of the migration call "
        "(virDomainMigrate3, as `virsh migrate`); elapsed and downtime "
        "are the destination's completed job statistics." % (
            os.cpu_count(), RUNS),
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
