"""Between a serial source and its sink: hand messages over without blocking, keep them until durable.

A serial port cannot be asked to send again, so what a Modbus poll or a line sensor gave must be
kept until the store has it. :meth:`Handover.put` never blocks (a reader thread must keep reading
the port, or the kernel's buffer overflows): it appends to a bounded buffer. A delivery thread
hands the oldest messages to the sink in chunks and waits for their future:

- resolved: the chunk is durable and leaves the buffer (``delivered``);
- failed with ``RetryLater`` (the store writer full or closed, the write cancelled): the chunk stays
  and is handed over again after a backoff, for as long as it takes (the store writer itself retries
  a stalled store); never a refusal;
- failed with any other error (the store refused it for good, e.g. a constraint): a chunk of several
  is handed over again one message at a time (all at once, so the writer tries them in one go), so
  the good ones land; a message refused alone is logged with its payload (at most
  :data:`REFUSAL_LOG_PER_MINUTE` lines a minute, the rest counted), counted (``refused``) and kept in
  :meth:`Handover.refused` (the last :data:`REFUSED_KEPT`), never retried forever;
- when *every* message of such a round is refused with the same error, or a message alone is refused
  as from a corrupt file (``sqlite3.DatabaseError`` itself: a trickle of one-line chunks), the store is
  broken, not the messages: they are all kept and retried with backoff (``store_failures`` counts such
  episodes, ``retries`` the attempts), as for a stall. A constraint error (``sqlite3.IntegrityError``)
  is always about the message.

The same message handed over again gets the same receive-time stamp (``collector.memo``), so a retry
or a split never moves a reading.

The buffer holds at most ``max_buffered`` messages and ``max_buffered_bytes`` payload bytes (waiting
and in flight); past either bound a new message makes the oldest message not yet handed over drop
(counted ``dropped``, logged once per stall): a stall longer than the bound loses the oldest
readings, never the newest. A later issue adds a disk spool that removes the bound.

:meth:`Handover.stop` hands everything still waiting to the sink at once (the store writer queues it
for its final flush) and waits for it; what the writer gives up when it closes (or cannot take any
more) is counted ``lost_at_stop`` and logged, so a stop during a stall says what it lost. If the
delivery thread dies (an exception that is not an ``Exception``), its messages go back to the front
of the buffer (logged) and the next :meth:`Handover.put` or :meth:`Handover.stop` starts a new one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from typing import Any

from archmon.domain import RawMessage
from archmon.errors import RetryLater
from collector._handover_parts import Chunk, HandoverStats, LogQuota, Outcome, RefusedMessage, nbytes, reason
from collector.source import MessageSink

__all__ = ["DEFAULT_MAX_BUFFERED_BYTES", "REFUSAL_LOG_PER_MINUTE", "REFUSED_KEPT", "Handover", "HandoverStats",
           "RefusedMessage"]

log = logging.getLogger(__name__)

REFUSED_KEPT = 100
"""Messages refused for good that are kept in memory (with the reason) for inspection."""

REFUSAL_LOG_PER_MINUTE = 10
"""Refused messages logged (with their payload) per minute and hand-over; the others are counted only."""

DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024
"""Payload bytes a hand-over holds by default."""


class Handover:
    """A bounded buffer and a delivery thread in front of a sink; see the module docstring.

    Args:
        name: the source, for log lines and the thread name (``serial line logger1``).
        sink: where messages go; returns a future resolved when they are durable.
        max_buffered: most messages held (waiting and in flight); at least 2, so that a new message
            always finds room next to a chunk in flight.
        max_buffered_bytes: most payload bytes held.
        max_chunk: most messages per sink call.
        retry_min_s: first backoff after a transient failure; doubles up to ``retry_max_s``.
        retry_max_s: longest backoff.

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
                                     "store_failures", "lost_at_stop"), 0)
        self._dropped_in_stall = 0
        self._store_error: str | None = None  # the error of a store refusing everything (an episode)
        self._refusal_log = LogQuota(REFUSAL_LOG_PER_MINUTE)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # cuts a backoff or a wait for the store short on stop

    # -- producer side (reader or polling thread) -------------------------------------------------

    def put(self, message: RawMessage) -> None:
        """Queue one message; never blocks. Past a bound the oldest waiting messages are dropped."""
        dropped: RawMessage | None = None
        first = False
        with self._cond:
            self._waiting.append(message)
            self._waiting_bytes += len(message.payload)
            while len(self._waiting) > 1 and self._over_bound():
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
        self._ensure_thread()

    def _over_bound(self) -> bool:
        flying = sum(len(c.messages) for c in self._in_flight)
        flying_bytes = sum(c.nbytes for c in self._in_flight)
        return (len(self._waiting) + flying > self._max_buffered
                or self._waiting_bytes + flying_bytes > self._max_bytes)

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until every message put so far is durable or given up; False after ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting and not self._in_flight, timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """Hand everything buffered to the sink now, then wait at most ``timeout`` s for it to be durable.

        The delivery thread goes on after this returns: what the store writer gives up when it closes is
        counted ``lost_at_stop`` and logged then. A later :meth:`put` starts a new thread (a source
        stopped and started again).

        Returns:
            How many messages are not durable yet (handed to the writer, or waiting for room in it).
        """
        with self._cond:
            has_work = bool(self._waiting or self._in_flight)
        if has_work:
            self._ensure_thread()  # also after the thread died
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        self._wake.set()
        with self._cond:
            self._cond.wait_for(lambda: not (self._waiting or self._in_flight) or thread is None
                                or not thread.is_alive(), timeout)
            left = len(self._waiting) + sum(len(c.messages) for c in self._in_flight)
        if left:
            log.warning("%s: %d messages not stored after %.1f s; they are handed to the store writer, which "
                        "stores them with its final flush or gives them up (then counted lost_at_stop)",
                        self._name, left, timeout)
        return left

    def stats(self) -> HandoverStats:
        """Current self-metrics."""
        with self._cond:
            flying = sum(len(c.messages) for c in self._in_flight)
            return HandoverStats(buffered=len(self._waiting) + flying,
                                 buffered_bytes=self._waiting_bytes + sum(c.nbytes for c in self._in_flight),
                                 in_flight=flying, **self._counts)

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
        """The next chunk (None: stopping and nothing waiting), registered as in flight."""
        with self._cond:
            while not self._waiting:
                if self._stopping:
                    return None
                self._cond.wait()
            messages: list[RawMessage] = []
            nbytes = 0
            while self._waiting and len(messages) < self._max_chunk and (
                    not messages or nbytes + len(self._waiting[0].payload) <= self._max_chunk_bytes):
                message = self._waiting.popleft()
                messages.append(message)
                nbytes += len(message.payload)
            self._waiting_bytes -= nbytes
            chunk = Chunk(messages, nbytes)
            self._in_flight.append(chunk)
            return chunk

    def _run(self) -> None:
        with self._cond:
            lost_before = self._counts["lost_at_stop"]  # this thread's stop is the only one that adds to it
        try:
            while (chunk := self._take()) is not None:
                self._deliver(chunk)
                dropped = 0
                with self._cond:
                    if not self._waiting and not self._in_flight:
                        dropped, self._dropped_in_stall = self._dropped_in_stall, 0
                if dropped:
                    log.warning("%s: buffer drained; %d oldest messages were dropped while the store was stalled",
                                self._name, dropped)
            self._settle_at_stop(lost_before)
        except BaseException:
            with self._cond:
                kept = [m for c in self._in_flight for m in c.messages]
                self._waiting.extendleft(reversed(kept))
                self._waiting_bytes += nbytes(kept)
                self._in_flight = []
                self._cond.notify_all()
            log.exception("%s: the hand-over thread failed; its %d messages in flight are kept and handed over "
                          "again by a new thread (on the next message or at stop)", self._name, len(kept))

    def _settled(self, chunk: Chunk, messages: Sequence[RawMessage], counter: str | None = None) -> None:
        """``messages`` of ``chunk`` are done with (durable, refused or lost): they leave the buffer."""
        with self._cond:
            gone = {id(m) for m in messages}
            chunk.messages = [m for m in chunk.messages if id(m) not in gone]
            chunk.nbytes = nbytes(chunk.messages)
            if not chunk.messages and chunk in self._in_flight:
                self._in_flight.remove(chunk)
            if counter is not None:
                self._counts[counter] += len(messages)
            self._cond.notify_all()

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

    def _split(self, chunk: Chunk, error: BaseException) -> None:
        """The store refused ``chunk``: hand its messages over one by one. Settles the durable and the refused
        ones; keeps the rest in ``chunk`` (transient failures, or all of them when the store is broken)."""
        messages = list(chunk.messages)
        if len(messages) > 1:
            log.warning("%s: the store refused %d messages (%s); handing them over one by one", self._name,
                        len(messages), error)
            # All at once: the writer tries them in one transaction and splits it itself.
            pending = [(m, self._attempt([m], wait=False)) for m in messages]
            outcomes = [(m, o if o.future is None else self._result(o.future)) for m, o in pending]
        else:
            outcomes = [(messages[0], Outcome(error))]
        durable = [m for m, o in outcomes if o.durable]
        refusals = {reason(o.error) for _, o in outcomes if o.error is not None and not o.transient}
        refused = [(m, o.error) for m, o in outcomes if o.error is not None and not o.transient]
        self._settled(chunk, durable, "delivered")
        alike = len(refused) == len(messages) and len(refusals) == 1
        # Several refused alike, or one refused as a corrupt file (SQLITE_CORRUPT / NOTADB are DatabaseError
        # itself, never a subclass): a broken store. A constraint error is always about the message.
        if alike and (type(refused[0][1]) is sqlite3.DatabaseError
                      or (len(messages) > 1 and not isinstance(refused[0][1], sqlite3.IntegrityError))):
            (text,) = refusals
            with self._cond:
                self._counts["store_failures"] += 1
            self._store_error = text
            log.error("%s: the store refuses every message alike (%s): it is broken, not the messages; keeping "
                      "%d messages and retrying (counted store_failures)", self._name, text, len(messages))
            return
        for message, failure in refused:
            assert failure is not None
            self._refuse(chunk, message, failure)

    def _refuse(self, chunk: Chunk, message: RawMessage, error: BaseException) -> None:
        why = reason(error)
        if self._refusal_log.take():
            skipped, self._refusal_log.skipped = self._refusal_log.skipped, 0
            log.error("%s: the store refused a message for good (%s); not retried. %s at %d ms, payload %r%s",
                      self._name, why, message.topic, message.received_ms, message.payload[:200],
                      f" ({skipped} more refused without a log line)" if skipped else "")
        else:
            log.debug("%s: the store refused a message for good (%s)", self._name, why)
        with self._cond:
            self._refused.append(RefusedMessage(message, why))
        self._settled(chunk, [message], "refused")

    # -- at a stop --------------------------------------------------------------------------------

    def _hand_over_at_stop(self, chunk: Chunk) -> None:
        """Stopping: hand ``chunk`` to the sink without waiting (the store writer queues it for its final
        flush); what it cannot take is lost."""
        outcome = self._attempt(chunk.messages, wait=False)
        if outcome.future is not None:
            chunk.future = outcome.future
        elif outcome.transient:
            self._settled(chunk, chunk.messages, "lost_at_stop")
        else:
            assert outcome.error is not None
            self._split_at_stop(chunk, outcome.error)

    def _settle_at_stop(self, lost_before: int) -> None:
        """Wait for every chunk handed over at the stop (the writer's final flush decides) and count the lost."""
        with self._cond:
            handed = [c for c in self._in_flight if c.future is not None]
        given_up: list[Chunk] = []
        for chunk in handed:
            assert chunk.future is not None
            outcome = self._result(chunk.future)
            if outcome.durable:
                self._settled(chunk, chunk.messages, "delivered")
            elif outcome.transient:
                given_up.append(chunk)
            else:
                assert outcome.error is not None
                self._split_at_stop(chunk, outcome.error)
        with self._cond:
            lost = self._counts["lost_at_stop"] - lost_before + sum(len(c.messages) for c in given_up)
        if lost:  # before they leave the buffer: whoever waits for it to empty finds the line written
            log.error("%s: %d messages read before the stop were not stored (the store writer gave them up or "
                      "was closed); counted lost_at_stop", self._name, lost)
        for chunk in given_up:
            self._settled(chunk, chunk.messages, "lost_at_stop")

    def _split_at_stop(self, chunk: Chunk, error: BaseException) -> None:
        self._split(chunk, error)
        if chunk.messages:  # kept for a retry there is no time for: transient failures, a broken store
            self._settled(chunk, chunk.messages, "lost_at_stop")
