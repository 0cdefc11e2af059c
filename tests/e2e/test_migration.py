#!/usr/bin/python3
"""Live migration of a guest whose disk uses error_policy='retry', between
two daemons isolated as two hosts on this machine.

Each host is a Host of the harness (own config, state, sockets, host UUID)
with its own host name in its UTS namespace and its own loopback address:
libvirt refuses a migration whose destination reports the source's host
UUID. Both hosts' QEMUs use the same nbdkit export, the shared storage.
The migration stream goes from the source QEMU to a relay (Wire) on a
third loopback address, standing in for the network, and from there to
the destination QEMU listening on its host's address; the relay keeps the
first bytes of the stream, which tell a plain QEMU stream from TLS.

The checks are on the guest probe's log and on both daemons' views.
Scenarios: (a) matching configuration, (b) mismatched configuration
refused, (c) migration during an outage, (e) TLS. (d), a disk with
<reservations>, is not here: it needs a SCSI LUN (an sg device), which
the test machine need not have; libvirt's unit tests cover it.
"""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dih_e2e import (VIRSH, Console, Failure, Host, NbdDisk,  # noqa: E402
                     check, check_verified, guest_domain_xml, libvirt_env,
                     run_tests, stop_process)

DOM = "dih-mig"
# Host name and loopback address of each host; WIRE_ADDR is the relay's.
HOSTS = (("a", "dih-host-a", "127.0.0.2"), ("b", "dih-host-b", "127.0.0.3"))
WIRE_ADDR = "127.0.0.9"

RETRY = {"error_policy": "retry", "rerror_policy": "retry",
         "retry_interval": "1000", "retry_timeout": "30000"}


def attrs(policy):
    return " ".join("%s='%s'" % kv for kv in policy.items())


def free_port(addr):
    """A TCP port free on addr and on the wire's address."""
    while True:
        with socket.socket() as s, socket.socket() as w:
            s.bind((addr, 0))
            port = s.getsockname()[1]
            try:
                w.bind((WIRE_ADDR, port))
            except OSError:
                continue
            return port


class Wire:
    """A TCP relay between the two hosts: the source QEMU connects to it,
    it connects to the destination and copies both ways. It keeps the
    first bytes the source sent and counts the bytes."""

    HEAD = 65536

    def __init__(self, addr, dst_addr, port):
        self.dst = (dst_addr, port)
        self.head = b""
        self.sent = 0
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(4)
        self.threads = []
        self.conns = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            s = socket.create_connection(self.dst)
            self.conns += [c, s]
            for a, b, rec in ((c, s, True), (s, c, False)):
                t = threading.Thread(target=self._copy, args=(a, b, rec),
                                     daemon=True)
                t.start()
                self.threads.append(t)

    def _copy(self, a, b, record):
        try:
            while True:
                buf = a.recv(1 << 16)
                if not buf:
                    break
                if record:
                    if len(self.head) < self.HEAD:
                        self.head += buf[:self.HEAD - len(self.head)]
                    self.sent += len(buf)
                b.sendall(buf)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)

    def close(self):
        # shutdown() wakes the accept() of the thread; close() alone
        # would not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for t in self.threads:
            t.join(10)
        for c in self.conns:
            c.close()


def make_tls_certs(base):
    """A throwaway CA and, for each host, a server and a client
    certificate, laid out as libvirt's migrate_tls_x509_cert_dir wants:
    ca-cert.pem, server-{cert,key}.pem, client-{cert,key}.pem. Returns
    {host name: directory}."""
    def certtool(*args):
        subprocess.run(["certtool"] + list(args), check=True,
                       capture_output=True)

    def template(path, text):
        with open(path, "w") as f:
            f.write(text)
        return path

    ca_key = os.path.join(base, "ca-key.pem")
    ca_cert = os.path.join(base, "ca-cert.pem")
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", ca_key)
    certtool("--generate-self-signed", "--load-privkey", ca_key,
             "--template", template(os.path.join(base, "ca.info"),
                                    "cn = dih test CA\nca\ncert_signing_key\n"
                                    "expiration_days = 2\n"),
             "--outfile", ca_cert)
    dirs = {}
    for _, hostname, addr in HOSTS:
        d = os.path.join(base, hostname)
        os.makedirs(d)
        with open(ca_cert) as f, open(os.path.join(d, "ca-cert.pem"), "w") as o:
            o.write(f.read())
        for role, usage in (("server", "tls_www_server"),
                            ("client", "tls_www_client")):
            key = os.path.join(d, role + "-key.pem")
            certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
            info = template(os.path.join(d, role + ".info"),
                            "cn = %s\ndns_name = %s\nip_address = %s\n%s\n"
                            "signing_key\nencryption_key\nexpiration_days = 2\n"
                            % (hostname, hostname, addr, usage))
            certtool("--generate-certificate", "--load-privkey", key,
                     "--load-ca-certificate", ca_cert,
                     "--load-ca-privkey", ca_key, "--template", info,
                     "--outfile", os.path.join(d, role + "-cert.pem"))
        dirs[hostname] = d
    return dirs


