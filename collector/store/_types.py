"""Value types returned by the store's read API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from archmon import sqlite as archmon_sqlite
from archmon.errors import ArchmonError

__all__ = ["Bucket", "LatestValue", "RoomAssignment", "SchemaError", "StoredQuarantine", "UnassignedDevice"]


class SchemaError(ArchmonError, archmon_sqlite.SchemaError):
    """The database file is not an archmon store, or was written by a newer archmon."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregate of one series over one hour (UTC) or one calendar day (site time zone).

    Attributes:
        start_ms: UTC epoch ms of the bucket start (for days: local midnight in the site's zone).
        min: smallest value; max: largest value.
        sum: sum of values; count: number of readings.
    """

    start_ms: int
    min: float
    max: float
    sum: float
    count: int

    @property
    def mean(self) -> float:
        """Arithmetic mean of the bucket's readings."""
        return self.sum / self.count


class RoomAssignment(NamedTuple):
    """A sensor was in ``room`` from ``from_ms`` (inclusive) to ``to_ms`` (exclusive; None: still is).

    Rollups are per series, not per room: a room-level aggregate over a period must take each sensor's
    buckets only inside its assignments to that room, and split (or go back to raw readings for) the
    buckets an assignment boundary falls into.
    """

    room: str
    from_ms: int
    to_ms: int | None


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The newest stored reading of one series."""

    sensor: str
    quantity: str
    value: float
    ts_ms: int
    room: str = ""


@dataclass(frozen=True, slots=True)
class StoredQuarantine:
    """A quarantined message as stored, with its row id.

    Attributes:
        id: row id (increasing: a larger id was stored later).
        received_ms, source, topic, payload, reason, stage, sensor: as in ``QuarantineRecord``; ``payload``
            may be the first bytes only.
        payload_size: size of the whole payload as received.
        payload_sha256: SHA-256 of the whole payload.
        payload_repeats: how many quarantine records had this payload (it is stored once).
    """

    id: int
    received_ms: int
    source: str
    topic: str
    payload: bytes
    reason: str
    stage: str
    sensor: str | None
    payload_size: int = 0
    payload_sha256: bytes = b""
    payload_repeats: int = 1

    @property
    def truncated(self) -> bool:
        """Whether only a prefix of the payload was kept."""
        return self.payload_size > len(self.payload)


@dataclass(frozen=True, slots=True)
class UnassignedDevice:
    """A device that sent data but is not configured as a sensor (a candidate for adoption).

    Attributes:
        source: source id; device_topic: the topic prefix identifying the device.
        format: payload format the device was decoded with.
        first_seen_ms, last_seen_ms: first and last message (UTC epoch ms).
        count: number of messages seen.
        last_payload: raw bytes of the newest message; last_readings_json: what it would give.
    """

    source: str
    device_topic: str
    format: str
    first_seen_ms: int
    last_seen_ms: int
    count: int
    last_payload: bytes
    last_readings_json: str
