#!/usr/bin/env python3
"""Does a libvirt build refuse each domain XML of the series' tests, or turn
it into a command line that QEMU accepts?

For every input tests/qemuxmlconfdata/disk-error-policy-retry*.xml and
disk-error-policy-auto-resume*.xml of INPUTS_TREE (the series' tip: the
cases exist there, whatever the position of the build under test), and
for each of two QEMU binaries (the patched one the series targets and a
stock one without retries), the build's embedded QEMU driver
(qemu:///embed, no daemon) runs domxml-to-native with the input's
emulator replaced by that binary. The result must be

- a refusal (its message is printed), or
- a command line whose disk devices that binary realizes: each disk
  -device is started in it (TCG, -S, then 'quit' over QMP) on a null-co
  node with the read-only and cache options of the node libvirt emitted,
  with its SCSI controller when it has one (scsi-block, which needs a host
  SCSI device, is realized as scsi-hd: same retry properties and checks).

and, once the build's schema knows retry_timeout, no disk that asks for
retries may lose them: the command line has as many devices with
werror-retry or rerror-retry as the input has disks asking for retries (a
libvirt that cannot give them must refuse); likewise, once the schema
knows auto_resume, each disk with auto_resume='on' must have a device with
stop-probe.

Realizing a device is cached in CACHE (keyed by the binary's identity and
the arguments), so a walk over a series starts each distinct device once.
Exit status 0 when every input passes, 1 otherwise.

Usage: libvirt-argv-check.py BUILD_TREE INPUTS_TREE PATCHED_QEMU STOCK_QEMU
           ROOT CACHE
Run it through BUILD's 'run' script (the build's libvirt.so and driver
modules) in a mount namespace without /dev/kvm (see libvirt-argv-check.sh).
"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

import libvirt

DISK_PROPS = ("werror", "rerror", "werror-retry", "rerror-retry",
              "retry-interval", "retry-timeout", "stop-probe")
RETRY_ATTRS = ("retry_interval", "retry_timeout")


def parse_argv(text):
    """The command line as (option, value) pairs, the environment dropped."""
    words = shlex.split(text)
    while words and "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)
    pairs, i = [], 1
    while i < len(words):
        w = words[i]
        if (w.startswith("-") and i + 1 < len(words)
                and not words[i + 1].startswith("-")):
            pairs.append((w, words[i + 1]))
            i += 2
        else:
            pairs.append((w, None))
            i += 1
    return pairs


def auto_resume_disks(xml):
    """How many disks of the domain XML ask to resume once their storage
    recovered."""
    return sum(1 for drv in ET.fromstring(xml).iter("driver")
               if drv.get("auto_resume") == "on")


def retry_disks(xml):
    """How many disks of the domain XML ask for retries: a retry policy or
    attribute, except a retry_interval alone with auto_resume='on', which
    sets the interval of the probes of a disk that does not retry."""
    n = 0
    for drv in ET.fromstring(xml).iter("driver"):
        attrs = [a for a in RETRY_ATTRS if drv.get(a) is not None]
        if drv.get("auto_resume") == "on" and attrs == ["retry_interval"]:
            attrs = []
        if "retry" in (drv.get("error_policy"), drv.get("rerror_policy")) or \
                attrs:
            n += 1
    return n


class Checker:
    def __init__(self, tree, patched, stock, root, cache):
        self.tree = tree
        self.qemus = (("patched", patched), ("stock", stock))
        self.cache_file = cache
        try:
            with open(cache) as f:
                self.cache = json.load(f)
        except (OSError, ValueError):
            self.cache = {}
        libvirt.virEventRegisterDefaultImpl()
        libvirt.registerErrorHandler(lambda *args: None, None)
        self.conn = libvirt.open("qemu:///embed?root=" + root)
        self.failures = []
        schema = os.path.join(tree, "src/conf/schemas/domaincommon.rng")
        with open(schema) as f:
            text = f.read()
        self.knows_retry = "retry_timeout" in text
        self.knows_auto_resume = "auto_resume" in text

    def fail(self, msg):
        self.failures.append("FAIL: " + msg)
        print(self.failures[-1])

    def realize(self, qemu, args):
        """(accepted, QEMU's messages) for starting QEMU with ARGS."""
        st = os.stat(qemu)
        key = json.dumps([qemu, st.st_size, st.st_mtime_ns, args])
        if key not in self.cache:
            cmd = [qemu, "-nodefaults", "-display", "none", "-S",
                   "-qmp", "stdio", "-accel", "tcg"] + args
            p = subprocess.run(
                cmd, capture_output=True, text=True, timeout=120,
                input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n')
            ok = p.returncode == 0 and '"return"' in p.stdout
            self.cache[key] = [ok, p.stderr.strip()]
        return self.cache[key]

    def devices(self, pairs):
        """Each disk -device with error or retry properties, as the
        arguments that realize it alone."""
        blockdevs, devs = {}, {}
        machine = next((v for o, v in pairs if o == "-machine"), "pc")
        machine = machine.split(",")[0]
        for o, v in pairs:
            if o == "-blockdev":
                b = json.loads(v)
                blockdevs[b["node-name"]] = b
            elif o == "-device" and v.startswith("{"):
                d = json.loads(v)
                devs[d.get("id")] = d
        for d in devs.values():
            if "drive" not in d or not any(k in d for k in DISK_PROPS):
                continue
            dev, note = dict(d), ""
            if dev["driver"] == "scsi-block":
                dev["driver"], note = "scsi-hd", " (scsi-block as scsi-hd)"
            node = {"driver": "null-co", "node-name": dev["drive"],
                    "size": 1 << 30}
            b = blockdevs.get(dev["drive"], {})
            proto = blockdevs.get(b["file"]) if isinstance(b.get("file"), str) else {}
            for src in (proto, b):
                for k in ("read-only", "cache"):
                    if k in src:
                        node[k] = src[k]
            args = ["-machine", machine, "-blockdev", json.dumps(node)]
            bus = dev.get("bus", "").split(".")[0]
            if dev["driver"].startswith("scsi-") and bus in devs:
                cont = {k: v for k, v in devs[bus].items()
                        if k not in ("bus", "addr")}
                args += ["-device", json.dumps(cont)]
            else:
                dev.pop("bus", None)
                if dev["driver"] == "usb-storage":
                    args += ["-device", "qemu-xhci"]
                    dev.pop("port", None)
            for k in ("addr", "bootindex"):
                dev.pop(k, None)
            args += ["-device", json.dumps(dev)]
            yield d, args, note

    def check(self, path):
        name = os.path.basename(path)[:-4]
        with open(path) as f:
            text = f.read()
        if "<emulator>" not in text or "arch='s390x'" in text:
            print(f"not run: {name}: not an x86_64 domain with an emulator")
            return
        wanted = retry_disks(text)
        wanted_probe = auto_resume_disks(text)
        for kind, qemu in self.qemus:
            xml = re.sub(r"<emulator>[^<]*</emulator>",
                         f"<emulator>{qemu}</emulator>", text)
            try:
                argv = self.conn.domainXMLToNative("qemu-argv", xml, 0)
            except libvirt.libvirtError as e:
                print(f"refused by libvirt ({kind} QEMU): {name}: {e}")
                continue
            given = given_probe = 0
            for d, args, note in self.devices(parse_argv(argv)):
                if d.get("werror-retry") or d.get("rerror-retry"):
                    given += 1
                if d.get("stop-probe"):
                    given_probe += 1
                props = {k: d[k] for k in DISK_PROPS if k in d}
                what = (f"{name} {d.get('id')} "
                        f"{json.dumps(props, separators=(',', ':'))}{note}")
                ok, err = self.realize(qemu, args)
                if ok:
                    print(f"accepted by {kind} QEMU: {what}")
                else:
                    self.fail(f"{kind} QEMU refuses what libvirt emits: "
                              f"{what}: {err.splitlines()[-1] if err else ''}")
            if self.knows_retry and given < wanted:
                self.fail(f"{name} ({kind} QEMU): {wanted} disks ask for "
                          f"retries, the command line retries on {given}")
            if self.knows_auto_resume and given_probe < wanted_probe:
                self.fail(f"{name} ({kind} QEMU): {wanted_probe} disks ask "
                          f"for auto_resume, the command line probes on "
                          f"{given_probe}")

    def save(self):
        tmp = self.cache_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.cache, f)
        os.replace(tmp, self.cache_file)


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__.split("Usage: ")[1].split("\n\n")[0])
    build_tree, inputs_tree, patched, stock, root, cache = sys.argv[1:]
    inputs = sorted(
        p for pattern in ("disk-error-policy-retry*.xml",
                          "disk-error-policy-auto-resume*.xml")
        for p in glob.glob(os.path.join(
            inputs_tree, "tests/qemuxmlconfdata", pattern))
        # the outputs of qemuxmlconftest (NAME.ARCH-VERSION.xml)
        if not re.search(r"\.[a-z0-9_]+-(latest|[0-9.]+)[^/]*\.xml$", p))
    if not inputs:
        sys.exit(f"no disk-error-policy-retry*.xml in {inputs_tree}")
    for q in (patched, stock):
        if not os.access(q, os.X_OK):
            sys.exit(f"no QEMU binary {q}")
    c = Checker(build_tree, patched, stock, root, cache)
    for p in inputs:
        c.check(p)
    c.save()
    # The failures again, last, where a caller showing the tail sees them.
    if c.failures:
        print("\n".join(c.failures[-30:]))
    print(f"argv check: {len(inputs)} inputs, {len(c.failures)} failures"
          + ("" if c.knows_retry else
             " (this libvirt does not know retry_timeout yet)"))
    sys.exit(1 if c.failures else 0)


if __name__ == "__main__":
    main()
