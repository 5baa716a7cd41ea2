"""The access register (库房出入登记, the "三不查阅" rule): who entered which store, why, on whose approval.

Cadre-archive rules forbid consulting files alone: a store is entered by **at least two people**, for a
stated purpose, under an approval number. An access session records that, from the moment it is opened
until it is closed. A door opening in a room with no open session is an "unregistered entry" alert
(:mod:`alerts.rules.unregistered_entry`); sessions are shown on the room chart and every open and close is
written to the audit hash chain in the same transaction as the session itself.

The register lives in the shared SQLite file (table ``access_sessions``, component ``access`` in
``schema_migrations``). Writers take ``BEGIN IMMEDIATE`` (:func:`archmon.sqlite.write_tx`) so the audit
chain stays linear with the alert engine's entries; readers use their own WAL connections.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.audit import SCHEMA as AUDIT_SCHEMA
from alerts.audit import append_audit
from archmon.sqlite import Migration, ReaderPool, connect, migrate, write_tx
from archmon.timeutil import now_ms

__all__ = ["MIN_PEOPLE", "AccessError", "AccessRegister", "AccessSession", "attach_register", "person_key",
           "read_sessions", "register_lookup"]

MIN_PEOPLE = 2
"""三不查阅: nobody consults the files alone."""
MAX_TEXT = 500
MAX_NAME = 100

_MIGRATIONS = [
    Migration(
        1,
        AUDIT_SCHEMA + """
        CREATE TABLE IF NOT EXISTS access_sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            room TEXT NOT NULL,
            people TEXT NOT NULL,
            purpose TEXT NOT NULL,
            approval TEXT NOT NULL,
            opened_ms INTEGER NOT NULL,
            opened_by TEXT NOT NULL,
            closed_ms INTEGER,
            closed_by TEXT,
            note TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS access_sessions_room ON access_sessions (room, opened_ms);
        CREATE UNIQUE INDEX IF NOT EXISTS access_sessions_one_open ON access_sessions (room) WHERE closed_ms IS NULL
        """,
        "access register: sessions per store",
    ),
]


class AccessError(ValueError):
    """A session that breaks the register's rules (fewer than two people, no approval, already closed...).

    Attributes:
        code: what went wrong, for the dashboard's catalogues (``error.<code>``); the message is English.
        params: the values the message names (room, session id...).
    """

    def __init__(self, message: str, code: str = "access", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class AccessSession:
    """One registered entry into a store.

    Attributes:
        id: row id.
        room: the store (room id).
        people: the names of everyone entering (at least two).
        purpose: why (查阅目的).
        approval: the approval number (审批单号).
        opened_ms: when the session was opened (UTC epoch ms); opened_by: who opened it.
        closed_ms: when it was closed (None: still open); closed_by: who closed it.
        note: remark given when closing.
    """

    id: int
    room: str
    people: tuple[str, ...]
    purpose: str
    approval: str
    opened_ms: int
    opened_by: str
    closed_ms: int | None = None
    closed_by: str | None = None
    note: str = ""

    @property
    def is_open(self) -> bool:
        """True until the session is closed."""
        return self.closed_ms is None

    def covers(self, ts_ms: int) -> bool:
        """Whether the session was open at ``ts_ms``."""
        return self.opened_ms <= ts_ms and (self.closed_ms is None or ts_ms <= self.closed_ms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (API, CLI)."""
        return {"id": self.id, "room": self.room, "people": list(self.people), "purpose": self.purpose,
                "approval": self.approval, "opened_ms": self.opened_ms, "opened_by": self.opened_by,
                "closed_ms": self.closed_ms, "closed_by": self.closed_by, "note": self.note}


def _session(row: sqlite3.Row | tuple[Any, ...]) -> AccessSession:
    return AccessSession(int(row[0]), str(row[1]), tuple(json.loads(row[2])), str(row[3]), str(row[4]), int(row[5]),
                         str(row[6]), None if row[7] is None else int(row[7]), row[8], str(row[9] or ""))


_COLUMNS = "id, room, people, purpose, approval, opened_ms, opened_by, closed_ms, closed_by, note"
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cn", "Cs"})  # controls, format (zero-width, bidi), private, unassigned


