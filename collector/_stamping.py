"""Which time a reading gets: the device's own when plausible, else the receive time, the same every time.

- A device's own time is used when plausible: at most ``MAX_DEVICE_AGE_MS`` (7 days) before the receive
  time and at most ``MAX_DEVICE_SKEW_MS`` (5 minutes) ahead.
- Otherwise the receive time, moved 1 ms past the sensor's previous one when two messages of a sensor
  share a millisecond (a backlog delivered in a burst must not collapse into one idempotency key).
- A QoS 1/2 MQTT message sent again with the DUP flag gets its first copy's time from its receipt
  (``collector.receipts``), so its readings hit their idempotent keys. A message the source marks
  ``replayed`` (a resend without DUP after a broker crash, or a *new* message that reuses a lost
  message's packet id: they cannot be told apart, see ``collector._mqtt_session``) is stamped anew,
  never with an old time: a new reading is never dropped as a duplicate. If a stored receipt matches
  it (same packet id and content), it may be a copy of a reading stored before, and is counted
  ``replayed_possible_duplicates``.

Handing the same message over again (a chunk held back while the writer was full, a refused chunk
split message by message) gives the same decision: it is remembered per message object
(``collector.memo``), so stamps never drift and a receipt lookup is never judged twice differently.
"""

from __future__ import annotations

from typing import NamedTuple

from archmon.domain import RawMessage
from collector._warn_once import WarnOnce
from collector.memo import MessageMemo
from collector.receipts import ReceiptBook, message_digest
from collector.records import Batch, MqttReceipt

__all__ = ["MAX_DEVICE_AGE_MS", "MAX_DEVICE_SKEW_MS", "BatchReceipts", "ReceiveStamp", "Stamper"]

MAX_DEVICE_AGE_MS = 7 * 86_400_000
MAX_DEVICE_SKEW_MS = 5 * 60_000

BatchReceipts = dict[tuple[str, int], MqttReceipt]
"""Receipts of the batch being built, by source and packet id (a copy later in the same batch finds them)."""


class ReceiveStamp(NamedTuple):
    """What was decided about one message's receive time (kept for as long as the message lives).

    Attributes:
        received_ms: the time its readings without device time get.
        restamped: a copy with DUP, given its first copy's time.
        possible_duplicate: replayed without DUP and matching a stored message: stamped anew, so perhaps
            stored a second time.
        lookup_failed: the receipt lookup raised (stamped anew; perhaps stored twice).
    """

    received_ms: int
    restamped: bool = False
    possible_duplicate: bool = False
    lookup_failed: bool = False


class Stamper:
    """The stamping state shared by every source: the last receive time per sensor, the remembered stamps.

    Args:
        receipts: receipts of MQTT messages (uncommitted ones, then the store's).
        warn: the pipeline's warn-once log.
    """

    def __init__(self, receipts: ReceiptBook, warn: WarnOnce) -> None:
        self._receipts = receipts
        self._warn = warn
        self._last_receive_ms: dict[str, int] = {}
        self._stamps: MessageMemo[ReceiveStamp] = MessageMemo()

    @staticmethod
    def plausible_device_time(device_ts: int | None, received_ms: int, now_ms: int) -> int | None:
        """``device_ts`` if it is a plausible time for a message received at ``received_ms``, else None."""
        if device_ts is None:
            return None
        if received_ms - MAX_DEVICE_AGE_MS <= device_ts <= max(received_ms, now_ms) + MAX_DEVICE_SKEW_MS:
            return int(device_ts)
        return None

    def receive_time(self, message: RawMessage, batch: Batch, sensor: str, receipts: BatchReceipts | None) -> int:
        """The time for ``message``'s readings without device time (see the module docstring).

        A QoS 1/2 MQTT message (``receipts`` given) also leaves its receipt in ``batch`` and ``receipts``;
        the decision's counters go into ``batch``.
        """
        if message.mid is None or receipts is None:
            return self._stamps.get(message, sensor, lambda: ReceiveStamp(self._distinct(message, sensor))).received_ms
        source, mid = message.source, message.mid
        digest = message_digest(message.topic, message.payload)
        earlier = receipts.get((source, mid))  # a copy earlier in the same batch
        in_batch = earlier.received_ms if earlier is not None and earlier.digest == digest else None
        stamp = self._stamps.get(message, sensor, lambda: self._decide(message, sensor, digest, in_batch))
        if stamp.restamped:
            batch.count("redelivered_restamped")
        if stamp.possible_duplicate:
            batch.count("replayed_possible_duplicates")
            batch.count(f"source.{source}.replayed_possible_duplicates")
        if stamp.lookup_failed:
            batch.count("receipt_lookup_errors")
        receipt = MqttReceipt(source, mid, digest, stamp.received_ms)
        receipts[(source, mid)] = receipt
        batch.receipts.append(receipt)
        return stamp.received_ms

    def _decide(self, message: RawMessage, sensor: str, digest: bytes, in_batch: int | None) -> ReceiveStamp:
        """The first handling's decision (runs under the memo's lock, once per message and sensor)."""
        assert message.mid is not None
        if not (message.dup or message.replayed):
            return ReceiveStamp(self._distinct(message, sensor))
        found, failed = in_batch, False
        if found is None:
            try:
                found = self._receipts.find(message.source, message.mid, digest)
            except Exception as exc:  # a failed lookup costs at worst a duplicate, never the message
                failed = True
                self._warn("receipt", message.source,
                           "cannot look up the receipt of redelivered message %d on %s (%s: %s); stamped with the "
                           "receive time, so it may be stored twice", message.mid, message.source,
                           type(exc).__name__, exc)
        if message.dup and found is not None:
            return ReceiveStamp(found, restamped=True)
        if found is not None:  # replayed: a resend, or a new message under a lost one's packet id
            self._warn("replay", message.source,
                       "%s sent messages again without the DUP flag after a broker restart (Mosquitto restored "
                       "from an older save): they cannot be told from new messages under reused packet ids, so "
                       "they are stored anew and may be stored twice (counted replayed_possible_duplicates)",
                       message.source)
        return ReceiveStamp(self._distinct(message, sensor), possible_duplicate=found is not None, lookup_failed=failed)

    def _distinct(self, message: RawMessage, sensor: str) -> int:
        """The receive time, moved 1 ms past the sensor's previous one if needed (under the memo's lock)."""
        received_ms = message.received_ms
        last = self._last_receive_ms.get(sensor, 0)
        if received_ms <= last:
            received_ms = last + 1
        self._last_receive_ms[sensor] = received_ms
        return received_ms
