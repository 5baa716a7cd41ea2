"""What the pipeline keeps of bad input: a bounded quarantine, and the readings of unassigned devices.

A rejected message is kept (``QuarantineRecord``) with its source, topic, stage and reason, and at most
``storage.quarantine_payload_max_bytes`` of its payload, with the payload's full size and SHA-256 (so
two copies of a large payload can be told apart, and a kept prefix checked against the device's log).
Topic and reason are kept up to ``TEXT_MAX_BYTES`` each (a reason often quotes the bad value).

How much is kept, so that garbage costs a bounded amount of disk whatever a device sends:

- per **device** (the configured sensor the message belongs to; every message of a source that no
  sensor claims shares one allowance, so a client inventing topics gets no more) at most
  ``DEVICE_PER_MINUTE`` records in any 60 s, and per **source** at most
  ``storage.quarantine_per_source_per_minute`` in any 60 s (a sliding window: the limit holds for every
  minute, not only on average). One garbage device therefore never uses up its source's allowance,
  and another sensor's out-of-range value is still kept;
- the others are counted ``quarantine_suppressed`` (and per source ``source.<id>.quarantine_suppressed``)
  and logged once per flood: the first suppressed reject of a source logs one warning, and the flood
  ends only after ``FLOOD_QUIET_MS`` without a suppressed reject, when one line gives the total;
- the store keeps each distinct payload once (by SHA-256, with a repeat count) and holds a byte budget
  per source and day and a ceiling for the whole quarantine (``collector.store._quarantine``).

A message handed over again (a chunk the store could not take) gets the decision it got the first
time, and takes no second place in any window.

Unassigned devices (a subscription's format decodes them, no sensor claims them) are validated like
configured sensors: the values they would give are listed as ``readings``, those that fail validation as
``rejected`` with the reason; JSON never holds ``NaN`` or ``Infinity`` (a bad value is kept as text, cut
to ``UNASSIGNED_TEXT_MAX_CHARS``). Their last payload is kept up to ``UNASSIGNED_PAYLOAD_MAX_BYTES``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from archmon.domain import RawMessage
from archmon.timeutil import to_iso
from collector.memo import MessageMemo
from collector.records import Batch, QuarantineRecord
from collector.values import checked_value
from devices.decoded import DecodedValue

__all__ = [
    "DEVICE_PER_MINUTE",
    "FLOOD_QUIET_MS",
    "TEXT_MAX_BYTES",
    "UNASSIGNED_PAYLOAD_MAX_BYTES",
    "QuarantineKeeper",
    "RateWindow",
    "cut_text",
    "shown",
    "unassigned_readings_json",
]

log = logging.getLogger(__name__)

TEXT_MAX_BYTES = 1024
"""Most UTF-8 bytes of a quarantined message's topic, and of its reason, that are kept."""
UNASSIGNED_PAYLOAD_MAX_BYTES = 1024
"""Most bytes of an unassigned device's last payload that are kept."""
UNASSIGNED_TEXT_MAX_CHARS = 80
"""Most characters of a rejected value's text in an unassigned device's ``readings_json``."""
DEVICE_PER_MINUTE = 10
"""Quarantine records one device keeps in any 60 s (never more than its source's limit)."""
FLOOD_QUIET_MS = 10 * 60_000
"""A source's flood of suppressed rejects ends after this long without one."""
WINDOW_MS = 60_000
LOG_TEXT_MAX_BYTES = 200


def shown(text: str) -> str:
    """Device text as a log line shows it: at most ``LOG_TEXT_MAX_BYTES`` (the formatter escapes controls)."""
    return cut_text(text, LOG_TEXT_MAX_BYTES)


def cut_text(text: str, max_bytes: int) -> str:
    """``text`` if its UTF-8 fits in ``max_bytes``, else its beginning and ``… (N bytes)``."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text
    suffix = f"… ({len(data)} bytes)"
    return data[: max(0, max_bytes - len(suffix.encode()))].decode("utf-8", "ignore") + suffix


def _json_number(value: object) -> object:
    """A value as JSON can hold it: finite numbers as numbers, anything else as its (cut) text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= UNASSIGNED_TEXT_MAX_CHARS else text[:UNASSIGNED_TEXT_MAX_CHARS] + "…"


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
            rejected.append({"quantity": item.quantity, "value": _json_number(item.value),
                             "reason": cut_text(str(exc), 4 * UNASSIGNED_TEXT_MAX_CHARS)})
            continue
        readings.append({"quantity": item.quantity, "value": value, "unit": item.unit, "ts_ms": item.ts_ms})
    out: dict[str, object] = {"readings": readings, "rejected": rejected}
    if availability:
        out["availability"] = availability
    return json.dumps(out, allow_nan=False, ensure_ascii=False)


