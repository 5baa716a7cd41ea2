"""The calibration-due rule with the real engine and a real SQLite file, in simulated time: quiet 31 days
before the due date, a warning 29 days before, updated when overdue, cleared by a new record (added by
another connection, as the CLI does), and neither duplicated nor re-notified by restarts or reloads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.calibration import attach_calibrations, record_calibration
from alerts.engine import AlertEngine
from alerts.model import Transition
from alerts.rules import RULES
from alerts.store import AlertStore
from archmon.config import Config, parse_config

TZ = ZoneInfo("Asia/Shanghai")
DAY = 86_400_000
CALIBRATED = dt.date(2025, 3, 1)
DUE = int(dt.datetime(2026, 3, 1, tzinfo=TZ).timestamp() * 1000)  # CALIBRATED + 12 months, 00:00 +08:00
ONLY_CALIBRATION = {name: {"enabled": name == "calibration_due"} for name in RULES}


def _config(tmp_path: Path, calibration: dict[str, Any] | None = None, *, configured: str | None = None) -> Config:
    sensors: list[dict[str, Any]] = [
        {"id": "T1", "room": "A1", "source": "b", "topic": "z/T1", "format": "zigbee2mqtt"},
        {"id": "H2", "room": "A1", "kind": "humidity", "source": "b", "topic": "z/H2", "format": "zigbee2mqtt"},
        {"id": "D1", "room": "A1", "kind": "door", "source": "b", "topic": "z/D1", "format": "zigbee2mqtt"},
    ]
    if configured:
        sensors[1]["calibration"] = {"humidity": {"offset": 1.0, "calibrated_on": configured, "certificate": "CFG-1"}}
    return parse_config({
        "site": {"name": "t", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(tmp_path / "archmon.db")},
        "rooms": [{"id": "A1", "name_zh": "一号库房", "name_en": "Store 1"}],
        "mqtt": [{"id": "b"}], "sensors": sensors,
        "alerts": {"rules": ONLY_CALIBRATION, "calibration": calibration or {}},
    })


class Site:
    """The engine on a database file, restartable; records are added through a second connection."""

    def __init__(self, tmp_path: Path, config: Config) -> None:
        self.config = config
        self.db = config.storage.sqlite_path
        self.store = AlertStore(self.db)
        self.engine = self._engine()

    def _engine(self) -> AlertEngine:
        engine = AlertEngine(self.config, self.store)
        assert attach_calibrations(engine) == 1
        return engine

    def restart(self) -> None:
        self.store.close()
        self.store = AlertStore(self.db)
        self.engine = self._engine()

    def record(self, sensor: str, day: dt.date, certificate: str, now_ms: int) -> None:
        other = AlertStore(self.db)  # ``archmon calibration add``: another process
        try:
            record_calibration(other, self.config, sensor, day, certificate, by="王工", now_ms=now_ms)
        finally:
            other.close()

    def calibration(self, out: list[Transition]) -> list[tuple[str | None, str, str]]:
        return [(t.sensor, t.state, t.detail) for t in out if t.rule == "calibration_due"]

    def alerts(self) -> list[dict[str, Any]]:
        return [a for a in self.store.alerts() if a["rule"] == "calibration_due"]

    def fired(self) -> int:
        return sum(1 for n in self.store.notifications() if n["transition"] == "fired")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    running = Site(tmp_path, _config(tmp_path, {"uncalibrated": False}))
    yield running
    running.store.close()


def test_due_in_31_days_nothing_in_29_a_warning_overdue_updated_a_new_record_clears_it(site: Site) -> None:
    site.record("T1", CALIBRATED, "JL-2025-0301", int(dt.datetime(2025, 3, 1, 9, tzinfo=TZ).timestamp() * 1000))
    assert site.calibration(site.engine.advance(DUE - 40 * DAY)) == []
    assert site.calibration(site.engine.advance(DUE - 31 * DAY)) == []
    out = site.engine.advance(DUE - 29 * DAY)
    assert site.calibration(out) == [("T1", "active", "due_soon")]
    (fired,) = [t for t in out if t.rule == "calibration_due"]
    assert fired.ts_ms == DUE - 30 * DAY and fired.severity == "warning" and fired.room == "A1"
    assert "校准即将到期" in fired.title and site.fired() == 1
    assert site.calibration(site.engine.advance(DUE + DAY)) == []  # the same alert, its judgement updated
    (alert,) = site.alerts()
    assert alert["state"] == "active" and alert["detail"] == "overdue" and alert["value"] == 0.0
    renewed = DUE + 2 * DAY
    site.record("T1", dt.date(2026, 3, 2), "JL-2026-0302", renewed)
    assert site.calibration(site.engine.advance(renewed + 1000)) == [("T1", "cleared", "ok")]
    # closed an hour after its clear (close_after_s); due 2027-03-02, so nothing until its warning on 2027-01-31
    assert site.calibration(site.engine.advance(renewed + 300 * DAY)) == [("T1", "closed", "ok")]
    assert site.fired() == 1
    assert site.store.verify_audit().ok


def test_a_restart_neither_raises_again_nor_notifies_again_and_takes_records_made_while_down(site: Site) -> None:
    site.record("T1", CALIBRATED, "JL-1", int(dt.datetime(2025, 3, 1, 9, tzinfo=TZ).timestamp() * 1000))
    site.engine.advance(DUE - 20 * DAY)
    assert [a["state"] for a in site.alerts()] == ["active"] and site.fired() == 1
    for step in range(3):
        site.restart()
        assert site.calibration(site.engine.advance(DUE - 19 * DAY + step)) == []
    assert len(site.alerts()) == 1 and site.fired() == 1
    site.store.close()
    site.record("T1", dt.date(2026, 2, 10), "JL-2", DUE - 18 * DAY)  # recorded while archmon was stopped
    site.store = AlertStore(site.db)
    site.engine = site._engine()
    assert site.calibration(site.engine.advance(DUE - 18 * DAY + 1)) == [("T1", "cleared", "ok")]
    site.restart()
    assert site.calibration(site.engine.advance(DUE - 17 * DAY)) == [("T1", "closed", "ok")]  # its close time
    assert site.fired() == 1


def test_ticks_read_no_records_only_the_one_look_for_changes(site: Site) -> None:
    """After the attach, time passing costs no query of the records: deadlines are in memory; a new record
    costs one read of that record."""
    site.record("T1", CALIBRATED, "JL-1", int(dt.datetime(2025, 3, 1, 9, tzinfo=TZ).timestamp() * 1000))
    site.engine.advance(DUE - 60 * DAY)
    statements: list[str] = []
    site.store.conn.set_trace_callback(statements.append)
    try:
        for day in range(59, 0, -1):
            site.engine.advance(DUE - day * DAY)
        ticks = list(statements)
        site.record("T1", dt.date(2026, 2, 1), "JL-2", DUE - DAY)
        statements.clear()
        site.engine.advance(DUE - DAY + 1)
    finally:
        site.store.conn.set_trace_callback(None)
    reading_records = [s for s in ticks if "FROM calibration_records" in s and "unseen = 1" not in s]
    assert reading_records == [] and len(ticks) < 59 * 12
    assert sum("FROM calibration_records WHERE id IN" in s for s in statements) == 1


def test_the_config_date_counts_until_a_record_exists_and_sensor_terms_apply(tmp_path: Path) -> None:
    """H2's config says calibrated 2025-06-15 and its own interval is 6 months: warned from 2025-11-15; T1 has
    no calibration and needs none here; the door never needs one."""
    config = _config(tmp_path, {"uncalibrated": True, "sensors": {"H2": {"interval_months": 6},
                                                                  "T1": {"required": False}}},
                     configured="2025-06-15")
    running = Site(tmp_path, config)
    try:
        warn = int(dt.datetime(2025, 11, 15, tzinfo=TZ).timestamp() * 1000)
        assert running.calibration(running.engine.advance(warn - 1)) == []
        assert running.calibration(running.engine.advance(warn)) == [("H2", "active", "due_soon")]
        running.record("H2", dt.date(2025, 11, 20), "JL-H2", warn + 5 * DAY)
        assert running.calibration(running.engine.advance(warn + 5 * DAY + 1)) == [("H2", "cleared", "ok")]
        assert running.engine.rules[0].snapshot()["due"] == {"H2": "2026-05-20"}
    finally:
        running.store.close()


def test_instruments_never_calibrated_raise_one_site_wide_warning_until_each_has_a_record(tmp_path: Path) -> None:
    running = Site(tmp_path, _config(tmp_path))
    start = int(dt.datetime(2025, 3, 1, 9, tzinfo=TZ).timestamp() * 1000)
    try:
        out = running.engine.advance(start)
        assert running.calibration(out) == [(None, "active", "uncalibrated")]
        (fired,) = [t for t in out if t.rule == "calibration_due"]
        assert fired.room == "" and fired.value == 2.0 and "没有校准记录" in fired.title  # T1 and H2, not the door
        running.record("T1", dt.date(2025, 3, 1), "JL-T1", start + 1000)
        assert running.calibration(running.engine.advance(start + 2000)) == []  # H2 still has none
        running.restart()
        assert running.calibration(running.engine.advance(start + 3000)) == []
        running.record("H2", dt.date(2025, 3, 1), "JL-H2", start + 4000)
        assert running.calibration(running.engine.advance(start + 5000)) == [(None, "cleared", "uncalibrated")]
        assert len(running.alerts()) == 1
    finally:
        running.store.close()


def test_a_reload_judges_with_the_new_interval_at_once_and_keeps_the_records(tmp_path: Path) -> None:
    running = Site(tmp_path, _config(tmp_path, {"uncalibrated": False}))
    try:
        running.record("T1", CALIBRATED, "JL-1", int(dt.datetime(2025, 3, 1, 9, tzinfo=TZ).timestamp() * 1000))
        now = DUE - 150 * DAY  # 2025-10-02: 12 months due 2026-03-01, 6 months due 2025-09-01
        assert running.calibration(running.engine.advance(now)) == []
        shorter = _config(tmp_path, {"uncalibrated": False, "sensors": {"T1": {"interval_months": 6}}})
        engine = AlertEngine(shorter, running.store, series=running.engine.series)
        engine.take_over(running.engine)
        running.engine = engine
        assert running.calibration(engine.advance(now + 1000)) == [("T1", "active", "overdue")]  # due 2025-09-01
    finally:
        running.store.close()


def test_records_are_append_only(site: Site) -> None:
    site.record("T1", CALIBRATED, "JL-1", int(dt.datetime(2025, 3, 1, 9, tzinfo=TZ).timestamp() * 1000))
    for sql in ("UPDATE calibration_records SET certificate = 'forged'", "DELETE FROM calibration_records"):
        with pytest.raises(Exception, match="append-only"):
            site.store.conn.execute(sql)
    site.store.take_calibrations([1])  # only the engine's flag may change
    (entry,) = [r for r in site.store.conn.execute("SELECT actor, subject, payload FROM audit_log "
                                                    "WHERE kind = 'calibration'")]
    assert entry[0] == "王工" and entry[1] == "sensor:T1" and '"certificate": "JL-1"' in entry[2]


def test_check_config_names_a_bad_calibration_date_and_an_unknown_sensor(tmp_path: Path) -> None:
    from alerts.site import check_config

    config = _config(tmp_path, {"sensors": {"T7": {"interval_months": 6}}}, configured="2025-02-30")
    problems = check_config(config)
    assert "sensors[1] (H2).calibration.humidity.calibrated_on: not a date YYYY-MM-DD (got '2025-02-30')" in problems
    assert any(p.startswith("alerts.calibration.sensors.T7: unknown sensor") for p in problems)
    store = AlertStore(":memory:")
    try:
        with pytest.raises(Exception, match="interval_months"):
            AlertEngine(_config(tmp_path, {"interval_months": 0}), store)
    finally:
        store.close()