def qemu_log(h):
    p = os.path.join(h.var, "log", "libvirt", "qemu", DOM + ".log")
    if not os.path.exists(p):
        return ""
    with open(p, errors="replace") as f:
        return "\n".join(f.read().splitlines()[-15:])


@contextlib.contextmanager
def two_hosts(tls_dirs=None):
    """Hosts a and b, started; stopped with everything they ran, also
    when the test fails."""
    hosts = []
    try:
        for name, hostname, addr in HOSTS:
            h = Host("mig-" + name, hostname=hostname)
            h.addr = addr
            hosts.append(h)
            extra = ""
            if tls_dirs:
                extra = ('default_tls_x509_cert_dir = "{d}"\n'
                         'migrate_tls_x509_cert_dir = "{d}"\n'
                         .format(d=tls_dirs[hostname]))
            h.start(qemu_conf_extra=extra)
        yield hosts
    except BaseException:
        for h in hosts:
            sys.stderr.write("--- host %s: daemon log ---\n%s\n"
                             "--- host %s: QEMU log ---\n%s\n" % (
                                 h.name, h.daemon_log_tail(), h.name,
                                 qemu_log(h)))
        raise
    finally:
        for h in hosts:
            h.cleanup()


# Shared storage and cache mode: libvirt refuses a live migration when it
# thinks a disk is not shared (VIR_ERR_MIGRATE_UNSAFE, overridden by
# --unsafe) and, for file disks on shared storage, when the cache mode is
# other than none/directsync and QEMU cannot drop its caches. A network
# disk (here NBD, the harness's NbdDisk) counts as shared whatever its
# cache mode (qemuMigrationSrcIsSafe), so no --unsafe is needed; the disk
# uses cache='none' anyway (O_DIRECT on the NBD client, no host page cache
# to go stale between the two QEMUs).


def start_guest(h, d, disk, policy, params):
    """The probe guest on host h, its disk 'vdb' on the shared NBD export
    (the guest kernel names it vda). The console file is opened in append
    mode: the destination QEMU opens it too, before the source stops
    writing to it. The guest powers off when the probe ends, so its
    'seconds' leave room for the migrations and the checks after them."""
    con = Console(os.path.join(d, "console.log"))
    xml = guest_domain_xml(DOM, disk.disk_xml(target="vdb",
                                              driver_attrs=attrs(policy)),
                           con.path, params)
    xml = xml.replace("<source path='%s'/>" % con.path,
                      "<source path='%s' append='on'/>" % con.path)
    h.virsh("create", "/dev/stdin", input=xml)
    con.wait_for("DIH disk dev=vda", 180)
    return con


def migrate(src, dst, port, *extra, wire=True):
    """virsh migrate --live from src to dst; the migration stream goes to
    the destination's address, through a Wire unless wire=False. Returns
    (virsh result, wire)."""
    w = Wire(WIRE_ADDR, dst.addr, port) if wire else None
    try:
        r = src.virsh("migrate", "--live", DOM, dst.uri,
                      "--migrateuri", "tcp://%s:%d" % (
                          WIRE_ADDR if wire else dst.addr, port),
                      "--listen-address", dst.addr, *extra,
                      check=False, timeout=600)
    finally:
        if w:
            w.close()
    return r, w


def domstate(h):
    r = h.virsh("domstate", DOM, check=False)
    return r.stdout.strip() if r.returncode == 0 else "(none: %s)" % (
        r.stderr.strip())


def check_moved(src, dst, con):
    """The domain runs on dst and is gone from src, QEMU included."""
    check(domstate(dst) == "running",
          "the domain runs on the destination %s: %s; guest console:\n%s" % (
              dst.hostname, domstate(dst), "\n".join(con.lines()[-10:])))
    check(src.virsh("list", "--all", "--name").stdout.strip() == "",
          "the domain is gone from the source %s: %s" % (src.hostname,
                                                         domstate(src)))
    check(not src.qemu_pids(), "no QEMU left on the source: %s" %
          src.qemu_pids())


