"""Small helpers: logging with elapsed time, waiting on a condition."""

import shutil
import sys
import time

_T0 = time.monotonic()


class Failure(Exception):
    """A scenario's promise did not hold (or its set-up could not be made)."""


def elapsed():
    return time.monotonic() - _T0


def log(msg):
    sys.stderr.write("[%7.2fs] %s\n" % (elapsed(), msg))
    sys.stderr.flush()


def which(tool):
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")


def wait_for(cond, timeout_s, what, interval_s=0.1):
    """Polls cond() until it is true; raises Failure(what) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return
        if time.monotonic() >= deadline:
            raise Failure("timed out after %.0f s: %s" % (timeout_s, what))
        time.sleep(interval_s)


def poll_until(cond, timeout_s, interval_s=0.1):
    """Like wait_for, but returns False instead of raising."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def percentile(values, p):
    """The p-th percentile (0-100) of values by nearest rank; None if empty."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]
