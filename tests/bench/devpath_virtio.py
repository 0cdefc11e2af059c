"""A guest-free driver of QEMU's virtio-blk-pci over the qtest protocol.

QEMU runs with the qtest accelerator (no vCPU, no firmware run, no guest
kernel); this module plays the guest's part through QEMU's qtest text
protocol on a Unix socket: it programs the device's PCI config space
through ports 0xcf8/0xcfc, drives the legacy virtio-pci interface in its
I/O BAR and keeps one virtqueue in guest RAM. Requests complete when the
used ring's index says so; nothing here waits for a fixed time.

See QEMU's tests/qtest/libqos/virtio-pci.c and virtio-blk-test.c for the
registers and the request format.
"""

import os
import socket
import struct
import subprocess
import time

from dih.process import stop_process
from figures import MeasurementError

PCI_ADDRESS, PCI_DATA = 0xcf8, 0xcfc
PCI_COMMAND_IO, PCI_COMMAND_MASTER = 0x1, 0x4
VIRTIO_VENDOR, VIRTIO_BLK_LEGACY = 0x1af4, 0x1001
BAR0_PORT = 0xc000

# Legacy virtio-pci registers (offsets in the I/O BAR).
HOST_FEATURES, GUEST_FEATURES, QUEUE_PFN = 0x00, 0x04, 0x08
QUEUE_NUM, QUEUE_SEL, QUEUE_NOTIFY, STATUS = 0x0c, 0x0e, 0x10, 0x12
ACKNOWLEDGE, DRIVER, DRIVER_OK = 1, 2, 4
VRING_ALIGN = 4096

VRING_DESC_F_NEXT, VRING_DESC_F_WRITE = 1, 2
VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT = 0, 1
VIRTIO_BLK_S_OK = 0

# Guest physical memory layout (the machine needs 4 MiB of RAM).
RING = 0x100000
HEADERS = 0x108000
STATUSES = 0x109000
DATA = 0x200000

BLOCK = 4096
SECTOR = 512
# Requests in flight per notify: each is a chain of three descriptors
# (header, data, status), so 64 of them fit a 256-entry ring, and the
# avail ring is filled once for good (entry p is chain p % CHAINS).
CHAINS = 64


class Qtest:
    """A QEMU process with the qtest accelerator, and its qtest socket.

    command is QEMU's argv without the qtest options (it may start with
    a wrapper such as valgrind), env its environment (this process's if
    None). A context manager: QEMU is terminated (SIGTERM, so that a
    wrapper like callgrind writes its output) when the block ends, also
    on failure.
    """

    def __init__(self, command, tmpdir, name, timeout=120, env=None):
        self.name = name
        self.timeout = timeout
        self.log_path = os.path.join(tmpdir, f"{name}.log")
        path = os.path.join(tmpdir, f"{name}.qtest")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(1)
        self.log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                command + ["-qtest", f"unix:{path}", "-qtest-log", "none",
                           "-accel", "qtest"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                env=env)
        except OSError as e:
            self.log.close()
            self.listener.close()
            raise MeasurementError(f"{name}: cannot run {command[0]}: {e}")
        self.sock = self.reader = None
        try:
            self.sock = self._accept()
        except BaseException:
            self.close()
            raise
        self.sock.settimeout(timeout)
        self.reader = self.sock.makefile("rb")

    def _accept(self):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                conn, _ = self.listener.accept()
                return conn
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise MeasurementError(
                        f"{self.name}: QEMU exited with status "
                        f"{self.proc.returncode}:\n{self.log_text()}")
                if time.monotonic() >= deadline:
                    raise MeasurementError(
                        f"{self.name}: QEMU did not connect its qtest socket "
                        f"in {self.timeout} s:\n{self.log_text()}")

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-2000:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for f in (self.reader, self.sock, self.listener):
            if f is not None:
                f.close()
        stop_process(self.proc, self.timeout)
        self.log.close()

    def cmd(self, line):
        """Send one qtest command; returns the text after its "OK"."""
        try:
            self.sock.sendall(line.encode() + b"\n")
            reply = self.reader.readline().decode()
        except OSError as e:
            raise MeasurementError(
                f"{self.name}: qtest {line.split()[0]!r}: {e}:\n"
                f"{self.log_text()}") from e
        if not reply:
            raise MeasurementError(
                f"{self.name}: qtest {line.split()[0]!r}: no reply, QEMU "
                f"gone:\n{self.log_text()}")
        if not reply.startswith("OK"):
            raise MeasurementError(
                f"{self.name}: qtest {line.split()[0]!r}: {reply.strip()}")
        return reply[2:].strip()

    def value(self, line):
        return int(self.cmd(line), 0)

    def write(self, addr, data):
        self.cmd(f"write {addr:#x} {len(data)} 0x{data.hex()}")

    def read(self, addr, size):
        return bytes.fromhex(self.cmd(f"read {addr:#x} {size}")[2:])