def _visible(text: str) -> str:
    """NFKC (full-width letters, compatibility forms), invisible characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    kept = "".join(" " if ch.isspace() else ch for ch in text if unicodedata.category(ch) not in _INVISIBLE
                   or ch.isspace())
    return " ".join(kept.split())


def person_key(name: str) -> str:
    """What makes two written names the same person for the two-person rule.

    The visible form (:func:`_visible`) without any space, case-folded, accents dropped: ``张三`` and
    ``张三\u200b``, ``张 三`` and ``张　三``, ``Alice`` and ``Ａｌｉｃｅ``, ``José`` and ``Jose`` are one person.
    Traditional and simplified characters are *not* folded (``張三`` and ``张三`` are two names): the check keeps
    the register from recording what reads as one written name twice; it cannot stop one person from typing
    two different names, and folding scripts would need a conversion dictionary for that small gain.
    """
    text = "".join(_visible(name).split()).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn"))


def _clean_people(people: Iterable[str]) -> tuple[str, ...]:
    names: list[str] = []
    seen: set[str] = set()
    for raw in people:
        for part in str(raw).replace("，", ",").replace("、", ",").replace("；", ",").replace(";", ",").split(","):
            name = _visible(part)
            key = person_key(name)
            if not key:
                continue
            if len(name) > MAX_NAME:
                raise AccessError(f"name too long (over {MAX_NAME} characters): {name[:20]}…", "access_name_long",
                                  n=MAX_NAME, name=name[:20])
            if key not in seen:
                seen.add(key)
                names.append(name)
    if len(names) < MIN_PEOPLE:
        raise AccessError(f"an access session needs at least {MIN_PEOPLE} different people (三不查阅: nobody "
                          f"consults the files alone); got {names or 'none'}", "access_people", n=MIN_PEOPLE,
                          names="、".join(names))
    return tuple(names)


_FIELDS = {"purpose": "purpose", "approval": "approval number", "room": "room", "actor": "name of who registers it"}


def _required(value: str, field: str) -> str:
    text = _visible(str(value))
    what = _FIELDS[field]
    if not text:
        raise AccessError(f"an access session needs a {what}", f"access_{field}_missing")
    if len(text) > MAX_TEXT:
        raise AccessError(f"{what} too long (over {MAX_TEXT} characters)", f"access_{field}_long", n=MAX_TEXT)
    return text


def _overlapping(conn: sqlite3.Connection, room: str, start_ms: int, end_ms: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM access_sessions WHERE room = ? AND opened_ms <= ? AND (closed_ms IS NULL OR closed_ms >= ?)"
        " LIMIT 1", (room, end_ms, start_ms)).fetchone()
    return row is not None


class AccessRegister:
    """The access sessions in the shared SQLite file.

    Args:
        path: the database file (created with the register's tables if missing).
        hub: where every session opened or closed is published (kind ``access``) after its commit, so live
            views refresh (None: nobody is told; other processes, e.g. the CLI, are not on the hub anyway).

    Raises:
        archmon.sqlite.SchemaError: the file is not a database or has a newer register schema.
    """

    def __init__(self, path: Path | str, *, hub: Any = None) -> None:
        self.path = Path(path)
        self.hub = hub
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        migrate(self._conn, "access", _MIGRATIONS, where=str(self.path))
        self._readers = ReaderPool(self.path)

    def close(self) -> None:
        """Close the connections. Idempotent."""
        self._readers.close()
        with self._lock:
            self._conn.close()

    def _published(self, session: AccessSession) -> AccessSession:
        if self.hub is not None:
            self.hub.publish("access", session)
        return session

    def open_session(self, room: str, people: Iterable[str], purpose: str, approval: str, by: str,
                     *, ts_ms: int | None = None) -> AccessSession:
        """Open a session for a store (audited as ``access_open``).

        Args:
            room: the room id (the caller checks it is configured).
            people: the names of everyone entering; commas (also ``，``, ``、`` and ``;``) separate names in one
                string; names that are the same person (:func:`person_key`) count once.
            purpose: why they enter.
            approval: the approval number.
            by: who registers it (the logged-in user).
            ts_ms: when (default now).

        Raises:
            AccessError: fewer than two people, no purpose or approval, or the room has an open session.
        """
        names = _clean_people(people)
        purpose = _required(purpose, "purpose")
        approval = _required(approval, "approval")
        room = _required(room, "room")
        by = _required(by, "actor")
        ts = now_ms() if ts_ms is None else ts_ms
        with self._lock, write_tx(self._conn) as conn:
            busy = conn.execute("SELECT id FROM access_sessions WHERE room = ? AND closed_ms IS NULL",
                                (room,)).fetchone()
            if busy is not None:
                raise AccessError(f"room {room} already has an open access session (#{busy[0]}); close it first",
                                  "access_busy", room=room, id=int(busy[0]))
            cursor = conn.execute(
                "INSERT INTO access_sessions (room, people, purpose, approval, opened_ms, opened_by)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (room, json.dumps(names, ensure_ascii=False), purpose, approval, ts, by),
            )
            session_id = int(cursor.lastrowid or 0)
            append_audit(conn, ts, "access_open", by, f"room:{room}",
                         {"session": session_id, "people": list(names), "purpose": purpose, "approval": approval})
        return self._published(AccessSession(session_id, room, names, purpose, approval, ts, by))

    def close_session(self, session_id: int, by: str, *, note: str = "", ts_ms: int | None = None) -> AccessSession:
        """Close an open session (audited as ``access_close``).

        Raises:
            KeyError: unknown session.
            AccessError: already closed, or no name.
        """
        by = _required(by, "actor")
        note = _visible(note)[:MAX_TEXT]
        ts = now_ms() if ts_ms is None else ts_ms
        with self._lock, write_tx(self._conn) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM access_sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise KeyError(session_id)
            session = _session(row)
            if not session.is_open:
                raise AccessError(f"access session #{session_id} is closed already", "access_closed", id=session_id)
            ts = max(ts, session.opened_ms)
            conn.execute("UPDATE access_sessions SET closed_ms = ?, closed_by = ?, note = ? WHERE id = ?",
                         (ts, by, note, session_id))
            append_audit(conn, ts, "access_close", by, f"room:{session.room}",
                         {"session": session_id, "opened_ms": session.opened_ms, "note": note})
        return self._published(AccessSession(session.id, session.room, session.people, session.purpose,
                                             session.approval, session.opened_ms, session.opened_by, ts, by, note))

    def sessions(self, *, room: str | None = None, start_ms: int | None = None, end_ms: int | None = None,
                 open_only: bool = False, limit: int = 500) -> list[AccessSession]:
        """Sessions newest first: of one room or all; overlapping ``[start_ms, end_ms)`` when given."""
        where = ["1 = 1"]
        params: list[Any] = []
        if room is not None:
            where.append("room = ?")
            params.append(room)
        if open_only:
            where.append("closed_ms IS NULL")
        if end_ms is not None:
            where.append("opened_ms < ?")
            params.append(end_ms)
        if start_ms is not None:
            where.append("(closed_ms IS NULL OR closed_ms >= ?)")
            params.append(start_ms)
        with self._readers.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM access_sessions WHERE {' AND '.join(where)}"
                                " ORDER BY opened_ms DESC, id DESC LIMIT ?", (*params, limit)).fetchall()
        return [_session(row) for row in rows]

    def open_at(self, room: str, ts_ms: int) -> AccessSession | None:
        """The session that was open in ``room`` at ``ts_ms`` (a late reading is judged at its own time)."""
        with self._readers.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM access_sessions WHERE room = ? AND opened_ms <= ?"
                " AND (closed_ms IS NULL OR closed_ms >= ?) ORDER BY opened_ms DESC LIMIT 1",
                (room, ts_ms, ts_ms),
            ).fetchone()
        return None if row is None else _session(row)

    def registered(self, room: str, start_ms: int, end_ms: int) -> bool:
        """Whether an access session of ``room`` was open at some moment of ``[start_ms, end_ms]`` (the rule's
        lookup: a door opening at ``start_ms`` is registered by a session open then, or opened within the
        grace that ends at ``end_ms``)."""
        with self._readers.read() as conn:
            return _overlapping(conn, room, start_ms, end_ms)


def read_sessions(path: Path | str, *, room: str, start_ms: int, end_ms: int) -> list[AccessSession]:
    """Sessions of ``room`` overlapping ``[start_ms, end_ms)``, oldest first, read on a read-only connection
    without creating anything (reports; a file whose register was never used has none).

    Raises:
        FileNotFoundError: the file does not exist.
    """
    conn = connect(path, readonly=True)
    try:
        try:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM access_sessions WHERE room = ? AND opened_ms < ?"
                                " AND (closed_ms IS NULL OR closed_ms >= ?) ORDER BY opened_ms, id",
                                (room, end_ms, start_ms)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
    finally:
        conn.close()
    return [_session(row) for row in rows]


def register_lookup(path: Path | str) -> Any:
    """The rule's lookup for the register in ``path``, with its own short-lived read-only connection per
    question (door openings are rare), so it needs no closing and outlives whoever attached it.

    The register's tables are created first if missing (a site whose dashboard never ran has no session:
    every door opening is then unregistered, as it should be).
    """
    AccessRegister(path).close()
    file = Path(path)

    def registered(room: str, start_ms: int, end_ms: int) -> bool:
        conn = connect(file, readonly=True)
        try:
            return _overlapping(conn, room, start_ms, end_ms)
        finally:
            conn.close()

    return registered


def attach_register(engine: Any, register: AccessRegister | Path | str) -> int:
    """Give the engine's unregistered-entry rule its register; returns how many rules took it.

    The rule is inert until a register is attached (replay and rule tests judge no access sessions). The
    live service attaches it once, right after building its first engine and before the rebuild (so
    openings of doors open at the restart are judged again): a reload's new engine takes it over
    (``UnregisteredEntryRule.adopt``). ``dashboards.web.build_app(alerts=service)`` attaches it when the
    service has not.

    Args:
        engine: an :class:`~alerts.engine.AlertEngine`.
        register: an open :class:`AccessRegister` (its lifetime must cover the engine's), or the path of the
            shared file (:func:`register_lookup`: nothing to close).
    """
    from alerts.rules.unregistered_entry import UnregisteredEntryRule

    lookup = register.registered if isinstance(register, AccessRegister) else register_lookup(register)
    count = 0
    for rule in getattr(engine, "rules", []):
        if isinstance(rule, UnregisteredEntryRule):
            rule.sessions = lookup
            count += 1
    return count
