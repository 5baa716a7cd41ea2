"""Acknowledgement bookkeeping for ``collector.mqtt``: which PUBACKs to send, from which thread, and when not to.

A message is acknowledged only once its readings are durable; the future that says so resolves in
whatever thread commits (usually the store writer's). Each PUBACK is handed to paho with ``Client.ack``,
which appends it to paho's outgoing queue and wakes the network thread. Waking it once per message
costs a thread switch each, so only the first acknowledgement of a run is sent by the resolving thread;
the ones resolved while the network thread has not yet run are queued here and sent by it at the end
of its loop pass (:meth:`AckSender.flush`).

An acknowledgement is skipped when the message came on an earlier connection: the broker sends that
message again on the new connection (maybe under the same packet id, which may by then name another
message), and the new copy is acknowledged when it is durable.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

import paho.mqtt.client as mqtt

from archmon.domain import RawMessage

__all__ = ["AckCount", "AckSender", "Delivery"]

_LOG = logging.getLogger(__name__)


class Delivery(NamedTuple):
    """One received PUBLISH as the source keeps it until it is acknowledged (or given up).

    Attributes:
        message: what the pipeline gets.
        mid: the packet id (0 for QoS 0).
        qos: the QoS it was delivered with.
        generation: the source's connection counter when it arrived; an ack must match the current one.
        seq: its arrival number (``ChunkFeeder`` keeps QoS 0 deliveries apart and merges them back in order).
    """

    message: RawMessage
    mid: int
    qos: int
    generation: int
    seq: int = 0


class AckCount(NamedTuple):
    """How acknowledgements went: ``sent`` handed to paho, ``skipped`` (earlier connection or paho refused),
    ``qos0`` needed none."""

    sent: int = 0
    skipped: int = 0
    qos0: int = 0

    @property
    def settled(self) -> int:
        """Deliveries no longer pending."""
        return self.sent + self.skipped + self.qos0


class AckSender:
    """Sends PUBACKs for durable deliveries, batching the cross-thread wake-ups (see the module docstring).

    Args:
        client: the paho client (its ``ack`` is thread-safe).
        generation: returns the source's current connection counter.
        name: the source's name, for logs.
    """

    def __init__(self, client: mqtt.Client, generation: Callable[[], int], name: str) -> None:
        self._client = client
        self._generation = generation
        self._name = name
        self._lock = threading.Lock()
        self._queued: deque[Delivery] = deque()  # waiting for the network thread
        self._woken = False  # the network thread was woken and will send what is queued

    def durable(self, deliveries: Iterable[Delivery]) -> AckCount:
        """Acknowledge ``deliveries`` (any thread), in order: the first sent at once, the rest queued behind it.

        Returns:
            What was sent or skipped now; queued ones are counted by the :meth:`flush` that sends them.
        """
        sent = skipped = qos0 = 0
        with self._lock:
            for delivery in deliveries:
                if delivery.qos == 0:
                    qos0 += 1
                elif self._woken:  # the network thread will send it with the others
                    self._queued.append(delivery)
                else:
                    # Sending this one wakes the network thread, which sends whatever queues up behind it.
                    # Marked first: the woken thread may run its whole loop pass before this thread goes on,
                    # and its flush must then wait for this lock and send the rest, not find nothing to do
                    # (the rest would wait for its next pass, up to a second later when nothing else comes).
                    self._woken = True
                    ok = self._ack(delivery)
                    sent += ok
                    skipped += not ok
                    self._woken = ok
        return AckCount(sent, skipped, qos0)

    def flush(self) -> AckCount:
        """Send the queued acknowledgements (network thread, at the end of each loop pass; and on stop)."""
        sent = skipped = 0
        with self._lock:
            if not self._woken:
                return AckCount()
            while self._queued:
                ok = self._ack(self._queued.popleft())
                sent += ok
                skipped += not ok
            self._woken = False
        return AckCount(sent, skipped)

    def _ack(self, delivery: Delivery) -> bool:
        """Hand one PUBACK to paho; False if skipped (an earlier connection) or refused by paho."""
        if delivery.generation != self._generation():
            _LOG.debug("%s: mid %d came on an earlier connection; not acknowledged", self._name, delivery.mid)
            return False
        result = self._client.ack(delivery.mid, delivery.qos)
        if result == mqtt.MQTT_ERR_SUCCESS:
            return True
        _LOG.debug("%s: ack of mid %d failed: %s", self._name, delivery.mid, mqtt.error_string(result))
        return False
