"""The forwarder: one thread that drains the outbox into InfluxDB, in order, acknowledging only what was accepted.

Each round takes the oldest rows (up to ``batch_size``) and sends them in one request:

- accepted (2xx): the rows are deleted (:meth:`Outbox.acknowledge`); if that delete fails (the file is
  locked), they are sent again later, which InfluxDB absorbs: a point with the same series and timestamp
  overwrites the one it already has, so a resend never makes a second point;
- a bad point (400, 422, 413): the request is split in halves, each sent on its own, down to the single line
  the server refuses, which is moved to the outbox's quarantine with the server's reason; the rest goes on;
- an outage (no connection, timeout, 429, 5xx) or a refusal no resend fixes by itself (401, 403, 404): the
  same rows are tried again after a backoff that doubles from ``retry_min_s`` to ``retry_max_s``; nothing is
  dropped, the outbox fills (its bound and the ``forwarding`` alert: :mod:`collector.forward.outbox`).

When the outbox has drained below its warning level, readings stored while it was full are queued again
from the raw table (:meth:`Outbox.refill`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from archmon.errors import ArchmonError
from archmon.timeutil import now_ms
from collector.forward.influx import RemoteError
from collector.forward.outbox import Outbox, OutboxRow, RawReadings

__all__ = ["ForwardHealth", "Forwarder", "LineSink"]

log = logging.getLogger(__name__)

_ERROR_RECORD_EVERY_S = 30.0
_POLL_S = 1.0
_LINGER_S = 0.05  # gather a few more commits into one request


class LineSink(Protocol):
    """Where lines go: ``InfluxClient`` (raises ``RemoteError``)."""

    def write(self, lines: Sequence[str]) -> None:
        """Send ``lines`` in one request."""
        ...


@dataclass(frozen=True, slots=True)
class ForwardHealth:
    """What the ``forwarding`` alert rule and ``archmon status`` read about one target.

    Attributes:
        target: its name (``influxdb``).
        rows, bytes: queued now; oldest_age_ms: age of the oldest queued row (0: empty).
        backlog: at or over a warning level (rows, bytes or age); full: readings were stored at the bound and
            wait to be queued again.
        down: the last request failed; detail: the error, or what the backlog is.
    """

    target: str
    rows: int
    bytes: int
    oldest_age_ms: int
    backlog: bool
    full: bool
    down: bool
    detail: str


class Forwarder:
    """Drains one outbox into one remote (see the module docstring).

    Args:
        outbox: the opened outbox.
        sink: factory of the remote client (called on the forwarder's thread; a ``ConfigError`` from it, a
            secret that cannot be read, keeps the forwarder down and retrying with backoff).
        raw: the raw table's readings by time (``SqliteStore.readings``) to refill overflow ranges from.
        batch_size: lines per request at most.
        retry_min_s, retry_max_s: backoff bounds.
        warn_age_ms: the oldest queued row's age from which the backlog is reported.
        target: the target's name.
    """

    def __init__(self, outbox: Outbox, sink: Callable[[], LineSink], *, raw: RawReadings | None = None,
                 batch_size: int = 5000, retry_min_s: float = 1.0, retry_max_s: float = 60.0,
                 warn_age_ms: int = 3_600_000, target: str = "influxdb") -> None:
        self.outbox = outbox
        self.target = target
        self._make_sink = sink
        self._sink: LineSink | None = None
        self._raw = raw
        self._batch = batch_size
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._warn_age_ms = warn_age_ms
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._forwarded = 0
        self._requests = 0
        self._failures = 0
        self._quarantined = 0
        self._refilled = 0
        self._down_since: float | None = None
        self._last_error = ""
        self._error_recorded_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"archmon-forward-{self.target}", daemon=True)
            self._thread.start()

    def wake(self, *_: object) -> None:
        """Something was queued: forward soon (cheap; a store writer listener)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop within ``timeout``; a request under way is abandoned (its rows stay queued and are sent again
        at the next start). Returns True if the thread ended."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, timeout))
            if thread.is_alive():
                log.warning("forward %s: a request was still under way at the stop; its rows stay queued",
                            self.target)
                return False
        close = getattr(self._sink, "close", None)
        if close is not None:
            close()
        return True

    # -- numbers -----------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters of this run (``forwarded``, ``requests``, ``failures``, ``quarantined``, ``refilled``)
        and states (``up``, ``outbox_rows``, ``outbox_bytes``, ``oldest_age_s``, ``overflow_pending``)."""
        try:
            totals = self.outbox.totals()
        except sqlite3.Error:
            totals = None
        with self._lock:
            out = {"forwarded": self._forwarded, "requests": self._requests, "failures": self._failures,
                   "quarantined": self._quarantined, "refilled": self._refilled,
                   "up": int(self._down_since is None)}
        if totals is not None:
            age = 0 if totals.oldest_queued_ms is None else max(0, now_ms() - totals.oldest_queued_ms)
            out.update(outbox_rows=totals.rows, outbox_bytes=totals.bytes, oldest_age_s=age // 1000,
                       overflow_pending=totals.overflow_pending)
        return out

    def health(self) -> ForwardHealth:
        """The target's state for the alert rule (see :class:`ForwardHealth`)."""
        totals = self.outbox.totals()
        limits = self.outbox.limits
        age = 0 if totals.oldest_queued_ms is None else max(0, now_ms() - totals.oldest_queued_ms)
        full = totals.overflow_pending > 0
        backlog = (full or totals.rows >= limits.warn_rows or totals.bytes >= limits.warn_bytes
                   or age >= self._warn_age_ms)
        with self._lock:
            down, error = self._down_since is not None, self._last_error
        what = (f"{totals.rows} queued, oldest {age // 1000} s" if not full else
                f"outbox full: {totals.overflow_pending} reading(s) stored locally only, queued again once it drains")
        detail = f"{what}; {error}" if down and error else what
        return ForwardHealth(self.target, totals.rows, totals.bytes, age, backlog, full, down, detail)

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._retry_min_s
        while not self._stop.is_set():
            try:
                busy = self._round()
            except RemoteError as exc:
                self._failed(str(exc))
                self._stop.wait(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            except sqlite3.Error as exc:  # a locked or stalled file: the rows stay; try again
                self._failed(f"local database: {type(exc).__name__}: {exc}", remote=False)
                self._stop.wait(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            except ArchmonError as exc:  # the client cannot be built (a secret that cannot be read)
                self._failed(str(exc))
                self._stop.wait(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            except Exception as exc:  # a bug must not end forwarding for good
                log.exception("forward %s: unexpected error; trying again", self.target)
                self._failed(f"internal error: {type(exc).__name__}: {exc}")
                self._stop.wait(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            delay = self._retry_min_s
            if not busy:
                self._wake.wait(_POLL_S)
                self._wake.clear()
                self._stop.wait(_LINGER_S)

    def _round(self) -> bool:
        """One request's worth; True if there was anything to do."""
        if self._sink is None:
            self._sink = self._make_sink()
        rows = self.outbox.peek(self._batch)
        if not rows:
            return self._refill()
        self._deliver(self._sink, rows)
        self._recovered()
        if len(rows) < self._batch:
            self._refill()
        return True

    def _refill(self) -> bool:
        if self._raw is None:
            return False
        totals = self.outbox.totals()
        if totals.overflow_pending <= 0 and totals.overflow_lo_ts is None:
            return False
        if totals.rows >= self.outbox.limits.warn_rows:
            return False
        queued = self.outbox.refill(self._raw, chunk=self._batch)
        with self._lock:
            self._refilled += queued
        return True

    def _deliver(self, sink: LineSink, rows: Sequence[OutboxRow]) -> None:
        """Send ``rows``; split around points the server refuses (see the module docstring)."""
        with self._lock:
            self._requests += 1
        try:
            sink.write([row.line for row in rows])
        except RemoteError as exc:
            if not exc.bad_point:
                raise
            if len(rows) == 1:
                self.outbox.quarantine(rows[0], exc.status, exc.reason)
                with self._lock:
                    self._quarantined += 1
                log.warning("forward %s: the server refused a point for good (%s); kept in forward_quarantine: "
                            "%s", self.target, exc, rows[0].line[:200])
                return
            middle = len(rows) // 2
            self._deliver(sink, rows[:middle])
            self._deliver(sink, rows[middle:])
            return
        count = self.outbox.acknowledge(rows)
        with self._lock:
            self._forwarded += count

    def _failed(self, text: str, *, remote: bool = True) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            first = self._down_since is None
            if first:
                self._down_since = now
            self._last_error = text
        if first:
            log.warning("forward %s: %s; readings stay in the outbox and are sent again with backoff",
                        self.target, text)
        else:
            log.debug("forward %s: still failing: %s", self.target, text)
        if remote and (first or now - self._error_recorded_at >= _ERROR_RECORD_EVERY_S):
            self._error_recorded_at = now
            self.outbox.record_error(text)

    def _recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("forward %s: the remote accepts readings again after %.1f s", self.target,
                        time.monotonic() - since)
