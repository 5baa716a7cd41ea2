"""The service's own audit entries (reloads and their refusals), written whatever the database is doing.

An entry is kept in a spool file beside the database (``archmon.db.audit-pending.jsonl``, one JSON line
each, synced) the moment it is made, then appended to the hash-chained audit log by a thread of its own, on
a connection of its own, in a transaction of its own, retried with backoff for as long as the file is
locked or failing. A reload is audited even when it happened during a store stall, a stop or a crash: what
is still in the spool at a stop is written at the next start (an entry already in the log is recognised
and not written twice).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alerts.audit import DDL, append_audit
from archmon.sqlite import connect, write_tx
from archmon.timeutil import now_ms

__all__ = ["AuditEntry", "AuditQueue"]

log = logging.getLogger("archmon.app")

BUSY_TIMEOUT_S = 1.0
RETRY_MAX_S = 5.0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of the audit log (see ``alerts.audit.append_audit``)."""

    ts_ms: int
    kind: str
    actor: str
    subject: str
    payload: dict[str, Any]


class AuditQueue:
    """Audit entries on their way to the audit log; see the module docstring.

    Args:
        db_path: the shared SQLite file.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.spool = self.db_path.with_name(self.db_path.name + ".audit-pending.jsonl")
        self._cond = threading.Condition()
        self._pending: list[AuditEntry] = []
        self._replayed = 0  # the first so many pending entries come from the spool of an earlier run
        self._closing = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failures = 0
        if self.spool.exists():
            self._pending = _read_spool(self.spool)
            self._replayed = len(self._pending)
            if self._pending:
                log.info("audit: %d entr(ies) of an earlier run not in the audit log yet; writing them",
                         len(self._pending))

    def start(self) -> None:
        """Start the writing thread."""
        self._thread = threading.Thread(target=self._run, name="archmon-audit", daemon=True)
        self._thread.start()

    def submit(self, kind: str, actor: str, subject: str, payload: dict[str, Any], *, ts_ms: int | None = None) -> None:
        """Keep an entry (synced to the spool before this returns) and have it written to the audit log."""
        entry = AuditEntry(now_ms() if ts_ms is None else ts_ms, kind, actor, subject, payload)
        with self._cond:
            self._pending.append(entry)
            self._keep()
            self._cond.notify_all()

    def pending(self) -> int:
        """Entries not in the audit log yet."""
        with self._cond:
            return len(self._pending)

    def close(self, timeout: float) -> int:
        """Write what is pending for at most ``timeout`` s, then stop; returns the entries left in the spool
        (written at the next start)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None:
                return len(self._pending)
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            self._closing = True
            self._cond.notify_all()
            return len(self._pending)

    def _keep(self) -> None:
        """The spool follows the pending entries (held: ``_cond``); if it cannot be written (disk full),
        they are still written to the log from memory."""
        try:
            _write_spool(self.spool, self._pending)
        except OSError as exc:
            log.error("audit: cannot keep %d pending entr(ies) in %s: %s", len(self._pending), self.spool, exc)

    def _run(self) -> None:
        delay = 0.05
        failing = False
        conn: sqlite3.Connection | None = None
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    break
                entry, replayed = self._pending[0], self._replayed > 0
            try:
                if conn is None:
                    conn = connect(self.db_path, busy_timeout_s=BUSY_TIMEOUT_S)
                if not _append(conn, entry, check_duplicate=replayed, closed=lambda: self._closing):
                    break  # closed while it waited for the lock: the entry stays in the spool for the next run
            except (sqlite3.Error, OSError) as exc:
                self.failures += 1
                if not failing:
                    failing = True
                    log.warning("audit: the entry of %s %s waits: %s: %s; kept in %s, retrying", entry.kind,
                                entry.payload.get("event", ""), type(exc).__name__, exc, self.spool)
                with self._cond:
                    self._cond.wait_for(lambda: self._closing, delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if failing:
                log.info("audit: the database takes entries again")
            failing, delay = False, 0.05
            with self._cond:
                self._pending.pop(0)
                self._replayed = max(0, self._replayed - 1)
                self.written += 1
                self._keep()
                self._cond.notify_all()
        if conn is not None:
            conn.close()


def _append(conn: sqlite3.Connection, entry: AuditEntry, *, check_duplicate: bool,
            closed: Callable[[], bool]) -> bool:
    """Write ``entry`` unless the queue was closed while this waited for the write lock (then False: the
    next run, which may already be writing it from the spool, owns it; writing it here too could put it in
    the log twice, since only entries of an earlier run are checked for a copy)."""
    with write_tx(conn):
        if closed():
            return False
        for statement in DDL:  # a file the alert store has not migrated yet
            conn.execute(statement)
        if check_duplicate:  # written by the earlier run after it spooled it, before it could say so
            rows = conn.execute("SELECT payload FROM audit_log WHERE ts_ms = ? AND kind = ? AND subject = ?",
                                (entry.ts_ms, entry.kind, entry.subject)).fetchall()
            if any(json.loads(row[0]) == json.loads(json.dumps(entry.payload, default=str)) for row in rows):
                return True
        append_audit(conn, entry.ts_ms, entry.kind, entry.actor, entry.subject, entry.payload)
    return True


def _read_spool(path: Path) -> list[AuditEntry]:
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(AuditEntry(**json.loads(line)))
        except (ValueError, TypeError) as exc:  # a line cut off by a crash in the middle of the write
            log.error("audit: %s line %d is not an entry (%s); left out", path, number, exc)
    return entries


def _write_spool(path: Path, entries: list[AuditEntry]) -> None:
    """Replace the spool with ``entries`` (atomically, synced); remove it when there are none."""
    if not entries:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for entry in entries:
            out.write(json.dumps(asdict(entry), ensure_ascii=False, default=str) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
