"""StoreWriter: the one buffered writer between the pipeline and the store (STYLE.md §5).

Submitted batches are merged up to ``batch_size`` records (or until ``flush_interval_ms`` after the
first queued one), written in one durable transaction by a dedicated thread, and only then are their
futures resolved. A failed write keeps the batch and is retried with backoff; nothing is dropped and no
future resolves before its commit. The queue is bounded: ``submit`` blocks (backpressure) when full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from archmon.config import StorageConfig
from collector._writer_parts import (
    BatchStore,
    QueuedBatch,
    WriterClosed,
    WriterFull,
    WriterStats,
    is_transient,
    weight_of,
)
from collector.records import Batch, WriteResult

__all__ = ["BatchStore", "StoreWriter", "WriterClosed", "WriterFull", "WriterStats"]

log = logging.getLogger(__name__)

Listener = Callable[[WriteResult], None]

# A batch holding one of these is committed at once, not after the flush interval: a smoke or leak alarm
# must not wait for more readings to share its transaction (archmon.app.feed.URGENT judges them first).
URGENT_QUANTITIES = frozenset({"smoke", "leak"})

_REFUSAL_LOG_EVERY_S = 60.0


class StoreWriter:
    """The buffered writer thread in front of a store.

    Args:
        store: the store to write to (a ``SqliteStore``, or anything with ``write_many``).
        batch_size: records merged into one transaction at most (a larger single batch goes alone).
        flush_interval_ms: how long after the first queued batch the writer waits for more.
        max_queued_records: bound of the queue; ``submit`` blocks while it is full.
        retry_min_s: first backoff after a failed write; doubles up to ``retry_max_s``.
    """

    def __init__(
        self,
        store: BatchStore,
        *,
        batch_size: int = 500,
        flush_interval_ms: int = 200,
        max_queued_records: int = 100_000,
        retry_min_s: float = 0.05,
        retry_max_s: float = 5.0,
    ) -> None:
        if batch_size < 1 or flush_interval_ms < 0 or max_queued_records < 1:
            raise ValueError(
                f"invalid writer settings: batch_size={batch_size}, flush_interval_ms={flush_interval_ms},"
                f" max_queued_records={max_queued_records}"
            )
        self._store = store
        self._batch_size = batch_size
        self._interval_s = flush_interval_ms / 1000
        self._max_queued = max_queued_records
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._cond = threading.Condition()
        self._queue: deque[QueuedBatch] = deque()
        self._queued_weight = 0
        self._pending_weight = 0
        self._submitted_seq = 0
        self._done_seq = 0
        self._flush_until = 0
        self._blocked = 0
        self._closing = False
        self._abort = threading.Event()
        self._listeners: list[Listener] = []
        self._thread: threading.Thread | None = None
        self._committed_batches = 0
        self._committed_readings = 0
        self._duplicates = 0
        self._failures = 0
        self._rejected = 0
        self._abandoned = 0
        self._listener_errors = 0
        self._retrying = False
        self._last_error = ""
        self._refusal_logged = ""
        self._refusal_logged_at = 0.0
        self._refusals_quiet = 0

    @classmethod
    def from_config(cls, store: BatchStore, storage: StorageConfig) -> StoreWriter:
        """A writer with the batch size and flush interval of the ``[storage]`` config."""
        return cls(store, batch_size=storage.batch_size, flush_interval_ms=storage.flush_interval_ms)

    # -- public API --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread.

        Raises:
            RuntimeError: already started.
        """
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("store writer already started")
            self._thread = threading.Thread(target=self._run, name="archmon-store-writer", daemon=True)
            self._thread.start()

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(result)`` in the writer thread after each commit that stored or ignored readings.

        It runs after the futures of that commit were resolved and before the next transaction starts.

        ``result`` holds every reading newly stored by that transaction. Listeners must be quick (hand work
        to another thread or loop); one that raises is logged and counted, and the writer goes on.
        """
        with self._cond:
            self._listeners.append(fn)

    def submit(self, batch: Batch, *, timeout: float | None = None) -> Future[WriteResult]:
        """Queue ``batch``; the future resolves after the transaction holding it committed.

        Blocks only while the queue is full (backpressure).

        Args:
            batch: readings, rejects and counter deltas to write.
            timeout: longest wait for room in a full queue (None: wait as long as needed; 0: never wait).

        Returns:
            A future resolving to the batch's own ``WriteResult``, or failing with the store's error when
            the store refuses the batch for good (e.g. a constraint error), or with :class:`WriterClosed`
            when the writer gave up at close before the batch could be committed.

        Raises:
            WriterFull: the queue stayed full for ``timeout`` seconds (nothing queued; offer it again).
            WriterClosed: the writer is closed (also for a submit waiting in a full queue when it closes).
        """
        weight = weight_of(batch)
        future: Future[WriteResult] = Future()
        future.set_running_or_notify_cancel()  # a queued write cannot be cancelled
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending_weight > 0 and self._pending_weight + weight > self._max_queued:
                if self._closing:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WriterFull(
                        f"store writer queue full ({self._pending_weight} records pending,"
                        f" limit {self._max_queued}); spool and retry"
                    )
                self._blocked += 1
                self._cond.notify_all()  # a full queue is written now, not after the interval
                try:
                    self._cond.wait(remaining)
                finally:
                    self._blocked -= 1
            if self._closing:
                raise WriterClosed("store writer is closed")
            self._submitted_seq += 1
            wake = not self._queue  # the writer thread waits for a first item ...
            self._queue.append(QueuedBatch(batch, future, self._submitted_seq, weight, time.monotonic()))
            self._queued_weight += weight
            self._pending_weight += weight
            if any(r.quantity in URGENT_QUANTITIES for r in batch.readings):
                self._flush_until = max(self._flush_until, self._submitted_seq)
                wake = True
            # ... or for a full transaction; waking it for every submit costs a thread switch per message.
            if wake or self._queued_weight >= self._batch_size:
                self._cond.notify_all()
        return future

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything submitted so far now and wait until it is committed (or refused).

        Returns:
            True if everything submitted before the call is done, False on timeout.
        """
        with self._cond:
            target = self._submitted_seq
            self._flush_until = max(self._flush_until, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done_seq >= target, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Write what is queued, then stop the thread. The store itself stays open.

        If the store still fails after ``timeout`` seconds, the writer gives up: futures not committed fail
        with :class:`WriterClosed` (never with a result), so their sources do not acknowledge them. A submit
        waiting for room fails with it at once.

        Returns:
            True if everything submitted was committed.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            self.start()
            thread = self._thread
        assert thread is not None
        thread.join(timeout)
        if thread.is_alive():
            log.error(
                "store writer: closing with %d records not committed after %.1f s",
                self._pending_weight,
                timeout,
            )
            self._abort.set()
            with self._cond:
                self._cond.notify_all()
            thread.join()
        with self._cond:
            return self._done_seq >= self._submitted_seq and not self._abort.is_set()

    def stats(self) -> WriterStats:
        """Current self-metrics."""
        with self._cond:
            return WriterStats(
                queued_records=self._pending_weight,
                queued_batches=len(self._queue),
                committed_batches=self._committed_batches,
                committed_readings=self._committed_readings,
                duplicates=self._duplicates,
                failures=self._failures,
                rejected=self._rejected,
                abandoned_records=self._abandoned,
                listener_errors=self._listener_errors,
                retrying=self._retrying,
                last_error=self._last_error,
            )

    # -- writer thread -----------------------------------------------------------------------------

    def _take(self) -> list[QueuedBatch] | None:
        """Wait for work and take the next transaction's items (None: closed and drained)."""
        with self._cond:
            while not self._queue:
                if self._closing or self._abort.is_set():
                    return None
                self._cond.wait()
            deadline = self._queue[0].enqueued + self._interval_s
            while (
                self._queued_weight < self._batch_size
                and not self._closing
                and self._flush_until <= self._done_seq
                and not self._blocked
                and (left := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(left)
            items: list[QueuedBatch] = []
            weight = 0
            while self._queue and (not items or weight + self._queue[0].weight <= self._batch_size):
                item = self._queue.popleft()
                items.append(item)
                weight += item.weight
            self._queued_weight -= weight
            return items

    def _run(self) -> None:
        while (items := self._take()) is not None:
            self._commit(items)
            with self._cond:
                self._done_seq = max(self._done_seq, items[-1].seq)
                self._pending_weight -= sum(item.weight for item in items)
                self._cond.notify_all()

    def _commit(self, items: list[QueuedBatch]) -> None:
        delay = self._retry_min_s
        failed_since: float | None = None
        while True:
            if self._abort.is_set():
                self._give_up(items)
                return
            try:
                results = self._store.write_many([item.batch for item in items])
            except Exception as exc:
                if not is_transient(exc):
                    self._refuse(items, exc)
                    return
                with self._cond:
                    self._failures += 1
                    self._retrying = True
                    self._last_error = f"{type(exc).__name__}: {exc}"
                if failed_since is None:
                    failed_since = time.monotonic()
                    log.warning(
                        "store writer: write of %d batches failed (%s); kept, retrying with backoff",
                        len(items),
                        self._last_error,
                    )
                else:
                    log.debug("store writer: retry failed: %s", exc)
                self._abort.wait(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            if failed_since is not None:
                log.warning("store writer: write succeeded again after %.1f s", time.monotonic() - failed_since)
            self._committed(items, results)
            return

    def _committed(self, items: list[QueuedBatch], results: list[WriteResult]) -> None:
        stored = tuple(reading for result in results for reading in result.stored)
        duplicates = sum(result.duplicates for result in results)
        with self._cond:
            self._retrying = False
            self._committed_batches += 1
            self._committed_readings += len(stored)
            self._duplicates += duplicates
            listeners = list(self._listeners)
        # Futures first: their sources acknowledge now and can take new messages while listeners run.
        for item, result in zip(items, results, strict=True):
            item.future.set_result(result)
        if stored or duplicates:
            combined = WriteResult(stored=stored, duplicates=duplicates)
            for listener in listeners:
                try:
                    listener(combined)
                except Exception:
                    with self._cond:
                        self._listener_errors += 1
                    log.exception("store writer: listener %r failed", listener)

    def _refuse(self, items: list[QueuedBatch], exc: Exception) -> None:
        if len(items) > 1:
            # Find the batch the store refuses: write each alone so the good ones still land.
            for item in items:
                self._commit([item])
            return
        text = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        with self._cond:
            self._rejected += 1
            self._last_error = text
            # A broken store refuses every batch: one line a minute per error, the rest counted (rejected).
            quiet = text == self._refusal_logged and now - self._refusal_logged_at < _REFUSAL_LOG_EVERY_S
            if quiet:
                self._refusals_quiet += 1
            else:
                more, self._refusals_quiet = self._refusals_quiet, 0
                self._refusal_logged, self._refusal_logged_at = text, now
        if quiet:
            log.debug("store writer: the store refused a batch (%s)", text)
        else:
            log.error("store writer: the store refused a batch (%s); its future fails with the error%s", exc,
                      f" ({more} more refused with the same error in the last minute)" if more else "")
        items[0].future.set_exception(exc)

    def _give_up(self, items: list[QueuedBatch]) -> None:
        with self._cond:
            rest = list(self._queue)
            self._queue.clear()
            self._queued_weight = 0
            self._abandoned += sum(item.weight for item in [*items, *rest])
        for item in [*items, *rest]:
            item.future.set_exception(WriterClosed("store writer closed before the batch was committed"))
        if rest:
            with self._cond:
                self._pending_weight -= sum(item.weight for item in rest)
                self._done_seq = max(self._done_seq, rest[-1].seq)
