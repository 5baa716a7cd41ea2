"""Integrity of generated reports: the SHA-256 of every file archmon makes (report PDF/JSON/CSV, register) is
written to the audit log's hash chain (:func:`alerts.audit.append_audit`, kind ``report``), and
``archmon report verify FILE`` finds a file's hash there: whether this archmon produced exactly this file,
when, by whom, and for what period and rooms.

The entry is written after the file's bytes exist and before they are handed out (written to ``--out``,
mailed, offered for download): a file that is out there has its entry. The cover of the PDF prints the
chain's head as it was before its own entry (a chain rewritten later no longer ends in that hash:
:func:`alerts.audit.verify_audit`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alerts.audit import DDL, GENESIS, AuditVerdict, append_audit, verify_audit
from archmon.sqlite import connect, write_tx
from dashboards.reports.pdf_report import AuditHead

__all__ = ["AUDIT_KIND", "ReportRecord", "Verification", "audit_head", "find_reports", "record_report", "sha256_of",
           "verify_file"]

AUDIT_KIND = "report"
DocumentKind = Literal["report", "register"]


def sha256_of(data: bytes) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """One generated file as the audit log holds it.

    Attributes:
        seq: the audit entry's number; ts_ms: when it was made; by: who made it (``archmon`` for a schedule).
        document: ``report`` or ``register``; format: ``pdf``, ``json`` or ``csv``.
        from_date, to_date: the period (included); rooms: the rooms; lang: its language.
        sha256: the file's hash; size: its length in bytes; name: the file name it was written under.
    """

    seq: int
    ts_ms: int
    by: str
    document: str
    format: str
    from_date: dt.date
    to_date: dt.date
    rooms: tuple[str, ...]
    lang: str
    sha256: str
    size: int
    name: str


def audit_head(db_path: Path) -> AuditHead:
    """The audit log's number of entries and last hash (a file without an audit log: 0 and the genesis)."""
    conn = connect(db_path, readonly=True)
    try:
        row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # no audit table yet
        row = None
    finally:
        conn.close()
    return AuditHead(0, GENESIS) if row is None else AuditHead(int(row[0]), str(row[1]))


def record_report(db_path: Path, data: bytes, *, document: DocumentKind, fmt: str, from_date: dt.date,
                  to_date: dt.date, rooms: Sequence[str], lang: str, by: str, ts_ms: int, name: str) -> ReportRecord:
    """Write the file's SHA-256 and what it is to the audit log (its own write transaction).

    Raises:
        sqlite3.OperationalError: the file stayed locked beyond the busy timeout (retry later).
    """
    digest = sha256_of(data)
    payload = {"sha256": digest, "document": document, "format": fmt, "from": from_date.isoformat(),
               "to": to_date.isoformat(), "rooms": list(rooms), "lang": lang, "size": len(data), "name": name}
    conn = connect(db_path, busy_timeout_s=10.0)
    try:
        with write_tx(conn):
            for statement in DDL:  # a file no alert store has migrated yet
                conn.execute(statement)
            subject = f"{document}:{from_date.isoformat()}..{to_date.isoformat()}"
            append_audit(conn, ts_ms, AUDIT_KIND, by or "?", subject, payload)
            seq = int(conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0])
    finally:
        conn.close()
    return ReportRecord(seq, ts_ms, by or "?", document, fmt, from_date, to_date, tuple(rooms), lang, digest,
                        len(data), name)


def _record(row: sqlite3.Row | tuple) -> ReportRecord:
    seq, ts_ms, actor, payload = row
    body = json.loads(payload)
    return ReportRecord(int(seq), int(ts_ms), str(actor), str(body.get("document", "report")),
                        str(body.get("format", "")), dt.date.fromisoformat(body["from"]),
                        dt.date.fromisoformat(body["to"]), tuple(body.get("rooms", ())), str(body.get("lang", "")),
                        str(body["sha256"]), int(body.get("size", 0)), str(body.get("name", "")))


def find_reports(db_path: Path, *, sha256: str | None = None) -> list[ReportRecord]:
    """Generated files recorded in the audit log, newest first (only those with this hash when given)."""
    conn = connect(db_path, readonly=True)
    try:
        sql = "SELECT seq, ts_ms, actor, payload FROM audit_log WHERE kind = ?"
        params: list[object] = [AUDIT_KIND]
        if sha256 is not None:
            sql += " AND json_extract(payload, '$.sha256') = ?"
            params.append(sha256.lower())
        rows = conn.execute(sql + " ORDER BY seq DESC", params).fetchall()
    except sqlite3.OperationalError:  # no audit table yet
        rows = []
    finally:
        conn.close()
    return [_record(row) for row in rows]


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``report verify`` found for one file.

    Attributes:
        sha256: the file's hash; records: the audit entries with it (empty: not made by this archmon, or
            changed since); chain: the audit log's own check (a broken chain makes any record doubtful).
    """

    sha256: str
    records: tuple[ReportRecord, ...]
    chain: AuditVerdict

    @property
    def ok(self) -> bool:
        """Made by this archmon, unchanged, and the chain holding the record intact."""
        return bool(self.records) and self.chain.ok


def verify_file(db_path: Path, data: bytes) -> Verification:
    """Look a file's SHA-256 up in the audit log and check the chain."""
    digest = sha256_of(data)
    records = find_reports(db_path, sha256=digest)
    conn = connect(db_path, readonly=True)
    try:
        try:
            chain = verify_audit(conn)
        except sqlite3.OperationalError:
            chain = AuditVerdict(True, 0)
    finally:
        conn.close()
    return Verification(digest, tuple(records), chain)