def wait_more_ios(con, n, timeout=120):
    """Wait until the probe logged more than n I/Os."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(con.ios()) > n:
            return
        time.sleep(0.2)
    raise Failure("the guest's I/O went on (more than %d I/Os) within %d s; "
                  "last lines:\n%s" % (n, timeout, "\n".join(con.lines()[-10:])))


def wait_hung(con, quiet=3.0, timeout=60):
    """Wait until the probe logged no I/O for `quiet` seconds: a request
    is held. Returns when the quiet period began."""
    deadline = time.monotonic() + timeout
    n, since = len(con.ios()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        m = len(con.ios())
        if m != n:
            n, since = m, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return since
    raise Failure("the guest's I/O did not hang within %d s" % timeout)


@contextlib.contextmanager
def io_error_events(h, path):
    """virsh event --event io-error on host h, for all domains (also
    those that arrive by migration); yields a function returning the
    event lines so far."""
    with open(path, "w") as out:
        p = subprocess.Popen([VIRSH, "-c", h.uri, "event", "--event",
                              "io-error", "--loop"], env=libvirt_env(),
                             stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)

    def lines():
        with open(path) as f:
            # only complete lines: virsh may be in the middle of one
            return [l for l in f.read().split("\n")[:-1]
                    if l.startswith("event 'io-error' for domain '%s'" % DOM)]
    try:
        yield lines
    finally:
        stop_process(p)


def check_probe_clean(con):
    con.wait_for("DIH done", 240)
    errs = [io for io in con.ios() if io["res"] != "ok"]
    check(not errs, "no guest I/O error: %s" % errs[:3])
    return check_verified(con)


def test_matching_config_migration():
    """(a) Same retry configuration on both sides: the live migration
    succeeds, the guest's I/O goes on without an error, the data
    verifies."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            two_hosts() as (a, b):
        con = start_guest(a, d, disk, RETRY,
                          {"disks": "vda", "blocks": 16, "seconds": 30,
                           "pause_ms": 20})
        wait_more_ios(con, 20)
        r, w = migrate(a, b, free_port(b.addr))
        check(r.returncode == 0, "the migration succeeds: %s" % r.stderr.strip())
        n = len(con.ios())
        check_moved(a, b, con)
        # The destination's definition carries the retry configuration.
        check(attrs(RETRY) in b.virsh("dumpxml", DOM).stdout,
              "the destination's disk has %s" % attrs(RETRY))
        # The stream went over the wire, unencrypted (test_tls_migration
        # relies on this telling plain from TLS).
        check(w.connections == 1 and w.sent > 1 << 20,
              "the migration stream went through the wire: %d connection(s),"
              " %d bytes" % (w.connections, w.sent))
        check(w.head[:4] == b"QEVM", "a plain QEMU stream starts with "
              "'QEVM': %r" % w.head[:8])
        wait_more_ios(con, n + 20)
        check_probe_clean(con)


MISMATCHES = (
    # (destination policy, strings the refusal names)
    (dict(RETRY, retry_interval="500"),
     ["'vdb'", "retry_interval=500", "retry_interval=1000"]),
    ({}, ["'vdb'", "(none)", "error_policy=retry", "rerror_policy=retry",
          "retry_interval=1000", "retry_timeout=30000"]),
)


