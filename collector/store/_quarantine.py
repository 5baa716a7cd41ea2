"""The store's bounded tables of bad input: quarantine records, their payloads, unassigned devices.

Whatever devices send, these tables cost a bounded amount of disk:

- a quarantine record keeps the message's time, source, topic, sensor, stage and reason (topic and reason
  already cut to ``collector.quarantine.TEXT_MAX_BYTES``); its payload prefix is stored **once per
  SHA-256** in ``quarantine_payloads`` with a repeat count (a device sending the same garbage again
  costs one small row, not another 64 KiB);
- ``quarantine_usage`` adds up the bytes each source's records cost per UTC day (their text, and each
  payload the first time it is stored). A record that would take its source past
  ``QuarantineLimits.bytes_per_source_per_day``, or the whole quarantine past ``bytes_total``, is not
  stored: counted ``quarantine_suppressed`` and ``quarantine_over_budget`` (and per source), logged once
  per source and day. Retention frees the days it deletes;
- ``unassigned`` keeps one row per source and device topic, at most
  ``QuarantineLimits.unassigned_per_source`` per source (a new device past that is counted
  ``unassigned_suppressed``, logged once per source), and rows not seen within the quarantine
  retention are deleted with it.

Records written by earlier versions keep their payload in ``quarantine.payload`` and are read as they
are; an older archmon reading a newer file sees an empty payload for newer records.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.records import QuarantineRecord, UnassignedRecord
from collector.store._types import StoredQuarantine

__all__ = [
    "QUARANTINE_DDL",
    "QuarantineLimits",
    "QuarantineWriter",
    "expire_bad_input",
    "read_quarantine",
]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
ROW_BYTES = 100
"""What a quarantine record costs besides its text (row, index entries), for the byte budget."""

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine_payloads (
    sha256 BLOB PRIMARY KEY,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    count INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS quarantine_payloads_last ON quarantine_payloads (last_ms);
CREATE TABLE IF NOT EXISTS quarantine_usage (
    day_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (day_ms, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS unassigned_last_seen ON unassigned (last_seen_ms)
"""


@dataclass(frozen=True, slots=True)
class QuarantineLimits:
    """How much bad input the store keeps (see the module docstring).

    Attributes:
        bytes_per_source_per_day: quarantine bytes one source may add per UTC day.
        bytes_total: quarantine bytes the store holds at most (all sources, all retained days).
        unassigned_per_source: unassigned device rows per source.
    """

    bytes_per_source_per_day: int = 8 * 1024 * 1024
    bytes_total: int = 1024 * 1024 * 1024
    unassigned_per_source: int = 1000


_INSERT_RECORD = (
    "INSERT INTO quarantine (received_ms, source, topic, sensor, stage, reason, payload, payload_size, payload_sha256)"
    " VALUES (?, ?, ?, ?, ?, ?, x'', ?, ?)"
)
_UPSERT_PAYLOAD = """
INSERT INTO quarantine_payloads (sha256, payload, size, first_ms, last_ms, count) VALUES (?, ?, ?, ?, ?, 1)
ON CONFLICT (sha256) DO UPDATE SET count = count + 1, first_ms = min(first_ms, excluded.first_ms),
    last_ms = max(last_ms, excluded.last_ms)
"""
_SET_USAGE = (
    "INSERT INTO quarantine_usage (day_ms, source, bytes) VALUES (?, ?, ?)"
    " ON CONFLICT (day_ms, source) DO UPDATE SET bytes = excluded.bytes"
)
_UPDATE_UNASSIGNED = """
UPDATE unassigned SET
    first_seen_ms = min(first_seen_ms, :ts),
    count = count + 1,
    format = CASE WHEN :ts >= last_seen_ms THEN :format ELSE format END,
    last_payload = CASE WHEN :ts >= last_seen_ms THEN :payload ELSE last_payload END,
    last_readings_json = CASE WHEN :ts >= last_seen_ms THEN :json ELSE last_readings_json END,
    last_seen_ms = max(last_seen_ms, :ts)
WHERE source = :source AND device_topic = :topic
"""
_INSERT_UNASSIGNED = (
    "INSERT INTO unassigned (source, device_topic, format, first_seen_ms, last_seen_ms, count, last_payload,"
    " last_readings_json) VALUES (:source, :topic, :format, :ts, :ts, 1, :payload, :json)"
)


def _add(counters: dict[str, int], name: str, delta: int = 1) -> None:
    counters[name] = counters.get(name, 0) + delta


