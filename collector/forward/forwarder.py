"""The forwarder: one thread that drains the outbox into InfluxDB, in order, acknowledging only what was accepted.

Each round takes the oldest rows (up to ``batch_size``) and sends them in one request:

- accepted (2xx): the rows are deleted (:meth:`Outbox.acknowledge`); if that delete fails (the file is
  locked), they are sent again later, which InfluxDB absorbs: a point with the same series and timestamp
  overwrites the one it already has, so a resend never makes a second point;
- a bad point (the server's own error names a point problem, or 413, too large: ``RemoteError.bad_point``,
  ``too_large``): the request is split in halves, each sent on its own, down to the single lines the server
  refuses, which are moved to the outbox's quarantine with the server's reason; the rest goes on;
- an outage (no connection, timeout, 429, 5xx) or a refusal no resend fixes by itself (401, 403, 404, a 400
  that is not the server's point error): the same rows are tried again after a backoff that doubles from
  ``retry_min_s`` to ``retry_max_s``; nothing is dropped, the outbox fills (its bound and the ``forwarding``
  alert: :mod:`collector.forward.outbox`).

Refusing points for good is guarded, since whatever answers may not be the database (a proxy, a firewall
answering every request with the same error): when most of a request is refused once the split has reached
pieces of a quarter of it (or single lines), or when :data:`REFUSED_ROUNDS_AS_OUTAGE` requests in a row were
refused whole with nothing accepted in between, nothing is refused and it counts as an outage. Points
refused in the last hour keep the ``forwarding`` alert raised (``ForwardHealth.refused``); ``archmon forward
requeue`` queues them again.

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
from collector.forward.outbox import Outbox, OutboxRow, RawReadings
from collector.forward.remote import RemoteError

__all__ = ["ForwardHealth", "Forwarder", "LineSink"]

log = logging.getLogger(__name__)

REFUSED_ROUNDS_AS_OUTAGE = 3
"""Requests in a row refused whole (not one line accepted) after which a refusal counts as an outage."""
REFUSED_RECENT_MS = 3_600_000
"""Points refused within this long keep the ``forwarding`` alert raised."""
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
        refused: points the remote refused for good in the last hour (kept in ``forward_quarantine``).
    """

    target: str
    rows: int
    bytes: int
    oldest_age_ms: int
    backlog: bool
    full: bool
    down: bool
    detail: str
    refused: int = 0


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
        self._refused_rounds = 0  # requests in a row refused whole
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
        refused = self.outbox.refused_since(now_ms() - REFUSED_RECENT_MS)
        what = (f"{totals.rows} queued, oldest {age // 1000} s" if not full else
                f"outbox full: {totals.overflow_pending} reading(s) stored locally only, queued again once it drains")
        if refused:
            what += (f"; {refused} point(s) refused by the server in the last hour (forward_quarantine; "
                     "archmon forward requeue sends them again)")
        detail = f"{what}; {error}" if down and error else what
        return ForwardHealth(self.target, totals.rows, totals.bytes, age, backlog, full, down, detail, refused)

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
        if self._deliver(self._sink, rows):
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

    def _deliver(self, sink: LineSink, rows: Sequence[OutboxRow]) -> int:
        """Send ``rows``; split around points the server refuses (see the module docstring).

        Returns:
            Lines accepted (0: all of them refused and quarantined).

        Raises:
            RemoteError: not delivered; nothing of what was not accepted is refused (an outage).
        """
        refused: list[tuple[OutboxRow, RemoteError]] = []
        accepted = 0
        last: RemoteError | None = None
        pieces = [rows]
        quarter = max(1, len(rows) // 4)
        while pieces:
            split: list[Sequence[OutboxRow]] = []
            refused_lines = len(refused)
            small = max(map(len, pieces)) <= quarter
            for piece in pieces:
                try:
                    self._send(sink, piece)
                except RemoteError as exc:
                    if not (exc.bad_point or exc.too_large):
                        raise
                    last = exc
                    if len(piece) > 1:
                        middle = len(piece) // 2
                        split += [piece[:middle], piece[middle:]]
                    elif exc.bad_point:
                        refused.append((piece[0], exc))
                    else:
                        raise RemoteError(exc.status, f"a single reading is refused as too large: {exc.reason} "
                                                      "(a limit of something between, not a point problem)") from None
                    if exc.bad_point:  # a piece too large refuses no point
                        refused_lines += len(piece)
                    continue
                count = self.outbox.acknowledge(piece)
                accepted += count
                with self._lock:
                    self._forwarded += count
            if len(rows) > 1 and small and 2 * refused_lines > len(rows):
                self._refused_as_outage(last, f"the server refuses most of a request ({refused_lines} of "
                                              f"{len(rows)} lines)")
            pieces = split
        if refused:
            self._refused_rounds = 0 if accepted else self._refused_rounds + 1
            if not accepted and self._refused_rounds > REFUSED_ROUNDS_AS_OUTAGE:
                self._refused_as_outage(last, f"{self._refused_rounds} requests in a row refused whole")
            for row, exc in refused:
                self.outbox.quarantine(row, exc.status, exc.reason)
                log.warning("forward %s: the server refused a point for good (%s); kept in forward_quarantine: "
                            "%s", self.target, exc, row.line[:200])
            with self._lock:
                self._quarantined += len(refused)
        else:
            self._refused_rounds = 0
        return accepted

    def _send(self, sink: LineSink, rows: Sequence[OutboxRow]) -> None:
        with self._lock:
            self._requests += 1
        sink.write([row.line for row in rows])

    @staticmethod
    def _refused_as_outage(exc: RemoteError | None, what: str) -> None:
        """Raise the outage that refusing this many points would be (nothing is quarantined)."""
        reason = f"{what}: {exc.reason}" if exc is not None else what
        raise RemoteError(exc.status if exc is not None else 400,
                          f"{reason}; nothing refused: check the server and what is between (proxy, port, "
                          "TLS); the same points are sent again")

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
