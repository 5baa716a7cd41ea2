"""Receipts of MQTT messages stamped with their receive time, so that a copy sent again gets the same time.

Readings are idempotent on ``(sensor, quantity, ts)``; that only helps a message without device time if
its second copy gets the first copy's receive time. Every QoS 1/2 message stamped with the receive time
leaves a receipt ``(source, packet id, SHA-256 of topic + NUL + payload, receive time)``:

- while its batch waits for the store writer, in memory here (:class:`ReceiptBook`): a copy the broker
  sends again before the first copy's commit (a dropped connection while a commit is slow or retried)
  finds it;
- once committed, in the store (``mqtt_packet_receipts``, one row per source and packet id: the table
  never holds more than 65,535 rows per source and needs no pruning), in the same transaction as the
  readings.

A copy is looked up when it carries the DUP flag (it is then given the receipt's time), or when the
MQTT source marks it ``replayed`` (only to count it as a possible duplicate: a replayed message may be
new, see ``collector._stamping``). Only a receipt with the same packet id *and* the same content
counts, and the store ignores one followed by ``RECEIPT_SEQ_WINDOW`` or more messages of its source
(the packet id has come round since, so it belongs to an earlier message).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from collector.records import MqttReceipt

__all__ = ["ReceiptBook", "ReceiptLookup", "message_digest"]

ReceiptLookup = Callable[[str, int, bytes], "int | None"]
"""``(source, packet id, digest) -> receive time`` of a committed receipt, or None (``SqliteStore.receipt_time``)."""

_Key = tuple[str, int]


def message_digest(topic: str, payload: bytes) -> bytes:
    """SHA-256 of the topic, a NUL byte (never part of a topic) and the payload: a receipt's message identity."""
    return hashlib.sha256(topic.encode("utf-8") + b"\0" + payload).digest()


class ReceiptBook:
    """Receipts handed to the store writer and not yet committed, in front of the store's own.

    Thread-safe: each MQTT source's network thread uses it, and commit callbacks run in the writer's.

    Args:
        lookup: finds a committed receipt (None: only uncommitted ones are known).
    """

    def __init__(self, lookup: ReceiptLookup | None) -> None:
        self._lookup = lookup
        self._lock = threading.Lock()
        self._pending: dict[_Key, MqttReceipt] = {}  # newest uncommitted receipt per source and packet id
        self._distrusted: set[str] = set()  # sources whose current replay run met a message without receipt

    def find(self, source: str, mid: int, digest: bytes) -> int | None:
        """The first receive time of the message with this packet id and content, or None.

        Raises:
            Exception: whatever the store lookup raises (the caller counts it and stamps anew).
        """
        with self._lock:
            pending = self._pending.get((source, mid))
        if pending is not None and pending.digest == digest:
            return pending.received_ms
        if self._lookup is None:
            return None
        return self._lookup(source, mid, digest)

    def hold(self, receipts: Iterable[MqttReceipt], future: Future[object] | None) -> None:
        """Keep ``receipts`` (of a batch just submitted) until ``future`` is done; None: the submit failed.

        Once the batch is committed the store has them; if it failed for good its messages were not
        stored, so a copy sent again is new to the store and may get a new time.
        """
        receipts = list(receipts)
        if not receipts or future is None:
            return
        with self._lock:
            for receipt in receipts:
                self._pending[(receipt.source, receipt.mid)] = receipt
        future.add_done_callback(lambda _: self._release(receipts))

    def _release(self, receipts: list[MqttReceipt]) -> None:
        with self._lock:
            for receipt in receipts:
                key = (receipt.source, receipt.mid)
                if self._pending.get(key) is receipt:  # not replaced by a newer message with this packet id
                    del self._pending[key]

    def pending(self) -> int:
        """Receipts waiting for their commit (a gauge for tests and status)."""
        with self._lock:
            return len(self._pending)
