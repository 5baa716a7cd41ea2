"""The alert tables and their migrations (component ``alerts`` in ``schema_migrations``, see
:mod:`archmon.sqlite`).

Migration 1 is the schema as it stood when migrations were introduced. Files written by earlier archmon
versions hold the same tables without a recorded version, so every statement is ``IF NOT EXISTS`` and the
columns that older files lack (``maintenance_windows``'s early-end columns, once added by hand on open) are
added when missing. ``notification_queue`` is shared with the notification channels: columns may be added,
never removed or renamed.
"""

from __future__ import annotations

import sqlite3

from alerts.audit import DDL as AUDIT_DDL
from alerts.model import OPEN_STATES
from archmon.sqlite import Migration

__all__ = ["MIGRATIONS", "OPEN", "WINDOW_END"]

OPEN = "('" + "','".join(OPEN_STATES) + "')"
WINDOW_END = "COALESCE(MIN(ended_ms, until_ms), until_ms)"  # a maintenance window's effective end

_TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS alert_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ident TEXT NOT NULL,
    rule TEXT NOT NULL,
    room TEXT NOT NULL,
    sensor TEXT,
    quantity TEXT,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    value REAL,
    limit_value REAL,
    title_zh TEXT NOT NULL DEFAULT '',
    title_en TEXT NOT NULL DEFAULT '',
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    active_ms INTEGER,
    acked_by TEXT,
    acked_ms INTEGER,
    cleared_ms INTEGER,
    cleared_by TEXT,
    closed_ms INTEGER,
    fire_count INTEGER NOT NULL DEFAULT 0,
    notified_ms INTEGER,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    manual_clear INTEGER NOT NULL DEFAULT 0
)""",
    f"CREATE UNIQUE INDEX IF NOT EXISTS alert_alerts_one_open ON alert_alerts(ident) WHERE state IN {OPEN}",
    "CREATE INDEX IF NOT EXISTS alert_alerts_state ON alert_alerts(state)",
    "CREATE INDEX IF NOT EXISTS alert_alerts_manual_clear ON alert_alerts(id) WHERE manual_clear = 1",
    """CREATE TABLE IF NOT EXISTS alert_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alert_alerts(id),
    ts_ms INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    value REAL,
    limit_value REAL,
    by TEXT,
    note TEXT NOT NULL DEFAULT ''
)""",
    "CREATE INDEX IF NOT EXISTS alert_transitions_alert ON alert_transitions(alert_id)",
    "CREATE TRIGGER IF NOT EXISTS alert_transitions_no_update BEFORE UPDATE ON alert_transitions "
    "BEGIN SELECT RAISE(ABORT, 'alert_transitions is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS alert_transitions_no_delete BEFORE DELETE ON alert_transitions "
    "BEGIN SELECT RAISE(ABORT, 'alert_transitions is append-only'); END",
    """CREATE TABLE IF NOT EXISTS alert_comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alert_alerts(id),
    ts_ms INTEGER NOT NULL,
    by TEXT NOT NULL,
    comment TEXT NOT NULL
)""",
    "CREATE TRIGGER IF NOT EXISTS alert_comments_no_update BEFORE UPDATE ON alert_comments "
    "BEGIN SELECT RAISE(ABORT, 'comments are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS alert_comments_no_delete BEFORE DELETE ON alert_comments "
    "BEGIN SELECT RAISE(ABORT, 'comments are append-only'); END",
    """CREATE TABLE IF NOT EXISTS alert_conditions (
    ident TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    wait_ms INTEGER NOT NULL DEFAULT 0,
    alert_id INTEGER,
    held_until INTEGER,
    last TEXT
)""",
    """CREATE TABLE IF NOT EXISTS alert_rule_state (
    rule TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    saved_ms INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS maintenance_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    ended_by TEXT,
    end_comment TEXT,
    end_unseen INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS notification_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL,
    transition TEXT NOT NULL,
    severity TEXT NOT NULL,
    route TEXT NOT NULL,
    level INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
)""",
    "CREATE INDEX IF NOT EXISTS notification_queue_status ON notification_queue(status)",
)

# columns files written before early ends of maintenance windows lack
_EARLY_END_COLUMNS = {"ended_ms": "INTEGER", "ended_by": "TEXT", "end_comment": "TEXT",
                      "end_unseen": "INTEGER NOT NULL DEFAULT 0"}


def _first(conn: sqlite3.Connection) -> None:
    """Version 1: every table (kept if present), and the columns older files lack."""
    for statement in (*_TABLES, *AUDIT_DDL):
        conn.execute(statement)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(maintenance_windows)")}
    for name, kind in _EARLY_END_COLUMNS.items():
        if name not in columns:
            conn.execute(f"ALTER TABLE maintenance_windows ADD COLUMN {name} {kind}")
    conn.execute("CREATE INDEX IF NOT EXISTS maintenance_windows_end_unseen ON maintenance_windows(id) "
                 "WHERE end_unseen = 1")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, _first, "alerts, transitions, comments, lifecycle, rule state, maintenance, notification "
                         "queue, audit log (files from before migrations are taken as they are)"),
    # rule memory is rebuilt from the readings store now; the old minute checkpoints (every window's
    # readings, hundreds of MB at 10,000 sensors) are dropped; alert_rule_state keeps small markers only
    Migration(2, "DELETE FROM alert_rule_state", "drop full rule checkpoints (rebuilt from the readings store)"),
    # per series, the newest reading the engine has judged: readings stored after it (a crash, a stop out of
    # time) are judged at the next start (alerts.catchup)
    Migration(3, "CREATE TABLE IF NOT EXISTS alert_judged (sensor TEXT NOT NULL, quantity TEXT NOT NULL, "
                 "ts_ms INTEGER NOT NULL, PRIMARY KEY (sensor, quantity)) WITHOUT ROWID",
              "judged-through watermark per series"),
)
