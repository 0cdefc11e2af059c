"""The error policies the tests use: libvirt's <driver> attributes, and
the properties QEMU's disk device must get for them.

What QEMU must get follows the interface of the QEMU series (retry is a
modifier of the existing werror/rerror policies: werror-retry and
rerror-retry, and one retry-interval and retry-timeout for both) and is
data in this one place, the two tables below: when that interface
changes, they do.
"""

import dataclasses
import json
import shlex

from . import domxml

# libvirt's error_policy / rerror_policy value -> QEMU's werror / rerror
# value, and whether the -retry modifier is on.
POLICY_VALUES = {
    "report": ("report", False),
    "stop": ("stop", False),
    "ignore": ("ignore", False),
    "retry": ("report", True),
}
# libvirt's <driver> attributes of the retry policy -> QEMU's properties.
RETRY_ATTRIBUTES = {"retry_interval": "retry-interval",
                    "retry_timeout": "retry-timeout"}

# The properties of a disk device that make up its error handling.
QEMU_ERROR_PROPERTIES = ("werror", "rerror", "werror-retry", "rerror-retry",
                         "retry-interval", "retry-timeout", "stop-probe")


@dataclasses.dataclass(frozen=True)
class Policy:
    """Error handling as <driver> attributes in libvirt's domain XML."""
    driver: dict

    @property
    def qemu(self):
        """The error properties QEMU's -device must have for it (those
        missing must be absent). As in libvirt, reads follow
        error_policy when rerror_policy is not given."""
        write = self.driver["error_policy"]
        read = self.driver.get("rerror_policy", write)
        props = {}
        # 'stop' with a non-zero retry_timeout is retry, then pause
        # (libvirt refuses 'stop' with retry_interval alone or a timeout
        # of 0, which could never pause)
        stop_retries = int(self.driver.get("retry_timeout", 0)) > 0
        for name, value in (("werror", write), ("rerror", read)):
            props[name], retried = POLICY_VALUES[value]
            if retried or (value == "stop" and stop_retries):
                props[name + "-retry"] = True
        for attr, prop in RETRY_ATTRIBUTES.items():
            if attr in self.driver:
                props[prop] = int(self.driver[attr])
        # auto_resume: QEMU probes the storage while the domain is paused
        if self.driver.get("auto_resume") == "on":
            props["stop-probe"] = True
        return props

    def auto_resume(self):
        """The same policy, resuming the domain once the storage of the
        disk whose error paused it works again."""
        return Policy(dict(self.driver, auto_resume="on"))


def retry(interval, timeout=None, write="retry", read="retry"):
    """error_policy=write, rerror_policy=read ('retry' by default),
    retry_interval and, unless None, retry_timeout (ms)."""
    driver = {"error_policy": write, "rerror_policy": read,
              "retry_interval": str(interval)}
    if timeout is not None:
        driver["retry_timeout"] = str(timeout)
    return Policy(driver)


def retry_then_pause(timeout, interval=None):
    """error_policy='stop' with retry_timeout (ms): retry, then pause
    the domain; retry_interval too unless None."""
    driver = {"error_policy": "stop", "retry_timeout": str(timeout)}
    if interval is not None:
        driver["retry_interval"] = str(interval)
    return Policy(driver)


def stop_then_resume(interval):
    """error_policy='stop' without retries and auto_resume='on', QEMU
    probing the storage every interval ms (retry_interval) while the
    domain is paused."""
    return Policy({"error_policy": "stop", "retry_interval": str(interval),
                   "auto_resume": "on"})


REPORT = Policy({"error_policy": "report"})
STOP = Policy({"error_policy": "stop"})
STOP_WRITES = Policy({"error_policy": "stop", "rerror_policy": "report"})
# The product guide's example (seed 002).
SEED = retry(2000, 10000)
# Retry for 30 s, then pause the domain.
RETRY_THEN_PAUSE = retry_then_pause(30000)
# The product guide's example with error_policy='stop' (retry for 10 s
# every 2 s, then pause), resuming by itself once the storage is back.
SEED_AUTO_RESUME = retry_then_pause(
    SEED.driver["retry_timeout"], SEED.driver["retry_interval"]).auto_resume()


def seed_devices(bus="virtio", source="/dev/dih-e2e-storage", policy=SEED):
    """The product guide's disk (seed 002): a block disk, cache='none'
    io='native', the SEED policy (or policy), as vdb on virtio or sdb on a
    virtio-scsi controller (bus='scsi'). Returns the devices and the
    disk's target."""
    target = "sdb" if bus == "scsi" else "vdb"
    address = None
    devices = []
    if bus == "scsi":
        address = domxml.SCSI_DRIVE
        devices.append(domxml.controller("scsi", 0, "virtio-scsi"))
    devices.append(domxml.disk("block", {"dev": source}, target, bus,
                               dict(policy.driver, io="native"),
                               address=address))
    return devices, target


def device_properties(argv, driver):
    """The JSON -device arguments of the given driver in a QEMU command
    line (virConnect.domainXMLToNative's qemu-argv)."""
    words = shlex.split(argv)
    found = []
    for option, value in zip(words, words[1:]):
        if option == "-device" and value.startswith("{"):
            props = json.loads(value)
            if props.get("driver") == driver:
                found.append(props)
    return found


def error_properties(props):
    """The error handling properties of a -device's properties."""
    return {k: props[k] for k in QEMU_ERROR_PROPERTIES if k in props}
