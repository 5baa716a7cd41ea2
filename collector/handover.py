"""Between a serial source and its sink: hand messages over without blocking, keep them until durable.

A serial port cannot be asked to send again, so what a Modbus poll or a line sensor gave must be
kept until the store has it. :meth:`Handover.put` never blocks (a reader thread must keep reading
the port, or the kernel's buffer overflows): it appends to a bounded buffer. A delivery thread
hands the oldest messages to the sink in chunks and waits for their future:

- resolved: the chunk is durable and leaves the buffer (``delivered``);
- failed with ``RetryLater`` (the store writer full or closed, the write cancelled): the chunk stays
  and is handed over again after a backoff, for as long as it takes (the store writer itself retries
  a stalled store); never a refusal;
- failed with any other error: see :mod:`collector._handover_refusals` (a message refused for good is
  counted ``refused`` and kept in :meth:`Handover.refused`; a broken store keeps everything).

The same message handed over again gets the same receive-time stamp (``collector.memo``), and sources
stamp their messages with :meth:`Handover.stamp` (each later than the one before it, by 1 ms if
needed), so a retry, a split or a replay from the spool after a restart never moves a reading.

The memory buffer holds at most ``max_buffered`` messages and ``max_buffered_bytes`` payload bytes
(waiting and in flight). Past either bound:

- with a **spool** (:class:`collector.spool.Spool`, what ``archmon run`` gives every serial source):
  the hand-over *spills*: the waiting messages, a copy of the chunk in flight and every new message go
  to the spool on disk (written by a thread of its own in fsync'd batches), and the delivery thread
  hands the spool's rows to the sink in order, removing them once durable, until the spool is empty;
  then it goes back to memory. A spool found with rows at start is replayed first. A crash while
  spilled loses nothing the spool took (at most the batch being written); the copy of the chunk that
  was in flight may be stored once more after a crash, which the store ignores (same times). Past the
  spool's own byte bound its oldest rows not yet handed over are dropped (counted ``dropped``).
- without one: a new message makes the oldest message not yet handed over drop (counted ``dropped``,
  logged once per stall): the oldest readings go, never the newest.

:meth:`Handover.stop` hands everything still waiting to the sink at once (the store writer queues it
for its final flush) and waits for it; what the writer gives up when it closes (or cannot take any
more) goes to the spool, or without one is counted ``lost_at_stop`` and logged. Rows of the spool
stay in it (replayed at the next start). If the delivery thread dies (an exception that is not an
``Exception``), its messages go back to the front of the buffer (logged) and the next
:meth:`Handover.put` or :meth:`Handover.stop` starts a new one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import CancelledError, Future
from typing import Any

from archmon.domain import RawMessage
from archmon.errors import RetryLater
from archmon.timeutil import now_ms
from collector._handover_parts import Chunk, HandoverStats, LogQuota, Outcome, RefusedMessage, nbytes, reason
from collector._handover_refusals import REFUSAL_LOG_PER_MINUTE, REFUSED_KEPT, RefusalsAndStop
from collector._handover_spill import Spilling
from collector.source import MessageSink
from collector.spool import Spool

__all__ = ["DEFAULT_MAX_BUFFERED_BYTES", "REFUSAL_LOG_PER_MINUTE", "REFUSED_KEPT", "Handover", "HandoverStats",
           "RefusedMessage"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024
"""Payload bytes a hand-over holds in memory by default."""


class Handover(RefusalsAndStop, Spilling):
    """A bounded buffer, an optional disk spool and a delivery thread in front of a sink; see the module docstring.

    Args:
        name: the source, for log lines and the thread name (``serial line logger1``).
        sink: where messages go; returns a future resolved when they are durable.
        max_buffered: most messages held in memory (waiting and in flight); at least 2, so that a new
            message always finds room next to a chunk in flight.
        max_buffered_bytes: most payload bytes held in memory.
        max_chunk: most messages per sink call.
        retry_min_s: first backoff after a transient failure; doubles up to ``retry_max_s``.
        retry_max_s: longest backoff.
        spool: where messages go past the memory bound (None: the oldest are dropped). Rows it holds
            already are handed over first (call :meth:`resume` to start at once).

    Raises:
        ValueError: a bound is too small.
    """

    def __init__(
        self,
        name: str,
        sink: MessageSink,
        *,
        max_buffered: int,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        max_chunk: int = 500,
        retry_min_s: float = 0.05,
        retry_max_s: float = 5.0,
        spool: Spool | None = None,
    ) -> None:
        if max_buffered < 2 or max_chunk < 1 or max_buffered_bytes < 2:
            raise ValueError(f"{name}: max_buffered and max_buffered_bytes must be at least 2, max_chunk at "
                             f"least 1 (got {max_buffered}, {max_buffered_bytes}, {max_chunk})")
        self._name = name
        self._sink = sink
        self._max_buffered = max_buffered
        self._max_bytes = max_buffered_bytes
        # At most half of each bound in flight, so the newest messages always find room while a chunk waits.
        self._max_chunk = max(1, min(max_chunk, max_buffered // 2))
        self._max_chunk_bytes = max(1, max_buffered_bytes // 2)
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._cond = threading.Condition()
        self._waiting: deque[RawMessage] = deque()
        self._waiting_bytes = 0
        self._in_flight: list[Chunk] = []
        self._refused: deque[RefusedMessage] = deque(maxlen=REFUSED_KEPT)
        self._counts = dict.fromkeys(("delivered", "dropped", "refused", "retries", "handler_errors",
                                     "store_failures", "lost_at_stop", "spilled"), 0)
        self._dropped_in_stall = 0
        self._store_error: str | None = None  # the error of a store refusing everything (an episode)
        self._refusal_log = LogQuota(REFUSAL_LOG_PER_MINUTE)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # cuts a backoff or a wait for the store short on stop
        self._last_ms = 0  # the newest receive time given by stamp()
        self._init_spill(spool)

    # -- producer side (reader or polling thread) -------------------------------------------------

    def put(self, message: RawMessage) -> None:
        """Queue one message; never blocks. Past the memory bound: spill, or drop the oldest waiting messages."""
        dropped: RawMessage | None = None
        first = spill = spool_slow = False
        with self._cond:
            if self._spilled:
                spool_slow = self._queue_for_spool(message)
                self._cond.notify_all()
            else:
                self._waiting.append(message)
                self._waiting_bytes += len(message.payload)
                if self._spool is not None and len(self._waiting) > 1 and self._over_bound():
                    spill = self._start_spill()
                while self._spool is None and len(self._waiting) > 1 and self._over_bound():
                    dropped = self._waiting.popleft()
                    self._waiting_bytes -= len(dropped.payload)
                    self._counts["dropped"] += 1
                    self._dropped_in_stall += 1
                    first = first or self._dropped_in_stall == 1
                self._cond.notify_all()
        if dropped is not None and first:
            log.warning("%s: the buffer is full (%d messages or %d bytes wait for the store): dropping the oldest "
                        "(first: %s at %d ms); counted as dropped", self._name, self._max_buffered, self._max_bytes,
                        dropped.topic, dropped.received_ms)
        if spool_slow:
            log.warning("%s: the disk spool does not take messages as fast as they come (or fails, see above), and "
                        "%d wait in memory: dropping the oldest; counted as dropped", self._name, self._max_buffered)
        if spill:
            log.warning("%s: the memory buffer is full (%d messages or %d bytes wait for the store): spilling to "
                        "the disk spool %s until the store takes messages again", self._name, self._max_buffered,
                        self._max_bytes, self._spool_file)
        self._ensure_thread()

    def stamp(self) -> int:
        """A receive time for the next message: now, or 1 ms after the previous stamp (and after the spool's
        newest row) if the clock has not moved on. Sources stamp with it, so that no two messages of a source
        share a millisecond and a replay from the spool after a restart gives every reading its first time."""
        with self._cond:
            self._last_ms = max(now_ms(), self._last_ms + 1)
            return self._last_ms

    def resume(self) -> None:
        """Start handing over what the spool holds from an earlier run (a source's start calls it)."""
        with self._cond:
            if not self._spilled:
                return
        self._ensure_thread()

    def _over_bound(self) -> bool:
        flying = sum(len(c.messages) for c in self._in_flight)
        flying_bytes = sum(c.nbytes for c in self._in_flight)
        return (len(self._waiting) + flying > self._max_buffered
                or self._waiting_bytes + flying_bytes > self._max_bytes)

    def _busy(self) -> bool:
        """Messages in memory not settled yet (waiting, in flight, or on their way to the spool)."""
        return bool(self._waiting or self._in_flight or self._pending or self._appending)

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until every message put so far is durable or given up (spool included); False after ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy() and not self._spool_unread(), timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """Hand everything buffered to the sink now, then wait at most ``timeout`` s for it to be durable.

        The delivery thread goes on after this returns: what the store writer gives up when it closes goes
        to the spool or is counted ``lost_at_stop`` and logged then. A later :meth:`put` starts a new thread
        (a source stopped and started again). Rows in the spool stay there for the next start.

        Returns:
            How many messages in memory are not durable yet (handed to the writer, or waiting for room in it).
        """
        with self._cond:
            has_work = self._busy()
        if has_work:
            self._ensure_thread()  # also after the thread died
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        self._wake.set()
        with self._cond:
            self._cond.wait_for(lambda: not self._busy() or thread is None or not thread.is_alive(), timeout)
            left = len(self._waiting) + sum(len(c.messages) for c in self._in_flight) + len(self._pending)
        if left:
            log.warning("%s: %d messages not stored after %.1f s; they are handed to the store writer, which "
                        "stores them with its final flush or gives them up (then %s)", self._name, left, timeout,
                        "written to the spool" if self._spool is not None else "counted lost_at_stop")
        return left

    def stats(self) -> HandoverStats:
        """Current self-metrics."""
        spool = self._spool_stats()
        with self._cond:
            flying = sum(len(c.messages) for c in self._in_flight)
            return HandoverStats(buffered=len(self._waiting) + flying + len(self._pending),
                                 buffered_bytes=(self._waiting_bytes + self._pending_bytes
                                                 + sum(c.nbytes for c in self._in_flight)),
                                 in_flight=flying, **self._counts, **spool)

    def refused(self) -> list[RefusedMessage]:
        """The last messages the store refused for good, oldest first."""
        with self._cond:
            return list(self._refused)

    # -- delivery thread --------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the delivery thread on the first put, and again on the first put after a stop or its death."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._wake.clear()
            self._thread = threading.Thread(target=self._run, name=f"archmon-handover {self._name}", daemon=True)
            self._thread.start()

    def _take(self) -> Chunk | None:
        """The next chunk (None: stopping and nothing waiting in memory), registered as in flight."""
        while True:
            with self._cond:
                while not self._waiting:
                    if self._stopping:
                        return None
                    if self._spilled and self._spool_unread():
                        break
                    if self._spilled and not (self._pending or self._appending):
                        self._end_spill()
                        continue
                    self._cond.wait()
                if self._waiting:
                    return self._take_waiting()
            chunk = self._take_spooled()  # outside the lock: a disk read
            if chunk is not None:
                return chunk

    def _take_waiting(self) -> Chunk:
        messages: list[RawMessage] = []
        size = 0
        while self._waiting and len(messages) < self._max_chunk and (
                not messages or size + len(self._waiting[0].payload) <= self._max_chunk_bytes):
            message = self._waiting.popleft()
            messages.append(message)
            size += len(message.payload)
        self._waiting_bytes -= size
        chunk = Chunk(messages, size)
        self._in_flight.append(chunk)
        return chunk

    def _run(self) -> None:
        with self._cond:
            lost_before = self._counts["lost_at_stop"]  # this thread's stop is the only one that adds to it
        self._rewind_spool()
        try:
            while (chunk := self._take()) is not None:
                self._deliver(chunk)
                dropped = 0
                with self._cond:
                    if not self._busy() and not self._spilled:
                        dropped, self._dropped_in_stall = self._dropped_in_stall, 0
                if dropped:
                    log.warning("%s: buffer drained; %d oldest messages were dropped while the store was stalled",
                                self._name, dropped)
            self._settle_at_stop(lost_before)
        except BaseException:
            with self._cond:
                kept = [m for c in self._in_flight if c.spooled is None for m in c.messages]
                self._waiting.extendleft(reversed(kept))  # (rows of the spool stay there: read again)
                self._waiting_bytes += nbytes(kept)
                self._in_flight = []
                self._cond.notify_all()
            log.exception("%s: the hand-over thread failed; its %d messages in flight are kept and handed over "
                          "again by a new thread (on the next message or at stop)", self._name, len(kept))

    def _settled(self, chunk: Chunk, messages: list[RawMessage], counter: str | None = None, *,
                 keep_rows: bool = False) -> None:
        """``messages`` of ``chunk`` are done with (durable, refused or lost): they leave the buffer, and once
        the whole chunk is, its rows leave the spool (unless ``keep_rows``: not stored, replayed later)."""
        with self._cond:
            gone = {id(m) for m in messages}
            chunk.messages = [m for m in chunk.messages if id(m) not in gone]
            chunk.nbytes = nbytes(chunk.messages)
            done = not chunk.messages and chunk in self._in_flight
            if counter is not None:
                self._counts[counter] += len(messages)
            rows = chunk.spooled if done and not keep_rows else None
            if done:
                chunk.spooled = None  # (a copy being written now is removed by the spill thread)
        if rows is not None:
            self._remove_rows(rows)
        if done:
            with self._cond:
                self._in_flight.remove(chunk)
                self._cond.notify_all()
        else:
            self._notify()

    def _deliver(self, chunk: Chunk) -> None:
        """Hand ``chunk`` over until every message is durable or refused; at a stop, hand it over and go on."""
        delay = self._retry_min_s
        failing = False
        while chunk.messages:
            if self._stopping:
                self._hand_over_at_stop(chunk)
                return
            outcome = self._attempt(chunk.messages, wait=True)
            if outcome.future is not None:  # the stop came while waiting: settled with the others
                chunk.future = outcome.future
                return
            if outcome.durable:
                if failing or self._store_error is not None:
                    log.warning("%s: the store takes messages again", self._name)
                self._store_error = None
                self._settled(chunk, chunk.messages, "delivered")
                return
            if not outcome.transient:
                assert outcome.error is not None
                if reason(outcome.error) != self._store_error:  # else still broken alike: retry as it is
                    self._split(chunk, outcome.error)
                if not chunk.messages:
                    return
            with self._cond:
                self._counts["retries"] += 1
            if not failing and self._store_error is None:
                log.warning("%s: %d messages not stored yet (%s); kept, retrying", self._name, len(chunk.messages),
                            outcome.error)
            failing = True
            self._wake.wait(delay)
            delay = min(delay * 2, self._retry_max_s)

    def _attempt(self, messages: list[RawMessage], *, wait: bool) -> Outcome:
        """Hand ``messages`` to the sink; with ``wait``, wait for their future (until a stop comes)."""
        try:
            future: Future[Any] = self._sink(messages)
        except RetryLater as exc:
            return Outcome(exc)
        except Exception as exc:
            with self._cond:
                self._counts["handler_errors"] += 1
            log.exception("%s: the sink raised on %d messages", self._name, len(messages))
            return Outcome(exc)
        if not wait:
            return Outcome(future=future)
        if not future.done():
            future.add_done_callback(lambda _: self._notify())
            with self._cond:
                self._cond.wait_for(lambda: future.done() or self._stopping)
            if not future.done():
                return Outcome(future=future)
        return self._result(future)

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @staticmethod
    def _result(future: Future[Any]) -> Outcome:
        try:
            future.result()
        except CancelledError:
            return Outcome(RetryLater("the write was cancelled"))
        except Exception as exc:
            return Outcome(exc)
        return Outcome()