@dataclass
class QuarantineWriter:
    """Writes quarantine records and unassigned devices within their limits; remembers what it warned about.

    One per store (its warnings are once per source and day, or once per source).
    """

    limits: QuarantineLimits = QuarantineLimits()
    _warned_days: set[tuple[int, str]] = field(default_factory=set)
    _warned_total: bool = False
    _warned_unassigned: set[str] = field(default_factory=set)

    def write_quarantine(self, cur: sqlite3.Cursor, records: Sequence[QuarantineRecord],
                         counters: dict[str, int]) -> None:
        """Store ``records`` that fit the byte budget (inside the caller's transaction); count the others."""
        if not records:
            return
        total = int(cur.execute("SELECT coalesce(sum(bytes), 0) FROM quarantine_usage").fetchone()[0])
        usage: dict[tuple[int, str], int] = {}
        stored: set[bytes] = set()
        for q in records:
            payload = bytes(q.payload)
            digest = hashlib.sha256(payload).digest() if q.payload_sha256 is None else bytes(q.payload_sha256)
            size = len(payload) if q.payload_size is None else q.payload_size
            key = (q.received_ms - q.received_ms % DAY_MS, q.source)
            if key not in usage:
                row = cur.execute("SELECT bytes FROM quarantine_usage WHERE day_ms = ? AND source = ?", key).fetchone()
                usage[key] = 0 if row is None else int(row[0])
            known = digest in stored or cur.execute(
                "SELECT 1 FROM quarantine_payloads WHERE sha256 = ?", (digest,)).fetchone() is not None
            cost = ROW_BYTES + sum(len(text.encode("utf-8", "replace")) for text in (q.topic, q.reason, q.sensor or ""))
            cost += 0 if known else len(payload)
            if usage[key] + cost > self.limits.bytes_per_source_per_day or total + cost > self.limits.bytes_total:
                self._over_budget(q, key, total + cost > self.limits.bytes_total, counters)
                continue
            cur.execute(_INSERT_RECORD, (q.received_ms, q.source, q.topic, q.sensor, q.stage, q.reason, size, digest))
            cur.execute(_UPSERT_PAYLOAD, (digest, payload, size, q.received_ms, q.received_ms))
            stored.add(digest)
            usage[key] += cost
            total += cost
        cur.executemany(_SET_USAGE, [(day, source, used) for (day, source), used in usage.items()])

    def _over_budget(self, q: QuarantineRecord, key: tuple[int, str], whole: bool, counters: dict[str, int]) -> None:
        _add(counters, "quarantined", -1)
        for name in ("quarantine_suppressed", "quarantine_over_budget"):
            _add(counters, name)
            _add(counters, f"source.{q.source}.{name}")
        if whole and not self._warned_total:
            self._warned_total = True
            log.warning("store: the quarantine holds %d bytes, its ceiling: further rejects are counted "
                        "(quarantine_over_budget), not kept, until retention frees room", self.limits.bytes_total)
        elif not whole and key not in self._warned_days:
            self._warned_days = {k for k in self._warned_days if k[0] >= key[0]} | {key}
            log.warning("store: source %s used its quarantine budget of %d bytes for the day; its further rejects "
                        "that day are counted (quarantine_over_budget), not kept", q.source,
                        self.limits.bytes_per_source_per_day)

    def write_unassigned(self, cur: sqlite3.Cursor, records: Sequence[UnassignedRecord],
                         counters: dict[str, int]) -> None:
        """Update or add the rows of unassigned devices (a new one past the per-source cap is counted)."""
        rows: dict[str, int] = {}
        for u in records:
            values = {"source": u.source, "topic": u.device_topic, "format": u.format, "ts": u.received_ms,
                      "payload": bytes(u.payload), "json": u.readings_json}
            if cur.execute(_UPDATE_UNASSIGNED, values).rowcount:
                continue
            if u.source not in rows:
                rows[u.source] = int(cur.execute("SELECT count(*) FROM unassigned WHERE source = ?",
                                                 (u.source,)).fetchone()[0])
            if rows[u.source] >= self.limits.unassigned_per_source:
                _add(counters, "unassigned_suppressed")
                _add(counters, f"source.{u.source}.unassigned_suppressed")
                if u.source not in self._warned_unassigned:
                    self._warned_unassigned.add(u.source)
                    log.warning("store: source %s lists %d unassigned devices, the most it keeps; further new ones "
                                "are counted (unassigned_suppressed), not listed", u.source,
                                self.limits.unassigned_per_source)
                continue
            cur.execute(_INSERT_UNASSIGNED, values)
            rows[u.source] += 1


def expire_bad_input(conn: sqlite3.Connection, cutoff_ms: int) -> tuple[int, int]:
    """Delete quarantine records and unassigned devices older than ``cutoff_ms`` (and what only they used).

    Returns:
        ``(quarantine records, unassigned devices)`` deleted.
    """
    records = conn.execute("DELETE FROM quarantine WHERE received_ms < ?", (cutoff_ms,)).rowcount
    conn.execute("DELETE FROM quarantine_payloads WHERE last_ms < ?", (cutoff_ms,))
    conn.execute("DELETE FROM quarantine_usage WHERE day_ms + ? <= ?", (DAY_MS, cutoff_ms))
    devices = conn.execute("DELETE FROM unassigned WHERE last_seen_ms < ?", (cutoff_ms,)).rowcount
    return records, devices


def read_quarantine(conn: sqlite3.Connection, limit: int, *, columns: set[str], payloads: bool
                    ) -> list[StoredQuarantine]:
    """The newest ``limit`` records, newest first, with their payload from wherever it is kept.

    Args:
        columns: the ``quarantine`` table's columns (older files lack ``payload_size``/``payload_sha256``).
        payloads: the file has ``quarantine_payloads``.
    """
    digests = "payload_sha256" in columns
    sql = ("SELECT q.id, q.received_ms, q.source, q.topic, q.payload, q.reason, q.stage, q.sensor, "
           + ("q.payload_size, q.payload_sha256, " if digests else "NULL, NULL, ")
           + ("p.payload, p.count FROM quarantine q LEFT JOIN quarantine_payloads p ON p.sha256 = q.payload_sha256"
              if payloads and digests else "NULL, NULL FROM quarantine q")
           + " ORDER BY q.id DESC LIMIT ?")
    out = []
    for r in conn.execute(sql, (limit,)):
        inline = bytes(r[4])
        payload = inline if inline or r[10] is None else bytes(r[10])  # older rows keep it inline
        size = len(payload) if r[8] is None else int(r[8])
        digest = hashlib.sha256(payload).digest() if r[9] is None else bytes(r[9])
        out.append(StoredQuarantine(int(r[0]), int(r[1]), r[2], r[3], payload, r[5], r[6], r[7], size, digest,
                                    1 if r[11] is None else int(r[11])))
    return out
