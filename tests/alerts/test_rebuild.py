"""Rebuilding windows and rule memory from the readings store gives what live feeding gave.

One engine judges 26 h of readings (some late) as they are stored in a real SQLite file; a second engine
starts on a copy of that file taken at that moment (a restart: no checkpoint) and rebuilds from the store.
Their windows and rule memory must be the same, and so must every transition, alert row and notification
of the next day fed to both.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.engine import AlertEngine
from alerts.history import MemoryHistory
from alerts.rules import RULES
from alerts.store import AlertStore
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000
HOUR = 60 * MIN
TZ = ZoneInfo("Asia/Shanghai")
START = SHANGHAI_NOON - 11 * HOUR - 30 * MIN  # 2024-03-04T00:30+08:00
RULES_ON = {name: {"enabled": name != "stale"} for name in RULES}  # stale's restart rule is tested elsewhere


def _config(tmp_path: Path):  # type: ignore[no-untyped-def]
    overrides = {"rate": {"window_s": 1800}, "humidity": {"delay_s": 300, "clear_delay_s": 300}}
    return site_config(tmp_path, overrides=overrides, sensors=("T1", "T2", "D1"),
                       alerts={"rules": RULES_ON, "stuck": {"hours": 2}, "stability": {"min_coverage": 0.5}})


def _day(rng: random.Random, start: int, hours: int) -> list[Reading]:
    """Readings of T1/T2 (T and RH) and door D1, one a minute, in arrival order: 5 % arrive a few minutes
    late; T2's humidity is flat for the last 3 h of the first day (stuck)."""
    out: list[Reading] = []
    held: list[Reading] = []
    values = {("T1", "temperature"): 20.0, ("T1", "humidity"): 55.0, ("T2", "temperature"): 17.0,
              ("T2", "humidity"): 50.0}
    for minute in range(hours * 60):
        ts = start + minute * MIN
        for (sensor, quantity), value in values.items():
            step = 0.3 if quantity == "temperature" else 1.0
            flat = sensor == "T2" and quantity == "humidity" and 23 * 60 <= minute < 26 * 60
            value = value if flat else round(min(30, max(10, value + rng.choice((-1, 0, 0, 1)) * step)), 2)
            values[(sensor, quantity)] = value
            reading = Reading(sensor, quantity, value, ts, "A1")
            (held if rng.random() < 0.05 else out).append(reading)
        if minute % 47 == 0:
            out.append(Reading("D1", "door", float(minute % 94 == 0), ts, "A1"))
        if minute % 5 == 4:
            out.extend(held)  # the late ones, after newer readings of their series
            held = []
    return out + held


def _feed(engine: AlertEngine, store: AlertStore, readings: SqliteStore | None, arrival: list[Reading]) -> list:
    out = []
    for start in range(0, len(arrival), 50):
        batch = arrival[start:start + 50]
        if readings is not None:
            readings.write(Batch(readings=batch))
        with store.batch():
            out += engine.feed_many(batch)
    return out


def _memory(engine: AlertEngine) -> dict:
    series = engine.series
    windows = {}
    for slot, key in enumerate(series.keys):
        stats = series.day_stats(slot)
        windows[key] = (series.newest(slot), None if stats is None else (stats.min, stats.max, stats.count,
                                                                         round(stats.sum, 6)), series.swing(slot))
    rules = {rule.name: rule.snapshot() for rule in engine.rules}
    for row in rules["stability"]["days"]:
        row["sum"] = round(row["sum"], 6)  # the day's sum: same readings, summed in another order by SQLite
    rules["stability"]["days"].sort(key=lambda row: (row["sensor"], row["quantity"], row["day"]))
    return {"windows": windows, "rules": rules}


def _without_value(transition) -> tuple:  # type: ignore[no-untyped-def]
    return (transition.ts_ms, transition.alert, transition.rule, transition.sensor, transition.quantity,
            transition.state, transition.detail, transition.limit)


