"""libvirt's domain events, as a management application receives them.

EventWatcher registers for VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON on a
host's connection, for every domain (also those that arrive later, by
migration), LifecycleWatcher for VIR_DOMAIN_EVENT_ID_LIFECYCLE of one
domain; each keeps every event with the host's monotonic time at which
it arrived.
"""

import dataclasses
import threading
import time

import libvirt

from .libvirt_api import IO_ERROR_ACTIONS
from .wait import wait_until


@dataclasses.dataclass(frozen=True)
class IOErrorEvent:
    time: float
    domain: str
    src_path: str
    dev_alias: str
    action: str
    reason: str


@dataclasses.dataclass(frozen=True)
class LifecycleEvent:
    time: float
    domain: str
    event: int
    detail: int


class _Watcher:
    """The events of one kind (event_id, delivered to callback) of
    host's domains (of the domain named domain only, if given), from the
    moment it is created until close(); on_event(event), if given, is
    called for each as it arrives (in the event loop's thread)."""

    def __init__(self, host, event_id, callback, domain=None, on_event=None):
        self.host = host
        self.domain = domain
        self.on_event = on_event
        self._events = []
        self._lock = threading.Lock()
        self._conn = host.conn
        self._id = self._conn.domainEventRegisterAny(None, event_id, callback,
                                                     None)

    def _add(self, dom, event):
        if self.domain is not None and dom.name() != self.domain:
            return
        with self._lock:
            self._events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def events(self, since=0):
        """The events from position since on."""
        with self._lock:
            return self._events[since:]

    def __len__(self):
        with self._lock:
            return len(self._events)

    def _wait(self, match, since, timeout, what):
        def found():
            return next((e for e in self.events(since) if match(e)), None)
        return wait_until(found, timeout, f"{what} on {self.host.name}",
                          state=lambda: f"events: {self.events(since)}")

    def close(self):
        """Stop watching (harmless when the host's daemon is gone)."""
        if self._id is not None:
            try:
                self._conn.domainEventDeregisterAny(self._id)
            except libvirt.libvirtError:
                pass
            self._id = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class EventWatcher(_Watcher):
    """The io-error events (IOErrorEvent) of host's domains; see
    _Watcher."""

    def __init__(self, host, domain=None, on_event=None):
        super().__init__(host, libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON,
                         self._on_io_error, domain, on_event)

    def _on_io_error(self, _conn, dom, src_path, dev_alias, action, reason,
                     _opaque):
        self._add(dom, IOErrorEvent(
            time.monotonic(), dom.name(), src_path, dev_alias,
            IO_ERROR_ACTIONS.get(action, f"unknown ({action})"), reason))

    def actions(self, since=0):
        return [e.action for e in self.events(since)]

    def wait_for(self, action, since=0, timeout=60):
        """Wait for an event with action from position since on; return
        it."""
        return self._wait(lambda e: e.action == action, since, timeout,
                          f"an io-error event with action {action!r}")


class LifecycleWatcher(_Watcher):
    """The lifecycle events (LifecycleEvent: suspended, resumed, ...) of
    host's domain named domain; see _Watcher."""

    def __init__(self, host, domain, on_event=None):
        super().__init__(host, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                         self._on_lifecycle, domain, on_event)

    def _on_lifecycle(self, _conn, dom, event, detail, _opaque):
        self._add(dom, LifecycleEvent(time.monotonic(), dom.name(), event,
                                      detail))

    def wait_for(self, event, detail, since=0, timeout=60):
        """Wait for an event (and detail) from position since on; return
        it."""
        return self._wait(lambda e: (e.event, e.detail) == (event, detail),
                          since, timeout,
                          f"lifecycle event {event}/{detail} of {self.domain}")
