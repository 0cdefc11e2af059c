"""Waiting for a state, and checking that one lasts.

A test waits for the state it checks, however long the machine takes to
get there (up to a generous bound), instead of sleeping for a time that
works on a fast machine. When the state does not come, the failure says
what was awaited and what the state was instead; when it can no longer
come (a failure predicate), the wait fails at once, saying why.
"""

import time


class WaitTimeout(AssertionError):
    """An awaited state did not come in time (a test failure)."""


class WaitFailed(AssertionError):
    """An awaited state cannot come any more (a test failure): what
    waits for it is broken (the guest's probe reported an error, its
    domain is gone)."""


def wait_until(condition, timeout, what, interval=0.2, state=None,
               failed=None):
    """Call condition() until it returns a true value and return that.

    what names the awaited state; state, if given, is called on timeout
    and its text (e.g. the last lines of the guest's console) is part of
    the failure message. failed, if given, is called whenever condition()
    is false and returns why the state can no longer come (or None): the
    wait then fails at once instead of running out its time, as QEMU's
    wait_for_console_pattern does on a failure message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        reason = failed() if failed is not None else None
        if reason:
            # What failed may have come just after the state (a guest
            # powering off after its last line): look once more.
            value = condition()
            if value:
                return value
            message = f"gave up waiting for {what}: {reason}"
            if state is not None:
                message += f"; instead:\n{state()}"
            raise WaitFailed(message)
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g} s waiting for {what}"
            if state is not None:
                message += f"; instead:\n{state()}"
            raise WaitTimeout(message)
        time.sleep(interval)


def assert_stays(condition, duration, what, interval=0.2, state=None):
    """Check that condition() stays true for duration seconds."""
    deadline = time.monotonic() + duration
    while True:
        if not condition():
            message = f"{what}: no longer true after " \
                      f"{duration - (deadline - time.monotonic()):.1f} s"
            if state is not None:
                message += f"; instead:\n{state()}"
            raise AssertionError(message)
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
