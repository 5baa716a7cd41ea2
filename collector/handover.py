"""Between a serial source and its sink: hand messages over without blocking, keep them until durable.

A serial port cannot be asked to send again, so what a Modbus poll or a line sensor gave must be
kept until the store has it. :meth:`Handover.put` never blocks (a reader thread must keep reading
the port, or the kernel's buffer overflows): it appends to a bounded buffer. A delivery thread
hands the oldest messages to the sink in chunks and waits for their future:

- resolved: the chunk is durable and leaves the buffer;
- failed with ``RetryLater`` (the store writer closed or full): the chunk stays and is handed over
  again after a backoff, for as long as it takes (the store writer itself retries a stalled store);
- failed with any other error (the store refused it for good, e.g. a constraint): a chunk of several
  is handed over again one message at a time, so the good ones land; a single refused message is
  logged with its payload, counted (``refused``) and kept in :meth:`Handover.refused` (the last
  :data:`REFUSED_KEPT`), never retried forever.

While the buffer holds ``max_buffered`` messages, a new one makes the oldest message not yet
handed over drop (counted ``dropped``, logged once per stall): a stall longer than the bound
loses the oldest readings, never the newest. A later issue adds a disk spool that removes the bound.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

from archmon.domain import RawMessage
from archmon.errors import RetryLater
from collector.source import MessageSink

__all__ = ["REFUSED_KEPT", "Handover", "HandoverStats"]

log = logging.getLogger(__name__)

REFUSED_KEPT = 100
"""Messages refused for good that are kept in memory (with the reason) for inspection."""


@dataclass(frozen=True, slots=True)
class HandoverStats:
    """Self-metrics of a hand-over.

    Attributes:
        buffered: messages held, not yet durable (waiting and in flight).
        in_flight: messages handed to the sink whose future has not resolved.
        delivered: messages that became durable.
        dropped: oldest messages dropped because the buffer was full.
        refused: messages the store refused for good (logged, not retried).
        retries: chunks handed over again after a transient failure.
        handler_errors: sink calls that raised (the messages count as refused).
        lost_at_stop: messages never handed to the store when :meth:`Handover.stop` stopped waiting.
    """

    buffered: int
    in_flight: int
    delivered: int
    dropped: int
    refused: int
    retries: int
    handler_errors: int
    lost_at_stop: int


@dataclass(frozen=True, slots=True)
class RefusedMessage:
    """A message the store refused for good, and why."""

    message: RawMessage
    reason: str


class Handover:
    """A bounded buffer and a delivery thread in front of a sink; see the module docstring.

    Args:
        name: the source, for log lines and the thread name (``serial line logger1``).
        sink: where messages go; returns a future resolved when they are durable.
        max_buffered: most messages held (waiting and in flight).
        max_chunk: most messages per sink call.
        retry_min_s: first backoff after a transient failure; doubles up to ``retry_max_s``.
        retry_max_s: longest backoff.
    """

    def __init__(
        self,
        name: str,
        sink: MessageSink,
        *,
        max_buffered: int,
        max_chunk: int = 500,
        retry_min_s: float = 0.05,
        retry_max_s: float = 5.0,
    ) -> None:
        if max_buffered < 1 or max_chunk < 1:
            raise ValueError(f"{name}: max_buffered and max_chunk must be at least 1")
        self._name = name
        self._sink = sink
        self._max_buffered = max_buffered
        # At most half the bound in flight, so the newest messages always find room while a chunk waits.
        self._max_chunk = max(1, min(max_chunk, max_buffered // 2))
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._cond = threading.Condition()
        self._waiting: deque[RawMessage] = deque()
        self._in_flight: list[RawMessage] = []
        self._refused: deque[RefusedMessage] = deque(maxlen=REFUSED_KEPT)
        self._counts = dict.fromkeys(("delivered", "dropped", "refused", "retries", "handler_errors",
                                     "lost_at_stop"), 0)
        self._dropped_in_stall = 0
        self._stopping = False
        self._gave_up = False  # stop() stopped waiting: the thread ends without handing over the rest
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # cuts a backoff short on stop

    # -- producer side (reader or polling thread) -------------------------------------------------

    def put(self, message: RawMessage) -> None:
        """Queue one message; never blocks. Past the bound the oldest waiting message is dropped."""
        with self._cond:
            self._waiting.append(message)
            if len(self._waiting) + len(self._in_flight) > self._max_buffered:
                dropped = self._waiting.popleft()
                self._counts["dropped"] += 1
                self._dropped_in_stall += 1
                first = self._dropped_in_stall == 1
            else:
                dropped, first = None, False
            self._cond.notify_all()
        if dropped is not None and first:
            log.warning("%s: %d messages are waiting for the store: dropping the oldest (first: %s at %d ms); "
                        "counted as dropped", self._name, self._max_buffered, dropped.topic, dropped.received_ms)
        self._ensure_thread()

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until every message put so far is durable or given up; False after ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting and not self._in_flight, timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """Hand over what is buffered (waiting at most ``timeout`` seconds), then end the thread.

        A later :meth:`put` starts a new thread (a source stopped and started again).

        Returns:
            How many messages were never handed to the store: they are lost (counted ``lost_at_stop``
            and logged). Those handed over but not yet confirmed may still be stored by the writer.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
            self._cond.wait_for(lambda: not (self._waiting or self._in_flight) or thread is None
                                or not thread.is_alive(), timeout)
            lost, unconfirmed = len(self._waiting), len(self._in_flight)
            self._gave_up = lost + unconfirmed > 0
            self._counts["lost_at_stop"] += lost
            self._waiting.clear()
        self._wake.set()
        if thread is not None:
            thread.join(1.0)
        if lost or unconfirmed:
            log.error("%s: stopping after %.0f s with %d messages never handed to the store (lost) and %d "
                      "handed over but not confirmed durable", self._name, timeout, lost, unconfirmed)
        return lost

    def stats(self) -> HandoverStats:
        """Current self-metrics."""
        with self._cond:
            return HandoverStats(buffered=len(self._waiting) + len(self._in_flight), in_flight=len(self._in_flight),
                                 **self._counts)

    def refused(self) -> list[RefusedMessage]:
        """The last messages the store refused for good, oldest first."""
        with self._cond:
            return list(self._refused)

    # -- delivery thread --------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the delivery thread on the first put, and again on the first put after a stop."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = self._gave_up = False
            self._wake.clear()
            self._thread = threading.Thread(target=self._run, name=f"archmon-handover {self._name}", daemon=True)
            self._thread.start()

    def _take(self) -> list[RawMessage] | None:
        with self._cond:
            while not self._waiting or self._gave_up:
                if self._stopping:
                    return None
                self._cond.wait()
            count = min(self._max_chunk, len(self._waiting))
            self._in_flight = [self._waiting.popleft() for _ in range(count)]
            return list(self._in_flight)

    def _run(self) -> None:
        while (chunk := self._take()) is not None:
            self._deliver(chunk)
            with self._cond:
                self._in_flight = []
                dropped = 0
                if not self._waiting:
                    dropped, self._dropped_in_stall = self._dropped_in_stall, 0
                self._cond.notify_all()
            if dropped:
                log.warning("%s: buffer drained; %d oldest messages were dropped while the store was stalled",
                            self._name, dropped)

    def _deliver(self, chunk: list[RawMessage]) -> None:
        """Hand ``chunk`` over until it is durable, split it if the store refuses it, or give up on stop."""
        delay = self._retry_min_s
        failing = False
        while True:
            error = self._attempt(chunk)
            if error is None:
                with self._cond:
                    self._counts["delivered"] += len(chunk)
                if failing:
                    log.warning("%s: the store takes messages again", self._name)
                return
            if not isinstance(error, RetryLater):
                self._refuse(chunk, error)
                return
            with self._cond:
                self._counts["retries"] += 1
                gave_up = self._gave_up
            if gave_up:
                return  # stop() stopped waiting; it counted and logged these as not stored
            if not failing:
                log.warning("%s: %d messages not stored yet (%s); kept, retrying", self._name, len(chunk), error)
            failing = True
            self._wake.wait(delay)
            delay = min(delay * 2, self._retry_max_s)

    def _attempt(self, chunk: list[RawMessage]) -> BaseException | None:
        """Hand ``chunk`` to the sink and wait for its future: None if durable, else the error."""
        try:
            future: Future[Any] = self._sink(chunk)
        except RetryLater as exc:
            return exc
        except Exception as exc:
            with self._cond:
                self._counts["handler_errors"] += 1
            log.exception("%s: the sink raised on %d messages", self._name, len(chunk))
            return exc
        try:
            future.result()
        except CancelledError:
            return RetryLater("the write was cancelled")
        except Exception as exc:
            return exc
        return None

    def _refuse(self, chunk: list[RawMessage], error: BaseException) -> None:
        if len(chunk) > 1:
            log.warning("%s: the store refused %d messages (%s); handing them over one by one",
                        self._name, len(chunk), error)
            for message in chunk:
                self._deliver([message])
            return
        (message,) = chunk
        reason = f"{type(error).__name__}: {error}"
        with self._cond:
            self._counts["refused"] += 1
            self._refused.append(RefusedMessage(message, reason))
        log.error("%s: the store refused a message for good (%s); not retried. %s at %d ms, payload %r",
                  self._name, reason, message.topic, message.received_ms, message.payload[:200])