@dataclass(slots=True)
class RateWindow:
    """At most ``limit`` events in any ``WINDOW_MS``: the times of the latest ones (a sliding log).

    Times may come slightly out of order (several sources' clocks); each counts as no earlier than the
    latest one seen, so the window only moves forward.
    """

    limit: int
    times: deque[int] = field(default_factory=deque)

    def has_room(self, now_ms: int) -> bool:
        """Whether one more event at ``now_ms`` stays within the limit."""
        times = self.times
        if times:
            now_ms = max(now_ms, times[-1])
        while times and times[0] <= now_ms - WINDOW_MS:
            times.popleft()
        return len(times) < self.limit

    def take(self, now_ms: int) -> None:
        """Count one event at ``now_ms`` (after :meth:`has_room` said yes)."""
        self.times.append(max(now_ms, self.times[-1]) if self.times else now_ms)


@dataclass(slots=True)
class _Flood:
    """A source whose rejects are being suppressed, since ``since_ms``; the latest at ``last_ms``."""

    since_ms: int
    last_ms: int
    suppressed: int = 0


class QuarantineKeeper:
    """Builds quarantine records with bounded text and payload, and limits how many a device and a source keep.

    Args:
        payload_max_bytes: most payload bytes kept per record.
        per_source_per_minute: records a source keeps in any 60 s.
    """

    def __init__(self, *, payload_max_bytes: int, per_source_per_minute: int) -> None:
        self.payload_max_bytes = payload_max_bytes
        self.per_source_per_minute = per_source_per_minute
        self.per_device_per_minute = min(DEVICE_PER_MINUTE, per_source_per_minute)
        self._lock = threading.Lock()
        self._sources: dict[str, RateWindow] = {}
        self._devices: dict[tuple[str, str | None], RateWindow] = {}  # (source, sensor id or None: unclaimed)
        self._floods: dict[str, _Flood] = {}
        self._decided: MessageMemo[bool] = MessageMemo()

    def keep(self, batch: Batch, message: RawMessage, reason: str, stage: str, sensor: str | None) -> bool:
        """Add a quarantine record for ``message`` to ``batch`` unless its device or source is flooding.

        The same message object handed over again gets the same decision without taking a place again.

        Returns:
            Whether the record was kept (False: counted ``quarantine_suppressed``).
        """
        self._floods_over(message.received_ms)
        if not self._decided.get(message, (stage, sensor, reason), lambda: self._take(message, sensor, reason)):
            batch.count("quarantine_suppressed")
            batch.count(f"source.{message.source}.quarantine_suppressed")
            return False
        payload = message.payload
        batch.count("quarantined")
        batch.quarantine.append(QuarantineRecord(
            message.received_ms, message.source, cut_text(message.topic, TEXT_MAX_BYTES),
            payload[: self.payload_max_bytes], cut_text(reason, TEXT_MAX_BYTES), stage, sensor,
            payload_size=len(payload), payload_sha256=hashlib.sha256(payload).digest(),
        ))
        return True

    def unassigned_payload(self, payload: bytes) -> bytes:
        """The part of an unassigned device's last payload that is kept."""
        return payload[:UNASSIGNED_PAYLOAD_MAX_BYTES]

    def _take(self, message: RawMessage, sensor: str | None, reason: str) -> bool:
        """Whether ``message``'s reject fits its device's and its source's windows (taking a place if so)."""
        source, now = message.source, message.received_ms
        with self._lock:
            device = self._devices.setdefault((source, sensor), RateWindow(self.per_device_per_minute))
            whole = self._sources.setdefault(source, RateWindow(self.per_source_per_minute))
            device_room, source_room = device.has_room(now), whole.has_room(now)
            if device_room and source_room:
                device.take(now)
                whole.take(now)
                return True
            flood = self._floods.get(source)
            starts = flood is None
            if flood is None:
                flood = self._floods[source] = _Flood(now, now)
            flood.last_ms = max(flood.last_ms, now)
            flood.suppressed += 1
        if starts:
            if not device_room:
                who, limit = f"sensor {sensor}" if sensor else "topics no sensor claims", self.per_device_per_minute
            else:
                who, limit = "all its devices together", self.per_source_per_minute
            log.warning("source %s floods the quarantine (%s: more than %d rejects a minute, e.g. %s); further "
                        "rejects are counted as quarantine_suppressed, not kept, until %d quiet minutes",
                        source, who, limit, shown(reason), FLOOD_QUIET_MS // 60_000)
        return False

    def _floods_over(self, now_ms: int) -> None:
        """End (and log the total of) every flood without a suppressed reject for ``FLOOD_QUIET_MS``."""
        with self._lock:
            over = [(source, flood) for source, flood in self._floods.items()
                    if now_ms - flood.last_ms >= FLOOD_QUIET_MS]
            for source, _ in over:
                del self._floods[source]
        for source, flood in over:
            log.warning("source %s: the quarantine flood is over: %d reject(s) suppressed from %s to %s", source,
                        flood.suppressed, _iso(flood.since_ms), _iso(flood.last_ms))

    def flooding(self) -> dict[str, int]:
        """Sources flooding now, with the rejects suppressed in their flood so far."""
        with self._lock:
            return {source: flood.suppressed for source, flood in self._floods.items()}


def _iso(ts_ms: int) -> str:
    try:
        return to_iso(ts_ms)
    except (OverflowError, OSError, ValueError):
        return str(ts_ms)
