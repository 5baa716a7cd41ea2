"""A site with an alert engine, its store and a notifier in simulated time, for the notification tests."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

from alerts.engine import AlertEngine
from alerts.notify.notifier import Notifier
from alerts.store import AlertStore
from archmon.config import Config, parse_config
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON

ROOMS = [("A1", "一号库房", "Room 1"), ("A2", "二号库房", "Room 2"), ("A3", "三号库房", "Room 3")]
ZHANG = {"name": "zhang", "display": "张三", "phone": "+8613800000001", "email": "zhang@example.org"}
LI = {"name": "li", "display": "Li Si", "phone": "+8613800000002", "email": "li@example.org", "language": "en"}


def site_data(tmp_path: Path, notify: dict[str, Any], *, alerts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Three rooms, a smoke sensor and a humidity sensor in A1, two more sensors in each room."""
    sensors = [("S1", "A1"), ("T1", "A1")] + [(f"D{i}{r[-1]}", r) for r in ("A1", "A2", "A3") for i in (1, 2)]
    return {
        "site": {"name": "市档案馆", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(tmp_path / "archmon.db")},
        "rooms": [{"id": i, "name_zh": zh, "name_en": en} for i, zh, en in ROOMS],
        "mqtt": [{"id": "broker"}],
        "sensors": [{"id": s, "room": room, "source": "broker", "topic": f"z/{s}", "format": "zigbee2mqtt",
                     "expected_interval_s": 60} for s, room in sensors],
        "alerts": alerts if alerts is not None else {
            "rules": {"stale": {"enabled": False}},  # sensors without readings would go stale after 3 minutes
            "notify": {"repeat_s": {"critical": 900, "major": 0}, "escalation_after_s": [1800]}},
        "notify": copy.deepcopy(notify),
    }


def modem_channel(port: str) -> dict[str, Any]:
    """A modem channel table with short timeouts."""
    return {"type": "gsm_modem", "port": port, "command_timeout_s": 0.5, "send_timeout_s": 0.5,
            "reopen_after_s": 0, "inbox_poll_s": 0.01, "check_interval_s": 3600}


def smtp_channel(port: int, ca_file: Path) -> dict[str, Any]:
    """An SMTP channel table for the test server (password in ARCHMON_TEST_SMTP_PW)."""
    return {"type": "smtp", "host": "127.0.0.1", "port": port, "username": "archmon",
            "password_env": "ARCHMON_TEST_SMTP_PW", "from": "archmon@example.org", "ca_file": str(ca_file)}


class Site:
    """Engine + store + notifier on one file, driven in simulated time (``at``, ``step``)."""

    def __init__(self, tmp_path: Path, notify: dict[str, Any], *, alerts: dict[str, Any] | None = None,
                 start_ms: int = SHANGHAI_NOON) -> None:
        self.config: Config = parse_config(site_data(tmp_path, notify, alerts=alerts))
        self.db = tmp_path / "archmon.db"
        self.store = AlertStore(self.db)
        self.engine = AlertEngine(self.config, self.store)
        self.t0 = self.now = start_ms
        self.engine.advance(self.now)
        self.notifier = self.make_notifier()
        self.d = self.notifier.dispatcher

    def make_notifier(self) -> Notifier:
        """A notifier on the site's file with the simulated clock."""
        return Notifier(self.config, self.db, acknowledge=self.acknowledge, engine_rules=lambda: self.engine.rules,
                        clock=lambda: self.now)

    def acknowledge(self, alert_id: int, by: str, comment: str) -> Any:
        return self.engine.acknowledge(alert_id, by, comment, self.now)

    def at(self, seconds: float) -> None:
        """Move time to t0 + ``seconds`` (the engine's timers run)."""
        self.now = self.t0 + int(seconds * 1000)
        self.engine.advance(self.now)

    def reading(self, sensor: str, quantity: str, value: float, room: str = "A1") -> None:
        """A reading now."""
        self.engine.feed(Reading(sensor, quantity, value, self.now, room))

    def step(self, channels: tuple[str, ...] | None = None) -> None:
        """Expand requests, send what is due and poll every channel, at the simulated now."""
        self.d.expand_pending(self.now)
        for name in channels or tuple(self.notifier.channels):
            self.d.send_due(name, self.now)
            self.d.poll(name, self.now)
            self.d.send_due(name, self.now)  # replies answered in the poll

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        """Rows of a query on the site's file."""
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the notifier and close the store."""
        self.notifier.stop(timeout_s=5)
        self.store.close()