class VirtioBlk:
    """A legacy virtio-blk-pci device on bus 0 of a pc machine, with
    queue 0 set up for CHAINS 4 KiB requests per notify, alternately
    reads and writes of sectors far enough apart not to be merged."""

    def __init__(self, qtest, slot):
        self.qt = qtest
        self.config = 0x80000000 | (slot << 11)
        ids = self.config_read(0)
        if ids != (VIRTIO_BLK_LEGACY << 16 | VIRTIO_VENDOR):
            raise MeasurementError(
                f"{qtest.name}: no legacy virtio-blk-pci in slot {slot} "
                f"(vendor/device {ids:#010x})")
        self.config_write(0x10, BAR0_PORT)
        self.config_write(0x04, PCI_COMMAND_IO | PCI_COMMAND_MASTER)
        self.outb(STATUS, 0)
        self.outb(STATUS, ACKNOWLEDGE | DRIVER)
        self.qt.value(f"inl {BAR0_PORT + HOST_FEATURES:#x}")
        self.qt.cmd(f"outl {BAR0_PORT + GUEST_FEATURES:#x} 0")
        self.qt.cmd(f"outw {BAR0_PORT + QUEUE_SEL:#x} 0")
        self.size = self.qt.value(f"inw {BAR0_PORT + QUEUE_NUM:#x}")
        if self.size < 3 * CHAINS or self.size % CHAINS:
            raise MeasurementError(
                f"{qtest.name}: queue 0 has {self.size} entries, need a "
                f"multiple of {CHAINS} of at least {3 * CHAINS}")
        self.avail = RING + 16 * self.size
        used = self.avail + 6 + 2 * self.size
        self.used = (used + VRING_ALIGN - 1) // VRING_ALIGN * VRING_ALIGN
        self._fill_ring()
        self.qt.cmd(f"outl {BAR0_PORT + QUEUE_PFN:#x} {RING >> 12:#x}")
        self.outb(STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK)
        self.submitted = 0

    def config_read(self, offset):
        self.qt.cmd(f"outl {PCI_ADDRESS:#x} {self.config | offset:#x}")
        return self.qt.value(f"inl {PCI_DATA:#x}")

    def config_write(self, offset, value):
        self.qt.cmd(f"outl {PCI_ADDRESS:#x} {self.config | offset:#x}")
        self.qt.cmd(f"outl {PCI_DATA:#x} {value:#x}")

    def outb(self, reg, value):
        self.qt.cmd(f"outb {BAR0_PORT + reg:#x} {value:#x}")

    def _fill_ring(self):
        self.qt.cmd(f"memset {RING:#x} {self.used + 6 + 8 * self.size - RING}"
                    " 0")
        descs = b""
        headers = b""
        for i in range(CHAINS):
            kind = VIRTIO_BLK_T_IN if i % 2 else VIRTIO_BLK_T_OUT
            headers += struct.pack("<IIQ", kind, 0, i * 2 * BLOCK // SECTOR)
            data_flags = VRING_DESC_F_NEXT | (
                VRING_DESC_F_WRITE if kind == VIRTIO_BLK_T_IN else 0)
            descs += struct.pack("<QIHH", HEADERS + 16 * i, 16,
                                 VRING_DESC_F_NEXT, 3 * i + 1)
            descs += struct.pack("<QIHH", DATA + BLOCK * i, BLOCK,
                                 data_flags, 3 * i + 2)
            descs += struct.pack("<QIHH", STATUSES + i, 1,
                                 VRING_DESC_F_WRITE, 0)
        self.qt.write(RING, descs)
        self.qt.write(HEADERS, headers)
        self.qt.write(self.avail + 4, struct.pack(
            f"<{self.size}H", *(3 * (p % CHAINS) for p in range(self.size))))

    def run(self, rounds, timeout=60):
        """Submit rounds x CHAINS requests, one notify per CHAINS, each
        round waiting for its completions in the used ring; then check
        that the used index is exact and every chain's last request
        completed with VIRTIO_BLK_S_OK. Returns the duration of each
        round (s), from its submission to its last completion seen."""
        self.qt.cmd(f"memset {STATUSES:#x} {CHAINS} 0xff")
        durations = []
        for _ in range(rounds):
            self.submitted += CHAINS
            idx = self.submitted & 0xffff
            start = time.perf_counter()
            self.qt.cmd(f"writew {self.avail + 2:#x} {idx:#x}")
            self.qt.cmd(f"outw {BAR0_PORT + QUEUE_NOTIFY:#x} 0")
            deadline = time.monotonic() + timeout
            while self.used_idx() != idx:
                if time.monotonic() >= deadline:
                    raise MeasurementError(
                        f"{self.qt.name}: used index {self.used_idx()} after "
                        f"{timeout} s, expected {idx}")
            durations.append(time.perf_counter() - start)
        statuses = self.qt.read(STATUSES, CHAINS)
        if statuses != bytes([VIRTIO_BLK_S_OK]) * CHAINS:
            raise MeasurementError(
                f"{self.qt.name}: request status bytes {statuses.hex()}")
        return durations

    def used_idx(self):
        return self.qt.value(f"readw {self.used + 2:#x}")