def _dump(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        return {
            "alerts": conn.execute("SELECT id, ident, state, opened_ms, updated_ms, active_ms, cleared_ms, closed_ms, "
                                   "fire_count, detail FROM alert_alerts ORDER BY id").fetchall(),
            "transitions": conn.execute("SELECT alert_id, ts_ms, from_state, to_state FROM alert_transitions "
                                        "ORDER BY id").fetchall(),
            "conditions": conn.execute("SELECT ident, phase, since_ms, wait_ms, alert_id FROM alert_conditions "
                                       "ORDER BY ident").fetchall(),
            # repeats due at the same moment are queued in either order after a restart
            "notifications": conn.execute("SELECT alert_id, transition, level, created_ms FROM notification_queue "
                                          "ORDER BY created_ms, alert_id, transition").fetchall(),
        }
    finally:
        conn.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_rebuild_from_the_store_equals_live_feeding(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    first_day, next_day = _day(rng, START, 26), _day(rng, START + 26 * HOUR, 24)
    (tmp_path / "live").mkdir()
    live_db = tmp_path / "live" / "archmon.db"
    readings = SqliteStore(live_db, tz=TZ)
    live_store = AlertStore(live_db)
    live = AlertEngine(_config(tmp_path), live_store)
    live_out = _feed(live, live_store, readings, first_day)
    assert live.counters.late_readings > 50
    # the restart: a copy of the file as it is now, and an engine that rebuilds from it
    (tmp_path / "restarted").mkdir()
    copy_db = tmp_path / "restarted" / "archmon.db"
    with sqlite3.connect(live_db) as src, sqlite3.connect(copy_db) as dst:
        src.backup(dst)
    restart_at = START + 26 * HOUR
    copy_readings = SqliteStore(copy_db, tz=TZ)
    copy_store = AlertStore(copy_db)
    restarted = AlertEngine(_config(tmp_path), copy_store)
    report = restarted.rebuild(copy_readings, restart_at)
    assert report.series == 5
    assert _memory(restarted) == _memory(live)
    stuck = restarted.rules[[r.name for r in restarted.rules].index("stuck")].snapshot()["flat"]
    # the flat line, from 3 h of history (it began at 23 h, or earlier if the walk happened to stand still)
    assert START + 22 * HOUR < stuck["T2/humidity"][1] <= START + 23 * HOUR
    live_out = _feed(live, live_store, readings, next_day) + live.advance(restart_at + 25 * HOUR)
    restarted_out = _feed(restarted, copy_store, copy_readings, next_day) + restarted.advance(restart_at + 25 * HOUR)
    assert len(live_out) > 5, "the day should exercise the rules"
    # the same transitions at the same times; the value a timer-driven transition reports is the lifecycle's
    # last condition, persisted at phase changes only (a restart shows the one saved then): left out here
    assert [_without_value(t) for t in restarted_out] == [_without_value(t) for t in live_out]
    for store in (readings, copy_readings, live_store, copy_store):
        store.close()
    assert _dump(copy_db) == _dump(live_db)


def test_memory_history_answers_what_the_store_answers(tmp_path: Path) -> None:
    """Replay rebuilds from MemoryHistory: it must give the store's answers for the same readings."""
    rng = random.Random(3)
    arrival = _day(rng, START, 30)
    store = SqliteStore(tmp_path / "s.db", tz=TZ)
    try:
        for start in range(0, len(arrival), 500):
            store.write(Batch(readings=arrival[start:start + 500]))
        memory = MemoryHistory(arrival, TZ)
        assert [(r.sensor, r.quantity, r.value, r.ts_ms) for r in store.latest()] == [
            (r.sensor, r.quantity, r.value, r.ts_ms) for r in memory.latest()]
        for sensor, quantity in (("T1", "temperature"), ("T2", "humidity"), ("D1", "door")):
            for resolution in ("hour", "day"):
                ours = [(b.start_ms, b.min, b.max, round(b.sum, 6), b.count)
                        for b in memory.buckets(sensor, quantity, START - HOUR, START + 40 * HOUR, resolution)]
                theirs = [(b.start_ms, b.min, b.max, round(b.sum, 6), b.count)
                          for b in store.buckets(sensor, quantity, START - HOUR, START + 40 * HOUR, resolution)]
                assert ours == theirs, (sensor, quantity, resolution)
            assert memory.series(sensor, quantity, START + HOUR, START + 3 * HOUR) == store.series(
                sensor, quantity, START + HOUR, START + 3 * HOUR)
    finally:
        store.close()


def test_a_restart_neither_judges_a_day_twice_nor_skips_one(tmp_path: Path) -> None:
    enabled = {name: {"enabled": name == "stability"} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled, "stability": {"min_coverage": 0}}, sensors=("T1",))
    day_start = START - 30 * MIN
    day = [Reading("T1", "temperature", 20.0 + (i % 2) * 3, day_start + i * HOUR, "A1") for i in range(24)]
    db = tmp_path / "a.db"
    readings = SqliteStore(db, tz=TZ)
    readings.write(Batch(readings=day))
    store = AlertStore(db)
    engine = AlertEngine(config, store)
    for reading in day:
        engine.feed(reading)
    # down before midnight: the restarted engine judges the day it missed, once
    store.close()
    store = AlertStore(db)
    engine = AlertEngine(config, store)
    engine.rebuild(readings, day_start + 24 * HOUR + 10 * MIN)
    out = engine.advance(day_start + 24 * HOUR + 10 * MIN)
    assert [(t.state, t.detail) for t in out] == [("active", "A 2024-03-04")]
    # judged; down again after midnight: nothing is judged twice
    store.close()
    store = AlertStore(db)
    engine = AlertEngine(config, store)
    engine.rebuild(readings, day_start + 24 * HOUR + 20 * MIN)
    assert engine.advance(day_start + 24 * HOUR + 20 * MIN) == []
    assert store.rule_states()["stability"] == {"judged_through": engine.rules[0].judged_through}
    store.close()
    readings.close()


def test_replay_restart_rebuilds_from_the_rows_replayed(tmp_path: Path) -> None:
    from alerts.replay import ReplayAction, ReplayRow, profile_config, run_replay

    rows = [ReplayRow(START + i * 20 * MIN, "T1", "temperature", v)
            for i, v in enumerate((20.0, 21.0, 23.0, 23.1, 23.0))]
    config = profile_config("paper", rows, "Asia/Shanghai", alerts={
        "rules": {name: {"enabled": name == "rate"} for name in RULES}})
    plain = run_replay(rows, config, db_path=tmp_path / "a.db")
    restarted = run_replay(rows, config, db_path=tmp_path / "b.db",
                           actions=[ReplayAction(START + 30 * MIN, "restart")])
    # the rise spans the restart: the rebuilt window still holds 20.0 and 21.0
    assert [(t.state, t.value) for t in restarted] == [(t.state, t.value) for t in plain] == [("active", 3.0)]


@pytest.mark.parametrize(("zone", "day_start_iso"), [("Asia/Shanghai", "2024-03-04T00:00:00+08:00"),
                                                       ("Europe/Brussels", "2024-03-31T00:00:00+01:00")])
def test_the_first_day_is_judged_when_the_engine_was_down_over_its_midnight(
        tmp_path: Path, zone: str, day_start_iso: str) -> None:
    """No day judged yet (no marker) and the store already holds the next day: the first day is still judged,
    once (review finding 9: only the newest day was begun). The Brussels day is the 23 h one of March's DST."""
    import datetime as dt

    tz = ZoneInfo(zone)
    enabled = {name: {"enabled": name == "stability"} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled}, sensors=("T1",), timezone=zone)
    day_start = int(dt.datetime.fromisoformat(day_start_iso).timestamp() * 1000)
    day_end = int(dt.datetime.combine(dt.datetime.fromisoformat(day_start_iso).date() + dt.timedelta(days=1),
                                      dt.time(0), tzinfo=tz).timestamp() * 1000)
    day = [Reading("T1", "temperature", 20.0 + (i % 2) * 3, ts, "A1")
           for i, ts in enumerate(range(day_start + 10 * MIN, day_end, 30 * MIN))]
    db = tmp_path / "a.db"
    readings = SqliteStore(db, tz=tz)
    readings.write(Batch(readings=day))
    store = AlertStore(db)
    engine = AlertEngine(config, store)
    engine.feed_many(day[:5])  # the engine judged the morning, then went down until after midnight
    store.close()
    readings.write(Batch(readings=[Reading("T1", "temperature", 20.0, day_end + 5 * MIN, "A1")]))
    store = AlertStore(db)
    engine = AlertEngine(config, store)
    engine.rebuild(readings, day_end + 10 * MIN)
    out = engine.advance(day_end + 10 * MIN)
    day_name = dt.datetime.fromisoformat(day_start_iso).date().isoformat()
    assert [(t.state, t.detail, t.value) for t in out] == [("active", f"A {day_name}", 3.0)]
    store.close()
    store = AlertStore(db)
    engine = AlertEngine(config, store)  # and it is never judged again
    engine.rebuild(readings, day_end + 20 * MIN)
    assert engine.advance(day_end + 20 * MIN) == []
    store.close()
    readings.close()
