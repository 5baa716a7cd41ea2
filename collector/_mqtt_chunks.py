"""Handing received MQTT messages to the pipeline in chunks, with back-pressure that never blocks paho.

``collector.mqtt`` queues each received PUBLISH here (network thread). :meth:`ChunkFeeder.hand_over`
offers the queue to the batch handler in chunks of at most ``max_chunk``, one call at a time. The
handler returns a future per chunk; when it resolves the chunk is acknowledged (``AckSender``). If the
store refuses a chunk for good, its messages are offered again one by one from a short-lived thread,
so only the bad one is refused (the pipeline quarantines a lone refused QoS 1/2 message, and its
future then resolves: it is acknowledged too).

Back-pressure: a handler that cannot take a chunk now raises ``RetryLater`` at once. The chunk goes
back to the head of the queue, unacknowledged, and is offered again after ``HOLD_RETRY_S``; meanwhile
the network thread goes on serving the connection (keepalive) and the broker stops sending QoS 1/2
messages once its in-flight window is full of unacknowledged ones. Nothing bounds QoS 0 deliveries
that way (many devices publish at QoS 0, and a message is delivered at the lower of the publisher's and
the subscription's QoS), so the queue holds at most ``max_held`` messages: past that, the oldest QoS 0
message is dropped (counted ``qos0_dropped``, logged once per hold). A QoS 0 message is never sent
again by the broker anyway; QoS 1/2 messages are never dropped here.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from archmon.domain import RawMessage
from archmon.errors import RetryLater
from collector._mqtt_acks import AckCount, AckSender, Delivery
from collector.quarantine import shown

__all__ = ["HOLD_RETRY_S", "BatchHandler", "ChunkFeeder", "HeldQueue", "default_max_held", "one_at_a_time"]

_LOG = logging.getLogger(__name__)

HOLD_RETRY_S = 0.1
"""How long a chunk the handler could not take (``RetryLater``) waits before it is offered again."""

BatchHandler = Callable[[Sequence[RawMessage]], "concurrent.futures.Future[Any]"]
Counter = Callable[[str, int], None]


def one_at_a_time(handler: Callable[[RawMessage], concurrent.futures.Future[Any]]) -> BatchHandler:
    """A per-message handler as a batch handler (used with chunks of one message)."""

    def batch(messages: Sequence[RawMessage]) -> concurrent.futures.Future[Any]:
        (message,) = messages
        return handler(message)

    return batch


def default_max_held(max_chunk: int) -> int:
    """Messages a source holds at most while the store cannot take them: two chunks (at least 100)."""
    return max(100, 2 * max_chunk)


class HeldQueue:
    """Received deliveries in arrival order, the QoS 0 ones apart so that the oldest of them can be dropped."""

    def __init__(self) -> None:
        self._acked: deque[Delivery] = deque()  # QoS 1/2: acknowledged once durable, never dropped
        self._qos0: deque[Delivery] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._acked) + len(self._qos0)

    def append(self, delivery: Delivery) -> None:
        """Queue a delivery behind every other."""
        self._seq += 1
        (self._qos0 if delivery.qos == 0 else self._acked).append(delivery._replace(seq=self._seq))

    def take(self, size: int) -> list[Delivery]:
        """The oldest ``size`` deliveries (fewer if fewer are queued), in arrival order."""
        out: list[Delivery] = []
        acked, qos0 = self._acked, self._qos0
        while len(out) < size and (acked or qos0):
            if not qos0 or (acked and acked[0].seq < qos0[0].seq):
                out.append(acked.popleft())
            else:
                out.append(qos0.popleft())
        return out

    def put_back(self, chunk: Sequence[Delivery]) -> None:
        """Return deliveries taken by :meth:`take` (not offered after all) to the head of the queue."""
        for delivery in reversed(chunk):
            (self._qos0 if delivery.qos == 0 else self._acked).appendleft(delivery)

    def drop_oldest_qos0(self) -> Delivery | None:
        """Remove and return the oldest QoS 0 delivery (None if there is none)."""
        return self._qos0.popleft() if self._qos0 else None


class ChunkFeeder:
    """The queue of received messages between paho's network thread and the batch handler.

    Args:
        handler: takes messages, returns one future for them, or raises ``RetryLater`` (store full).
        max_chunk: most messages per handler call.
        acks: acknowledges the messages of a durable chunk.
        count: adds to one of the source's counters (``count(name, delta)``).
        settled: records acknowledgements sent or skipped.
        running: whether the source is still started (a split thread gives up when it is not).
        name: the source's name, for logs.
        max_held: most messages queued while the handler cannot take them (default
            :func:`default_max_held`); past it the oldest QoS 0 ones are dropped.
    """

    def __init__(
        self,
        handler: BatchHandler,
        *,
        max_chunk: int,
        acks: AckSender,
        count: Counter,
        settled: Callable[[AckCount], None],
        running: Callable[[], bool],
        name: str,
        max_held: int | None = None,
    ) -> None:
        self._handler = handler
        self._max_chunk = max_chunk
        self._max_held = default_max_held(max_chunk) if max_held is None else max_held
        self._acks = acks
        self._count = count
        self._settled = settled
        self._running = running
        self._name = name
        self._queue = HeldQueue()  # received, not yet taken by the handler
        self._lock = threading.Lock()  # one handler call at a time (network or split thread)
        self._retry_at = 0.0  # monotonic time before which a held chunk is not offered again
        self._holding = False
        self._dropped_in_hold = 0

    def __len__(self) -> int:
        return len(self._queue)

    def append(self, delivery: Delivery) -> None:
        """Queue a received message; hand the queue over once a chunk is full (unless the store is full)."""
        self._queue.append(delivery)
        if len(self._queue) > self._max_held:
            self._drop_qos0()
        if len(self._queue) >= self._max_chunk and not self._holding:
            self.hand_over()

    def _drop_qos0(self) -> None:
        dropped = self._queue.drop_oldest_qos0()
        if dropped is None:  # only QoS 1/2 held: the broker's in-flight window bounds them
            return
        self._count("qos0_dropped", 1)
        self._count("pending", -1)
        self._dropped_in_hold += 1
        if self._dropped_in_hold == 1:
            _LOG.warning("%s: %d messages held while the store cannot take them: dropping the oldest QoS 0 ones "
                         "(e.g. on %r; a broker never sends QoS 0 again: devices should publish at QoS 1); counted "
                         "qos0_dropped", self._name, self._max_held, shown(dropped.message.topic))

    def due(self) -> bool:
        """Whether something is queued and may be offered now (not waiting after a ``RetryLater``)."""
        return bool(self._queue) and time.monotonic() >= self._retry_at

    def hand_over(self, *, now: bool = False) -> None:
        """Offer the queue in chunks of at most ``max_chunk``; keep the rest if the store is full.

        Args:
            now: offer even while waiting after a ``RetryLater`` (a disconnect, a stop).
        """
        if now:
            self._retry_at = 0.0
        with self._lock:
            while self._queue:
                chunk = self._queue.take(self._max_chunk)
                if not self._offer(chunk):
                    self._queue.put_back(chunk)
                    return

    def _one_by_one(self, chunk: list[Delivery]) -> None:
        """Split thread: offer a refused chunk's messages again, each with its own future."""
        for i, delivery in enumerate(chunk):
            while True:
                with self._lock:
                    if self._offer([delivery]):
                        break
                if not self._running():  # stopping: the broker sends the rest again on the next start
                    self._count("handler_failures", len(chunk) - i)
                    self._count("pending", -(len(chunk) - i))
                    return
                time.sleep(HOLD_RETRY_S)

    def _offer(self, chunk: list[Delivery]) -> bool:
        """Offer ``chunk`` to the handler; False if it cannot take it now (``RetryLater``): keep it."""
        try:
            future = self._handler([delivery.message for delivery in chunk])
            if not isinstance(future, concurrent.futures.Future):
                raise TypeError(f"batch handler returned {type(future).__name__}, not a concurrent.futures.Future")
        except RetryLater as exc:
            self._count("held", 1)
            self._retry_at = time.monotonic() + HOLD_RETRY_S
            if not self._holding:
                self._holding = True
                _LOG.warning("%s: the store cannot take more (%s); holding %d message(s) unacknowledged",
                             self._name, exc, len(chunk) + len(self._queue))
            return False
        except Exception:
            self._count("pending", -len(chunk))
            self._count("handler_errors", len(chunk))
            _LOG.exception("%s: batch handler failed on %d message(s) (first on topic %r); not acknowledged",
                           self._name, len(chunk), shown(chunk[0].message.topic))
            return True
        if self._holding:
            self._holding = False
            dropped, self._dropped_in_hold = self._dropped_in_hold, 0
            _LOG.warning("%s: the store takes messages again%s", self._name,
                         f" ({dropped} QoS 0 message(s) were dropped meanwhile)" if dropped else "")
        self._count("chunks", 1)
        future.add_done_callback(functools.partial(self._durable, chunk))
        return True

    def _durable(self, chunk: list[Delivery], future: concurrent.futures.Future[Any]) -> None:
        """Future callback (any thread): acknowledge the chunk in arrival order, or split a refused one."""
        try:
            error: object = future.exception()
        except concurrent.futures.CancelledError:
            error = "cancelled"
        if error is None:
            self._settled(self._acks.durable(chunk))
            return
        if len(chunk) > 1 and not isinstance(error, RetryLater | str):
            # Refused for good (not a store outage): find the bad message, store and ack the rest.
            self._count("chunk_splits", 1)
            _LOG.warning("%s: store refused a chunk of %d messages (%s); handing them over one by one",
                         self._name, len(chunk), error)
            # Not from the thread resolving the future (the writer's): it must not wait for the writer.
            threading.Thread(target=self._one_by_one, args=(chunk,), name=f"archmon-{self._name}-split",
                             daemon=True).start()
            return
        self._count("pending", -len(chunk))
        self._count("handler_failures", len(chunk))
        _LOG.error("%s: %d message(s) on %r not stored (%s); not acknowledged, the broker will send them again",
                   self._name, len(chunk), shown(chunk[0].message.topic), error)
