"""Engine behaviour not covered by the case folders: notifications, restarts, rolling stability, registry."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import alerts.rules
from alerts.engine import AlertEngine
from alerts.rules import RULES, Rule
from alerts.store import AlertStore
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000


def test_every_rule_module_is_registered() -> None:
    registered = set(RULES.values())
    for info in pkgutil.iter_modules(alerts.rules.__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"alerts.rules.{info.name}")
        own = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Rule) and c.__module__ == module.__name__]
        assert len(own) == 1, f"{info.name}: one rule class per module"
        assert own[0] in registered, f"{info.name}: {own[0].__name__} is not in RULES"
        assert RULES[own[0].name] is own[0], f"{info.name}: registered under another name"


def _engine(tmp_path: Path, **alerts_settings) -> tuple[AlertEngine, AlertStore]:
    config = site_config(tmp_path, alerts=alerts_settings)
    store = AlertStore(tmp_path / "alerts.db")
    return AlertEngine(config, store), store


def test_repeat_and_escalation_until_acknowledged(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, notify={"repeat_s": {"critical": 900}, "escalation_after_s": [1800, 3600]})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("S1", "smoke", 1.0, t0, "A1"))
    engine.advance(t0 + 40 * MIN)
    sent = [(n["transition"], n["level"], (n["created_ms"] - t0) // MIN) for n in store.notifications()
            if n["alert_id"] == 1]
    # at 30 min the escalation is the notification; the repeat due then is not sent twice
    assert sent == [("fired", 0, 0), ("repeat", 0, 15), ("escalate", 1, 30)]
    engine.acknowledge(1, "duty officer", "on my way", t0 + 41 * MIN)
    engine.advance(t0 + 120 * MIN)
    assert len([n for n in store.notifications() if n["alert_id"] == 1]) == 3  # acked: nothing more
    store.close()


def test_restart_after_firing_does_not_renotify(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, notify={"repeat_s": {"critical": 0}, "escalation_after_s": [3600]})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("S1", "smoke", 1.0, t0, "A1"))
    store.close()  # crash: nothing checkpointed
    store = AlertStore(tmp_path / "alerts.db")
    engine = AlertEngine(site_config(tmp_path, alerts={"notify": {"repeat_s": {"critical": 0},
                                                                   "escalation_after_s": [3600]}}), store)
    transitions = engine.feed(Reading("S1", "smoke", 1.0, t0 + MIN, "A1"))
    assert transitions == []
    engine.advance(t0 + 61 * MIN)
    sent = [(n["transition"], n["level"]) for n in store.notifications() if n["alert_id"] == 1]
    assert sent == [("fired", 0), ("escalate", 1)]
    assert [a["rule"] for a in store.alerts() if a["rule"] == "smoke"] == ["smoke"]
    store.close()


def test_rolling_stability_warns_before_the_day_ends(tmp_path: Path) -> None:
    enabled = {name: {"enabled": name == "stability_24h"} for name in RULES}
    engine, store = _engine(tmp_path, rules=enabled)
    t0 = SHANGHAI_NOON
    out = engine.feed(Reading("T1", "temperature", 20.0, t0, "A1"))
    out += engine.feed(Reading("T1", "temperature", 21.5, t0 + 60 * MIN, "A1"))
    assert out == []
    out = engine.feed(Reading("T1", "temperature", 22.5, t0 + 120 * MIN, "A1"))
    assert [(t.rule, t.state, t.value) for t in out] == [("stability_24h", "active", 2.5)]
    store.close()


def test_rule_memory_is_rebuilt_from_the_readings_store_after_a_restart(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from collector.records import Batch
    from collector.store import SqliteStore

    enabled = {name: {"enabled": name == "stability"} for name in RULES}
    sparse = {"min_coverage": 0}  # two readings an hour apart: judge them anyway (coverage has its own case)
    engine, store = _engine(tmp_path, rules=enabled, stability=sparse)
    t0 = SHANGHAI_NOON
    first = Reading("T1", "temperature", 20.0, t0, "A1")
    readings = SqliteStore(tmp_path / "alerts.db", tz=ZoneInfo("Asia/Shanghai"))
    readings.write(Batch(readings=[first]))
    engine.feed(first)
    store.close()  # no checkpoint: the day so far comes back from the store's daily rollup
    store = AlertStore(tmp_path / "alerts.db")
    engine = AlertEngine(site_config(tmp_path, alerts={"rules": enabled, "stability": sparse}), store)
    engine.rebuild(readings, t0 + 30 * MIN)
    readings.close()
    engine.feed(Reading("T1", "temperature", 23.0, t0 + 60 * MIN, "A1"))
    out = engine.advance(t0 + 13 * 60 * MIN)  # past local midnight
    assert [(t.rule, t.state, t.value) for t in out] == [("stability", "active", 3.0)]
    store.close()


def test_unknown_sensor_is_ignored(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path)
    assert engine.feed(Reading("ghost", "smoke", 1.0, SHANGHAI_NOON, "A1")) == []
    store.close()


BAND_ONLY = {name: {"enabled": name == "band"} for name in RULES}
NO_DELAYS = {"humidity": {"delay_s": 0, "clear_delay_s": 0}}


def _band_now(tmp_path: Path, *, overrides: dict = NO_DELAYS, **alerts_settings) -> tuple[AlertEngine, AlertStore]:
    """An engine running only the band rule, whose humidity alert fires and clears at once by default."""
    rules = {name: {**BAND_ONLY[name], **alerts_settings.pop("rules", {}).get(name, {})} for name in RULES}
    config = site_config(tmp_path, alerts={**alerts_settings, "rules": rules}, overrides=overrides)
    store = AlertStore(tmp_path / "alerts.db")
    return AlertEngine(config, store), store


def test_restart_after_the_close_time_closes_then_opens_a_new_alert(tmp_path: Path) -> None:
    engine, store = _band_now(tmp_path)
    t0 = SHANGHAI_NOON
    engine.feed(Reading("T1", "humidity", 65.0, t0, "A1"))
    out = engine.feed(Reading("T1", "humidity", 55.0, t0 + 10 * MIN, "A1"))
    assert [(t.alert, t.state) for t in out] == [(1, "cleared")]
    store.close()  # crash 10 min after the clear; down for two hours
    store = AlertStore(tmp_path / "alerts.db")
    engine = AlertEngine(site_config(tmp_path, alerts={"rules": BAND_ONLY}, overrides=NO_DELAYS), store)
    out = engine.feed(Reading("T1", "humidity", 66.0, t0 + 130 * MIN, "A1"))
    assert [(t.alert, t.state, (t.ts_ms - t0) // MIN) for t in out] == [(1, "closed", 70), (2, "active", 130)]
    closed = store.alert(1)
    assert closed is not None and (closed["closed_ms"] - t0) // MIN == 70 and closed["acked_by"] is None
    notes = [r["note"] for r in store.conn.execute("SELECT note FROM alert_transitions WHERE to_state = 'closed'")]
    assert notes == ["cleared for 3600 s"]
    audited = store.conn.execute("SELECT COUNT(*) FROM audit_log WHERE payload LIKE '%\"to\": \"closed\"%'")
    assert audited.fetchone()[0] == 1
    assert store.verify_audit().ok
    # closing is not notified: fired, recovered, fired
    assert [(n["alert_id"], n["transition"]) for n in store.notifications()] == [
        (1, "fired"), (1, "recovered"), (2, "fired")]
    store.close()


def test_close_after_zero_closes_at_the_clear_and_per_rule_setting_wins(tmp_path: Path) -> None:
    engine, store = _band_now(tmp_path, close_after_s=7200, rules={"band": {"close_after_s": 0}})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("T1", "humidity", 65.0, t0, "A1"))
    out = engine.feed(Reading("T1", "humidity", 55.0, t0 + MIN, "A1"))
    assert [(t.alert, t.state) for t in out] == [(1, "cleared"), (1, "closed")]
    out = engine.feed(Reading("T1", "humidity", 65.0, t0 + 2 * MIN, "A1"))
    assert [(t.alert, t.state) for t in out] == [(2, "active")]
    assert engine.settings.close_after_ms("band") == 0 and engine.settings.close_after_ms("stale") == 7_200_000
    store.close()


def test_close_after_must_not_be_negative(tmp_path: Path) -> None:
    from alerts.site import check_config

    bad = {"close_after_s": -1, "rules": {"band": {"close_after_s": -5}}}
    problems = check_config(site_config(tmp_path, alerts=bad))
    assert any(p.startswith("alerts.close_after_s:") and "-1" in p for p in problems)
    assert any(p.startswith("alerts.rules.band.close_after_s:") for p in problems)


def test_cleared_by_hand_closes_after_the_quiet_period(tmp_path: Path) -> None:
    engine, store = _band_now(tmp_path, overrides={"humidity": {"delay_s": 0, "clear_delay_s": 600}})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("T1", "humidity", 65.0, t0, "A1"))
    assert engine.feed(Reading("T1", "humidity", 55.0, t0 + MIN, "A1")) == []  # clear delay running
    out = engine.clear(1, "wang", "back inside, no need to wait", t0 + 2 * MIN)
    assert [(t.alert, t.state) for t in out] == [(1, "cleared")]  # 55 % no longer violates: not re-raised
    out = engine.advance(t0 + 62 * MIN)
    assert [(t.alert, t.state, (t.ts_ms - t0) // MIN) for t in out] == [(1, "closed", 62)]
    store.close()


def test_stability_alert_row_names_the_latest_failing_day(tmp_path: Path) -> None:
    enabled = {name: {"enabled": name == "stability"} for name in RULES}
    engine, store = _engine(tmp_path, rules=enabled, stability={"min_coverage": 0})
    day = 24 * 60 * MIN
    t0 = SHANGHAI_NOON  # Monday 4 March, noon
    out = []
    for offset, value in ((0, 20.0), (60 * MIN, 23.0), (day, 20.0), (day + 60 * MIN, 24.0)):
        out += engine.feed(Reading("T1", "temperature", value, t0 + offset, "A1"))
    out += engine.advance(t0 + 2 * day)  # past the midnights ending 4 and 5 March: both days fail
    assert [(t.state, t.detail) for t in out] == [("active", "A 2024-03-04")]
    alert = store.alert(out[0].alert)
    assert alert is not None and (alert["detail"], alert["value"]) == ("A 2024-03-05", 4.0)
    store.close()


def _stale_run(tmp_path: Path) -> tuple[AlertEngine, AlertStore, int]:
    """Three sensors report every minute for 10 min; graceful stop; restarted 20 min later (timeout 3 min)."""
    config = site_config(tmp_path, sensors=("T1", "T2", "T3"))
    store = AlertStore(tmp_path / "alerts.db")
    engine = AlertEngine(config, store)
    t0 = SHANGHAI_NOON
    for i in range(10):
        for sensor in ("T1", "T2", "T3"):
            engine.feed(Reading(sensor, "temperature", 20.0, t0 + i * MIN, "A1"))
    store.close()
    store = AlertStore(tmp_path / "alerts.db")
    return AlertEngine(config, store), store, t0 + 29 * MIN


def test_restart_after_long_downtime_does_not_flood_stale_alerts(tmp_path: Path) -> None:
    engine, store, start = _stale_run(tmp_path)
    assert engine.advance(start) == []  # the service ticks at once: downtime is not the sensors' fault
    for i in range(10):  # every sensor reports after the restart: never stale
        for sensor in ("T1", "T2", "T3"):
            assert [t for t in engine.feed(Reading(sensor, "temperature", 20.0, start + i * MIN, "A1"))
                    if t.rule == "stale"] == []
    assert store.notifications() == []
    store.close()


def test_sensor_silent_after_restart_goes_stale_after_its_timeout(tmp_path: Path) -> None:
    engine, store, start = _stale_run(tmp_path)
    out = engine.advance(start)
    for i in range(1, 6):  # T1 and T2 report, T3 stays silent
        for sensor in ("T1", "T2"):
            out += engine.feed(Reading(sensor, "temperature", 20.0, start + i * MIN, "A1"))
    stale = [(t.sensor, t.state, t.ts_ms - start) for t in out if t.rule == "stale"]
    assert stale == [("T3", "active", 3 * MIN)]  # 3 × 60 s after the start
    store.close()


def test_titles_name_the_room_and_carry_units(tmp_path: Path) -> None:
    from alerts.messages import STATE_NAMES, title
    from alerts.model import Condition

    engine, store = _engine(tmp_path)  # room A1 is configured with name_zh 一号库房 and no name_en
    engine.feed(Reading("T1", "humidity", 70.0, SHANGHAI_NOON, "A1"))
    alert = next(a for a in store.alerts() if a["rule"] == "band")
    assert alert["title_zh"] == "一号库房 T1：相对湿度高于上限 60 %RH"
    assert alert["title_en"] == "A1 T1: relative humidity above the upper limit 60 %RH"  # no name_en: the id
    store.close()
    names = {"A1": ("一号库房", "Stack 1")}
    rolling = Condition("stability_24h", "T1/humidity", "A1", "T1", "humidity", True, 0, value=6.0, limit=5.0)
    assert title(rolling, "zh", names) == ("一号库房 T1：相对湿度 24 小时波动超限（≤ 5 %RH）",
                                          "Stack 1 T1: relative humidity fluctuation over 5 %RH in the last 24 h")
    low = Condition("band", "T1/temperature/low", "A1", "T1", "temperature", True, 0, limit=14.0, detail="low")
    assert title(low, "zh", names)[0] == "一号库房 T1：温度低于下限 14 ℃"
    assert title(low, "zh")[0] == "A1 T1：温度低于下限 14 ℃"
    assert STATE_NAMES["pending"][0] == "待触发"


def test_a_refire_after_a_hand_clear_counts_repeats_and_escalations_from_the_new_firing(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, notify={"repeat_s": {"critical": 900}, "escalation_after_s": [1800, 3600]})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("S1", "smoke", 1.0, t0, "A1"))
    out = engine.clear(1, "wang", "test button, surely", t0 + 10 * MIN)  # still smoke: raised again at once
    assert [(t.state, (t.ts_ms - t0) // MIN) for t in out if t.alert == 1] == [("cleared", 10), ("active", 10)]
    engine.advance(t0 + 45 * MIN)
    sent = [(n["transition"], n["level"], (n["created_ms"] - t0) // MIN) for n in store.notifications()
            if n["alert_id"] == 1]
    # from the new firing at 10 min: repeat at 25, level 1 at 40 (not 30, 30 min after the first firing)
    assert sent == [("fired", 0, 0), ("fired", 0, 10), ("repeat", 0, 25), ("escalate", 1, 40)]
    store.close()


def test_a_refire_of_a_cleared_alert_counts_its_escalation_from_the_new_firing(tmp_path: Path) -> None:
    engine, store = _band_now(tmp_path, notify={"repeat_s": {"major": 0}, "escalation_after_s": [1800, 3600]})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("T1", "humidity", 66.0, t0, "A1"))
    engine.feed(Reading("T1", "humidity", 55.0, t0 + 5 * MIN, "A1"))
    out = engine.feed(Reading("T1", "humidity", 66.0, t0 + 20 * MIN, "A1"))
    assert [(t.alert, t.state) for t in out] == [(1, "active")]  # the same alert again (anti-flap)
    engine.advance(t0 + 75 * MIN)
    sent = [(n["transition"], n["level"], (n["created_ms"] - t0) // MIN) for n in store.notifications()]
    assert sent == [("fired", 0, 0), ("recovered", 0, 5), ("fired", 0, 20), ("escalate", 1, 50)]
    store.close()


def test_a_window_ended_early_by_another_process_is_honoured(tmp_path: Path) -> None:
    overrides = {"humidity": {"delay_s": 0, "clear_delay_s": 0}}  # temperature keeps the 15 min delay
    engine, store = _band_now(tmp_path, overrides=overrides, notify={"repeat_s": {"major": 0},
                                                                     "escalation_after_s": [1800, 3600]})
    t0 = SHANGHAI_NOON
    out = engine.feed(Reading("T1", "humidity", 66.0, t0 - 25 * MIN, "A1"))  # active; level 1 due at t0 + 5
    window = engine.maintenance("A1", t0 + 120 * MIN, "filter change", "zhang", t0)
    out += engine.feed(Reading("T1", "temperature", 10.0, t0 + 10 * MIN, "A1"))  # silenced by the window
    assert [(t.alert, t.state) for t in out] == [(1, "active")]
    cli = AlertStore(tmp_path / "alerts.db")  # `archmon alerts maintenance --end` in another process
    cli.end_maintenance(window, "li", "done early", t0 + 30 * MIN)
    assert cli.maintenance_windows(t0 + 31 * MIN) == []
    cli.close()
    out = engine.advance(t0 + 30 * MIN)
    out += engine.advance(t0 + 50 * MIN)
    # judged as when a window expires: the delay starts at the (new) end and the alert fires after it
    assert [(t.alert, t.state, (t.ts_ms - t0) // MIN) for t in out] == [(2, "pending", 30), (2, "active", 45)]
    sent = [(n["alert_id"], n["transition"], n["level"], (n["created_ms"] - t0) // MIN)
            for n in store.notifications()]
    # humidity's level-1 escalation (due at 5, held back by the window) goes out at its new end, level 2 on time
    assert sent == [(1, "fired", 0, -25), (1, "escalate", 1, 30), (1, "escalate", 2, 35), (2, "fired", 0, 45)]
    engine.advance(t0 + 200 * MIN)  # the timer the window had pushed to its original end sends nothing more
    assert len([n for n in store.notifications() if n["alert_id"] == 1]) == 3
    ended = store.conn.execute("SELECT actor, payload FROM audit_log WHERE kind = 'maintenance_end'").fetchall()
    assert [(a, json.loads(p)["comment"]) for a, p in ended] == [("li", "done early")]
    assert store.verify_audit().ok
    store.close()


def test_a_file_from_before_early_ends_gets_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE maintenance_windows (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, "
                 "start_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, "
                 "created_ms INTEGER NOT NULL)")
    conn.execute("INSERT INTO maintenance_windows (room, start_ms, until_ms, reason, by, created_ms) "
                 "VALUES ('A1', 0, 7200000, 'old', 'zhang', 0)")
    conn.commit()
    conn.close()
    store = AlertStore(tmp_path / "old.db")
    assert store.maintenance_until("A1", 1000) == 7_200_000
    store.end_maintenance(1, "li", "", 3_600_000)
    assert store.maintenance_until("A1", 1000) == 3_600_000
    assert store.pending_changes()[1][0]["end_ms"] == 3_600_000
    store.close()


def test_a_file_of_the_previous_version_loses_its_checkpoints_and_keeps_its_alerts(tmp_path: Path) -> None:
    """The previous version created the same tables without recording a schema version, and checkpointed
    every window into alert_rule_state: migration 1 takes the file as it is, migration 2 drops those."""
    import sqlite3

    from alerts.store._schema import _TABLES
    from archmon.sqlite import schema_version

    conn = sqlite3.connect(tmp_path / "old.db")
    for statement in _TABLES:
        conn.execute(statement)
    conn.execute("INSERT INTO alert_rule_state VALUES ('rate', ?, 0)", (json.dumps({"windows": [["T1", "x", []]]}),))
    conn.execute("INSERT INTO alert_alerts (ident, rule, room, severity, state, opened_ms, updated_ms) "
                 "VALUES ('smoke:S1', 'smoke', 'A1', 'critical', 'active', 0, 0)")
    conn.commit()
    conn.close()
    store = AlertStore(tmp_path / "old.db")
    assert store.rule_states() == {} and store.open_alert("smoke:S1")["state"] == "active"
    assert schema_version(store.conn, "alerts") == 3
    store.close()
