"""Append-only audit log whose entries form a SHA-256 hash chain (``archmon audit verify``)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = ["DDL", "GENESIS", "SCHEMA", "AuditVerdict", "append_audit", "entry_hash", "verify_audit"]

GENESIS = "0" * 64

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)""",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)
"""The audit table and its append-only triggers, one statement each (run by the alert store's migration)."""

SCHEMA = ";\n".join(DDL) + ";\n"
"""The same as one script, for other components' migrations (every writer of the chain creates it if missing)."""


def entry_hash(prev_hash: str, seq: int, ts_ms: int, kind: str, actor: str, subject: str, payload: str) -> str:
    """SHA-256 of the previous hash and the entry's canonical JSON."""
    body = json.dumps([seq, ts_ms, kind, actor, subject, payload], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def append_audit(
    conn: sqlite3.Connection, ts_ms: int, kind: str, actor: str, subject: str, payload: dict[str, Any]
) -> str:
    """Append one entry; call inside the caller's write transaction (``BEGIN IMMEDIATE``).

    Args:
        conn: connection holding the write lock.
        ts_ms: when it happened.
        kind: ``transition``, ``ack``, ``comment``, ``maintenance``, ``config`` ...
        actor: who did it (``system`` for the engine).
        subject: what it is about (``alert:12``, ``room:A1``...).
        payload: details (JSON-able).

    Returns:
        The new entry's hash.
    """
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    digest = entry_hash(prev, seq, ts_ms, kind, actor, subject, text)
    conn.execute(
        "INSERT INTO audit_log (seq, ts_ms, kind, actor, subject, payload, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts_ms, kind, actor, subject, text, prev, digest),
    )
    return digest


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """Result of :func:`verify_audit`: ``ok`` or the first broken link."""

    ok: bool
    entries: int
    broken_seq: int | None = None
    reason: str = ""
    head: str = GENESIS  # hash of the last entry (GENESIS for an empty log): record it outside the database

    def __str__(self) -> str:
        if self.ok:
            return f"ok ({self.entries} entries, head {self.head})"
        return f"broken at entry {self.broken_seq}: {self.reason}"


def verify_audit(conn: sqlite3.Connection) -> AuditVerdict:
    """Walk the chain from the first entry and report the first entry that does not link or hash.

    Detects an edited entry (its hash no longer matches) and a deleted entry (sequence gap / the next
    entry's previous hash no longer matches). It cannot detect entries cut off the end (a truncated tail
    is still a valid chain) nor a tail rewritten from some entry on with fresh hashes: only comparing the
    returned ``head`` with one recorded outside the database (paper, the monthly report) shows that.
    """
    prev = GENESIS
    expected_seq = 1
    count = 0
    rows = conn.execute(
        "SELECT seq, ts_ms, kind, actor, subject, payload, prev_hash, hash FROM audit_log ORDER BY seq"
    )
    for seq, ts_ms, kind, actor, subject, payload, prev_hash, digest in rows:
        if seq != expected_seq:
            return AuditVerdict(False, count, seq, f"expected entry {expected_seq}, found {seq} (entry deleted)")
        if prev_hash != prev:
            return AuditVerdict(False, count, seq, "previous-hash link does not match the entry before it")
        if entry_hash(prev_hash, seq, ts_ms, kind, actor, subject, payload) != digest:
            return AuditVerdict(False, count, seq, "content does not match its hash (entry edited)")
        prev = digest
        expected_seq += 1
        count += 1
    return AuditVerdict(True, count, head=prev)
