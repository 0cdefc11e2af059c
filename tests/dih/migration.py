"""Live migration between two hosts on this machine.

Two Hosts isolated as two machines: own host names (UTS namespaces), host
UUIDs (libvirt refuses a destination that reports the source's), state
and sockets, and loopback addresses 127.0.0.2 and 127.0.0.3. Both QEMUs
use the same storage. The migration stream can go through a Wire, a relay
on 127.0.0.9 standing in for the network, which keeps the first bytes of
the stream (a plain QEMU stream starts with 'QEVM', TLS with a handshake).
"""

import contextlib
import os
import socket
import subprocess
import threading

import libvirt

from .host import Host
from .process import free_port

# (name, host name, loopback address) of each host; WIRE_ADDRESS the relay's.
HOSTS = (("a", "dih-host-a", "127.0.0.2"), ("b", "dih-host-b", "127.0.0.3"))
WIRE_ADDRESS = "127.0.0.9"


class Wire:
    """A TCP relay: the source QEMU connects to it, it connects to the
    destination and copies both ways, keeping the first HEAD bytes the
    source sent and counting them all."""

    HEAD = 65536

    def __init__(self, destination, port):
        self.destination = (destination, port)
        self.head = b""
        self.sent = 0
        self.connections = 0
        self._threads = []
        self._sockets = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((WIRE_ADDRESS, port))
        self._listener.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.destination)
            self._sockets += [client, server]
            for a, b, record in ((client, server, True),
                                 (server, client, False)):
                t = threading.Thread(target=self._copy, args=(a, b, record),
                                     daemon=True)
                t.start()
                self._threads.append(t)

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
        # shutdown() wakes the thread in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for t in self._threads:
            t.join(10)
        for s in self._sockets:
            s.close()


def make_tls_certs(base):
    """A throwaway CA and, for each host, a server and a client
    certificate, laid out as libvirt's migrate_tls_x509_cert_dir wants
    (ca-cert.pem, server-{cert,key}.pem, client-{cert,key}.pem).
    Returns {host name: directory}."""
    def certtool(*args):
        subprocess.run(["certtool", *args], check=True, capture_output=True)

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
    for _, hostname, address in HOSTS:
        d = os.path.join(base, hostname)
        os.makedirs(d)
        with open(ca_cert) as f, open(os.path.join(d, "ca-cert.pem"), "w") as o:
            o.write(f.read())
        for role, usage in (("server", "tls_www_server"),
                            ("client", "tls_www_client")):
            key = os.path.join(d, role + "-key.pem")
            certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
            info = template(os.path.join(d, role + ".info"),
                            f"cn = {hostname}\ndns_name = {hostname}\n"
                            f"ip_address = {address}\n{usage}\n"
                            "signing_key\nencryption_key\nexpiration_days = 2\n")
            certtool("--generate-certificate", "--load-privkey", key,
                     "--load-ca-certificate", ca_cert,
                     "--load-ca-privkey", ca_key, "--template", info,
                     "--outfile", os.path.join(d, role + "-cert.pem"))
        dirs[hostname] = d
    return dirs


@contextlib.contextmanager
def two_hosts(tls_dirs=None):
    """Hosts a and b, started (with the TLS directories of
    make_tls_certs, if given); stopped with everything they ran, also when
    the test fails."""
    hosts = []
    try:
        for name, hostname, address in HOSTS:
            qemu_conf = ""
            if tls_dirs:
                qemu_conf = (f'default_tls_x509_cert_dir = "{tls_dirs[hostname]}"\n'
                             f'migrate_tls_x509_cert_dir = "{tls_dirs[hostname]}"\n')
            host = Host("mig-" + name, hostname=hostname, address=address,
                        qemu_conf=qemu_conf)
            hosts.append(host)
            host.start()
        yield hosts
    except BaseException:
        for host in hosts:
            host.report()
        raise
    finally:
        for host in hosts:
            host.cleanup()


def migrate(dom, dst, dest_xml=None, tls=False, wire=True):
    """Live-migrate dom to host dst as 'virsh migrate --live' does
    (the client drives it: virDomainMigrate3), the stream to dst's address
    through a Wire unless wire=False. Returns the Wire (or None); raises
    libvirtError when the migration fails."""
    port = free_port(dst.address, WIRE_ADDRESS)
    w = Wire(dst.address, port) if wire else None
    params = {
        libvirt.VIR_MIGRATE_PARAM_URI:
            f"tcp://{WIRE_ADDRESS if wire else dst.address}:{port}",
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: dst.address,
    }
    flags = libvirt.VIR_MIGRATE_LIVE
    if dest_xml is not None:
        params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = dest_xml
    if tls:
        # The source QEMU checks the destination's certificate against
        # its host name (the stream itself goes to the wire's address).
        params[libvirt.VIR_MIGRATE_PARAM_TLS_DESTINATION] = dst.hostname
        flags |= libvirt.VIR_MIGRATE_TLS
    try:
        dom.migrate3(dst.conn, params, flags)
    finally:
        if w is not None:
            w.close()
    return w