def test_mismatched_xml_refused():
    """(b) virsh migrate --xml with another retry_interval, and with no
    retry at all: the destination refuses in Prepare (libvirt compares the
    source's migration cookie with the destination definition) with
    VIR_ERR_CONFIG_UNSUPPORTED naming the disk target and both
    configurations; the source domain runs on, its I/O unharmed, and no
    QEMU is left on the destination."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            two_hosts() as (a, b):
        con = start_guest(a, d, disk, RETRY,
                          {"disks": "vda", "blocks": 16, "seconds": 40,
                           "pause_ms": 20})
        wait_more_ios(con, 20)
        xml = a.virsh("dumpxml", "--migratable", DOM).stdout
        check(attrs(RETRY) in xml, "the source's disk has %s" % attrs(RETRY))
        for policy, named in MISMATCHES:
            path = os.path.join(d, "dest.xml")
            dest_xml = xml.replace(" " + attrs(RETRY),
                                   (" " + attrs(policy)) if policy else "")
            check(dest_xml != xml, "the destination XML differs")
            with open(path, "w") as f:
                f.write(dest_xml)
            r, _ = migrate(a, b, free_port(b.addr), "--xml", path)
            check(r.returncode != 0,
                  "a migration to a destination with %s is refused; it "
                  "succeeded (domain on %s: %s, on %s: %s)" % (
                      attrs(policy) or "no retry", a.hostname, domstate(a),
                      b.hostname, domstate(b)))
            err = r.stderr.strip()
            check("unsupported configuration" in err and
                  all(s in err for s in named),
                  "the refusal is VIR_ERR_CONFIG_UNSUPPORTED naming %s: %r"
                  % (named, err))
            check(domstate(a) == "running",
                  "the source domain runs on: %s" % domstate(a))
            check(b.virsh("list", "--all", "--name").stdout.strip() == "",
                  "no domain on the destination")
            check(not b.qemu_pids(), "no QEMU left on the destination: %s"
                  % b.qemu_pids())
            n = len(con.ios())
            wait_more_ios(con, n + 10)
        check_probe_clean(con)


def test_migration_during_outage():
    """(c) Migration while the disk is out and a request is held: the
    held request travels with the guest (in virtio-blk's request queue)
    and completes on the destination once the outage ends; no guest
    error, all data verified. The retry timeout starts again on the
    destination."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            two_hosts() as (a, b), \
            io_error_events(a, os.path.join(d, "a.events")) as a_events, \
            io_error_events(b, os.path.join(d, "b.events")) as b_events:
        con = start_guest(a, d, disk, dict(RETRY, retry_timeout="60000"),
                          {"disks": "vda", "blocks": 16, "seconds": 20,
                           "pause_ms": 20})
        wait_more_ios(con, 20)
        disk.outage(True)
        hung = wait_hung(con)
        check([l for l in a_events() if l.endswith(" retry")],
              "the source reports the held request (io-error ... retry): %s"
              % a_events())
        n = len(con.ios())
        r, _ = migrate(a, b, free_port(b.addr))
        check(r.returncode == 0, "the migration during the outage succeeds: "
              "%s" % r.stderr.strip())
        check_moved(a, b, con)
        # Still held on the destination: neither completed nor failed.
        wait_quiet = time.monotonic() + 3
        while time.monotonic() < wait_quiet:
            check(len(con.ios()) == n, "the request stays held on the "
                  "destination while the outage lasts: %s" % con.ios()[n:])
            time.sleep(0.2)
        check(domstate(b) == "running", "the domain runs on the destination "
              "during the outage: %s" % domstate(b))
        # The destination QEMU resubmitted the migrated request, which
        # failed again and is now held there.
        check([l for l in b_events() if l.endswith(" retry")],
              "the destination reports the migrated request held "
              "(io-error ... retry): %s" % b_events())
        end = disk.outage(False)
        wait_more_ios(con, n)
        held = float(con.ios()[n]["lat_ms"])
        check(held >= 0.8 * (end - hung) * 1000,
              "the first I/O after the migration is the held one, waiting "
              "through the outage (%.0f ms, outage seen for %.0f ms)" % (
                  held, (end - hung) * 1000))
        check_probe_clean(con)


def test_tls_migration():
    """(e) The matching-configuration migration over TLS: certificates
    from a throwaway CA, qemu.conf's TLS directories per host, virsh
    migrate --tls. What crosses the wire is a TLS session, not a plain
    QEMU stream; the guest's I/O goes on without error."""
    with tempfile.TemporaryDirectory() as d, NbdDisk(d) as disk, \
            two_hosts(make_tls_certs(d)) as (a, b):
        con = start_guest(a, d, disk, RETRY,
                          {"disks": "vda", "blocks": 16, "seconds": 30,
                           "pause_ms": 20})
        wait_more_ios(con, 20)
        # The source QEMU checks the destination's certificate against
        # this name (the stream itself goes to the wire's address).
        r, w = migrate(a, b, free_port(b.addr), "--tls",
                       "--tls-destination", b.hostname)
        check(r.returncode == 0, "the TLS migration succeeds: %s" %
              r.stderr.strip())
        n = len(con.ios())
        check_moved(a, b, con)
        check(w.connections == 1 and w.sent > 1 << 20,
              "the migration stream went through the wire: %d connection(s),"
              " %d bytes" % (w.connections, w.sent))
        # A TLS session starts with a handshake record (type 22, version
        # 3.x); the plain stream's 'QEVM' never appears in clear.
        check(w.head[:2] == b"\x16\x03", "the stream starts with a TLS "
              "handshake: %r" % w.head[:8])
        check(b"QEVM" not in w.head, "no plain QEMU stream on the wire")
        wait_more_ios(con, n + 20)
        check_probe_clean(con)


if __name__ == "__main__":
    sys.exit(run_tests([test_matching_config_migration,
                        test_mismatched_xml_refused,
                        test_migration_during_outage,
                        test_tls_migration]))
