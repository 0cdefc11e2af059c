"""python3-libvirt on the patched libvirt.

Debian's python3-libvirt binds whichever libvirt.so.0 the dynamic loader
finds; in the environment of the build's 'run' script
(environment.use_libvirt_build) that is the patched one, which
require_patched_library() checks. The default event loop runs in a thread
of its own, so that event callbacks (events.EventWatcher) arrive while a
test waits.
"""

import json
import threading

import libvirt
import libvirt_qemu

from . import environment

# The action the series adds to virDomainEventIOErrorAction
# (VIR_DOMAIN_EVENT_IO_ERROR_RETRY in include/libvirt/libvirt-domain.h of
# the patched tree); Debian's python3-libvirt predates it.
IO_ERROR_RETRY = getattr(libvirt, "VIR_DOMAIN_EVENT_IO_ERROR_RETRY", 3)

# The disk error code the series adds to virDomainDiskErrorCode
# (VIR_DOMAIN_DISK_ERROR_RETRYING): the disk's failed requests are held
# and retried.
DISK_ERROR_RETRYING = getattr(libvirt, "VIR_DOMAIN_DISK_ERROR_RETRYING", 3)

# The reason and the lifecycle event detail the auto-resume series adds
# (VIR_DOMAIN_RUNNING_STORAGE_RECOVERED, VIR_DOMAIN_EVENT_RESUMED_STORAGE_
# RECOVERED): the domain resumed once the storage of the disks whose
# errors paused it worked again.
RUNNING_STORAGE_RECOVERED = getattr(libvirt,
                                    "VIR_DOMAIN_RUNNING_STORAGE_RECOVERED", 12)
RESUMED_STORAGE_RECOVERED = getattr(
    libvirt, "VIR_DOMAIN_EVENT_RESUMED_STORAGE_RECOVERED", 5)

IO_ERROR_ACTIONS = {
    libvirt.VIR_DOMAIN_EVENT_IO_ERROR_NONE: "none",
    libvirt.VIR_DOMAIN_EVENT_IO_ERROR_PAUSE: "pause",
    libvirt.VIR_DOMAIN_EVENT_IO_ERROR_REPORT: "report",
    IO_ERROR_RETRY: "retry",
}

_event_loop_lock = threading.Lock()
_event_loop = None


def loaded_library():
    """The path of the libvirt.so.0 this process has loaded."""
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split(None, 5)[-1].strip()
            if path.endswith("/libvirt.so.0") or "/libvirt.so.0." in path:
                return path
    return None


def require_patched_library():
    """Raise unless python3-libvirt runs on the patched build."""
    path = loaded_library()
    if not path or not path.startswith(environment.LIBVIRT_BUILD + "/"):
        raise RuntimeError(
            f"python3-libvirt uses {path}, not the patched libvirt in "
            f"{environment.LIBVIRT_BUILD}: run it through "
            f"{environment.LIBVIRT_RUN} (environment.use_libvirt_build)")


def _run_event_loop():
    while True:
        libvirt.virEventRunDefaultImpl()


def start_event_loop():
    """Register libvirt's default event loop and run it in a daemon
    thread, once per process (before the first connection)."""
    global _event_loop
    with _event_loop_lock:
        if _event_loop is None:
            libvirt.virEventRegisterDefaultImpl()
            # Errors are raised as libvirtError; do not print them too.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _event_loop = threading.Thread(target=_run_event_loop,
                                           name="libvirt-events", daemon=True)
            _event_loop.start()


def connect(uri):
    """A connection to uri, with the event loop running."""
    require_patched_library()
    start_event_loop()
    return libvirt.open(uri)


def qemu_monitor(dom, command, **arguments):
    """Run a QMP command in the domain's QEMU; return its 'return'."""
    reply = libvirt_qemu.qemuMonitorCommand(
        dom, json.dumps({"execute": command, "arguments": arguments}), 0)
    return json.loads(reply)["return"]


def is_running(dom):
    """Whether the domain is running (for wait_until)."""
    return dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
