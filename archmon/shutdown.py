"""Stopping within a bound: a deadline shared by the steps of a shutdown, and steps that cannot hang it.

``archmon run`` must stop within ``[service] stop_timeout_s`` even when the store is stalled or a device
does not answer (systemd kills it a little later). Each step gets what is left of the deadline; a step
that takes no timeout of its own runs in a helper thread that is abandoned (it is a daemon) when its time
is up, and the stop goes on.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Deadline", "StopReport", "run_bounded", "run_step", "wait_until"]

log = logging.getLogger(__name__)


class Deadline:
    """A point in time ``bound_s`` seconds from now (monotonic clock)."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self.started = time.monotonic()
        self.at = self.started + bound_s

    def left(self, *, reserve: float = 0.0, cap: float | None = None) -> float:
        """Seconds left, keeping ``reserve`` for later steps, at most ``cap``; never negative."""
        left = max(0.0, self.at - time.monotonic() - reserve)
        return left if cap is None else min(left, cap)

    def elapsed(self) -> float:
        """Seconds since the deadline was set."""
        return time.monotonic() - self.started


def run_bounded(step: Callable[[], object], timeout_s: float, what: str) -> bool:
    """Run ``step`` in a daemon thread and wait at most ``timeout_s``; False (logged) if it did not finish.

    An exception in ``step`` is logged and counts as finished: a shutdown goes on whatever one step does.
    """
    done = threading.Event()

    def run() -> None:
        try:
            step()
        except Exception:
            log.exception("stopping: %s failed", what)
        finally:
            done.set()

    threading.Thread(target=run, name=f"archmon-stop {what}", daemon=True).start()
    if done.wait(timeout_s):
        return True
    log.warning("stopping: %s did not finish within %.1f s; going on without it", what, timeout_s)
    return False


def run_step(step: Callable[[], object], timeout_s: float, what: str) -> bool:
    """:func:`run_bounded`, where a database error (a stalled or locked file) is one log line and the step
    counts as not finished; False if it did not finish well within ``timeout_s``."""
    failed: list[sqlite3.Error] = []

    def run() -> None:
        try:
            step()
        except sqlite3.Error as exc:
            failed.append(exc)
            log.error("stopping: %s could not finish: %s: %s", what, type(exc).__name__, exc)

    return run_bounded(run, timeout_s, what) and not failed


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes (for state without an event to wait on)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


@dataclass
class StopReport:
    """What a stop did, for the log, the exit code and tests.

    Attributes:
        bound_s: the configured bound (``[service] stop_timeout_s``).
        elapsed_s: how long the stop took.
        queued_at_start: records waiting for the store when the stop began.
        stored: readings committed during the stop (the final flush).
        not_committed: records still not committed when the bound ran out, or given up by the store
            writer (0 after a complete stop).
        unacknowledged: per MQTT source, messages left unacknowledged: the broker sends them again at the
            next start (those that arrived after the stop began, and any whose commit did not finish).
        lost_at_stop: per serial source, messages read from the device that the stop could not store
            (never taken by the store writer, or given up by it): those readings are lost.
        unfinished: steps given up at the bound.
        judged_urgent: smoke and leak readings judged at once because the alert feed could not get to them
            in time.
        unjudged: readings (and availability changes) stored but not judged by the alert rules in time: kept
            beside the database, judged at the next start.
        audit_pending: audit entries (reloads) the database did not take in time: written at the next start.
    """

    bound_s: float
    elapsed_s: float = 0.0
    queued_at_start: int = 0
    stored: int = 0
    not_committed: int = 0
    unacknowledged: dict[str, int] = field(default_factory=dict)
    lost_at_stop: dict[str, int] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    judged_urgent: int = 0
    unjudged: int = 0
    audit_pending: int = 0

    @property
    def complete(self) -> bool:
        """True if everything accepted was committed and judged, nothing read from a serial device was lost,
        every audit entry was written and every step finished."""
        return (not self.not_committed and not self.unfinished and not any(self.lost_at_stop.values())
                and not self.unjudged and not self.audit_pending)

    def summary(self) -> str:
        """One log line (two when something was given up)."""
        unacked = ", ".join(f"{source} {count}" for source, count in self.unacknowledged.items() if count)
        text = (f"archmon stopped in {self.elapsed_s:.1f} s (bound {self.bound_s:g} s): final flush stored "
                f"{self.stored} reading(s) ({self.queued_at_start} record(s) were queued)")
        if unacked:
            text += f"; MQTT messages left unacknowledged, the broker sends them again at the next start: {unacked}"
        if self.judged_urgent:
            text += f"; {self.judged_urgent} smoke/leak reading(s) judged ahead of the rest"
        if self.complete:
            return text + "; every accepted reading is stored"
        lost = ", ".join(f"{source} {count}" for source, count in self.lost_at_stop.items() if count)
        return (text + f"\nNOT COMPLETE at the bound: {self.not_committed} record(s) not committed"
                + (f", unfinished: {', '.join(self.unfinished)}" if self.unfinished else "")
                + (f"; messages read from serial devices and LOST (counted lost_at_stop): {lost}" if lost else "")
                + (f"; {self.unjudged} stored reading(s) not judged by the alert rules yet (kept, judged at the "
                   "next start)" if self.unjudged else "")
                + (f"; {self.audit_pending} audit entr(ies) not written yet (kept, written at the next start)"
                   if self.audit_pending else "")
                + ". MQTT messages not committed are redelivered by the broker")
