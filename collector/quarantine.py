"""What the pipeline keeps of bad input: a bounded quarantine, and the readings of unassigned devices.

A rejected message is kept (``QuarantineRecord``) with its source, topic, stage and reason, and at most
``storage.quarantine_payload_max_bytes`` of its payload, with the payload's full size and SHA-256 (so
two copies of a large payload can be told apart, and a kept prefix checked against the device's log).
A source that floods the quarantine (a device sending garbage many times a second) keeps at most
``storage.quarantine_per_source_per_minute`` records a minute (a token bucket: bursts up to that many,
then one every ``60 / n`` seconds); the others are counted ``quarantine_suppressed`` (and per source
``source.<id>.quarantine_suppressed``) and logged once per flood. So garbage costs a bounded amount of
disk per source and retention period, whatever it sends. A message handed over again (a chunk the
store could not take) gets the decision it got the first time, and takes no second token.

Unassigned devices (a subscription's format decodes them, no sensor claims them) are validated like
configured sensors: the values they would give are listed as ``readings``, those that fail validation as
``rejected`` with the reason; JSON never holds ``NaN`` or ``Infinity`` (a bad value is kept as text).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Sequence

from archmon.domain import RawMessage
from collector.memo import MessageMemo
from collector.records import Batch, QuarantineRecord
from collector.values import checked_value
from devices.decoded import DecodedValue

__all__ = ["QuarantineKeeper", "unassigned_readings_json"]

log = logging.getLogger(__name__)

def _json_number(value: object) -> object:
    """A value as JSON can hold it: finite numbers as numbers, anything else as its text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return value
    return repr(value) if not isinstance(value, str) else value


def unassigned_readings_json(values: Sequence[DecodedValue], availability: str | None, batch: Batch) -> str:
    """What an unassigned device's message would give: ``{"readings": [...], "rejected": [...]}`` as JSON.

    Each reading is ``{"quantity", "value", "unit", "ts_ms"}`` (validated as for a configured sensor); each
    rejected value ``{"quantity", "value", "reason"}``, the value as text when it is not a finite number.
    ``"availability"`` is added for an availability message. Rejected values are counted ``rejected``.
    """
    readings: list[dict[str, object]] = []
    rejected: list[dict[str, object]] = []
    for item in values:
        try:
            value = checked_value(item.quantity, item.value, batch)
        except ValueError as exc:
            batch.count("rejected")
            rejected.append({"quantity": item.quantity, "value": _json_number(item.value), "reason": str(exc)})
            continue
        readings.append({"quantity": item.quantity, "value": value, "unit": item.unit, "ts_ms": item.ts_ms})
    out: dict[str, object] = {"readings": readings, "rejected": rejected}
    if availability:
        out["availability"] = availability
    return json.dumps(out, allow_nan=False, ensure_ascii=False)


class QuarantineKeeper:
    """Builds quarantine records with a bounded payload, and limits how many one source keeps.

    Args:
        payload_max_bytes: most payload bytes kept per record.
        per_source_per_minute: records a source keeps per minute (burst as large).
    """

    def __init__(self, *, payload_max_bytes: int, per_source_per_minute: int) -> None:
        self.payload_max_bytes = payload_max_bytes
        self._rate_per_ms = per_source_per_minute / 60_000
        self._burst = float(per_source_per_minute)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, int]] = {}  # source -> (tokens, as of received_ms)
        self._flooding: set[str] = set()
        self._decided: MessageMemo[bool] = MessageMemo()

    def keep(self, batch: Batch, message: RawMessage, reason: str, stage: str, sensor: str | None) -> bool:
        """Add a quarantine record for ``message`` to ``batch`` unless its source is flooding; True if kept.

        The same message object handed over again gets the same decision without taking a token.
        """
        if not self._decided.get(message, (stage, sensor, reason),
                                 lambda: self._take(message.source, message.received_ms)):
            batch.count("quarantine_suppressed")
            batch.count(f"source.{message.source}.quarantine_suppressed")
            if message.source not in self._flooding:
                self._flooding.add(message.source)
                log.warning("source %s floods the quarantine (more than %d rejects a minute, e.g. %s); further "
                            "rejects are counted as quarantine_suppressed, not kept", message.source,
                            int(self._burst), reason)
            return False
        self._flooding.discard(message.source)
        payload = message.payload
        batch.count("quarantined")
        batch.quarantine.append(QuarantineRecord(
            message.received_ms, message.source, message.topic, payload[: self.payload_max_bytes], reason, stage,
            sensor, payload_size=len(payload), payload_sha256=hashlib.sha256(payload).digest(),
        ))
        return True

    def bounded(self, payload: bytes) -> bytes:
        """The part of ``payload`` that is kept (unassigned devices' last payload)."""
        return payload[: self.payload_max_bytes]

    def _take(self, source: str, now_ms: int) -> bool:
        with self._lock:
            tokens, since = self._buckets.get(source, (self._burst, now_ms))
            tokens = min(self._burst, tokens + max(0, now_ms - since) * self._rate_per_ms)
            if tokens < 1.0:
                self._buckets[source] = (tokens, max(since, now_ms))
                return False
            self._buckets[source] = (tokens - 1.0, max(since, now_ms))
            return True
