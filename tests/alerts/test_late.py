"""Late and out-of-order readings, rule by rule: an older reading never overrides the state of a newer one.

Each rule's docstring states what it does with a reading older than its series' newest; these tests hold
it to that (device time, a redelivered backlog). Smoke and leak are the exception on purpose: an alarm in
a late reading still reaches a person.
"""

from __future__ import annotations

from pathlib import Path

from alerts.engine import AlertEngine
from alerts.rules import RULES
from alerts.store import AlertStore
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000
HOUR = 60 * MIN
T = SHANGHAI_NOON
NO_DELAYS = {"temperature": {"delay_s": 0, "clear_delay_s": 0}, "humidity": {"delay_s": 0, "clear_delay_s": 0},
             "mould": {"delay_s": 0}}


def _engine(tmp_path: Path, *rules: str, overrides: dict | None = None, **alerts: object) -> tuple[AlertEngine,
                                                                                                     AlertStore]:
    enabled = {name: {"enabled": name in rules} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled, **alerts}, overrides=overrides or NO_DELAYS,
                         sensors=("T1", "S1", "D1", "W1"))
    store = AlertStore(tmp_path / "a.db")
    return AlertEngine(config, store), store


def _states(store: AlertStore) -> dict[str, str]:
    return {a["ident"]: a["state"] for a in store.alerts()}


def test_band_a_late_in_band_value_does_not_clear_a_current_violation(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, "band")
    engine.feed(Reading("T1", "temperature", 20.0, T, "A1"))
    out = engine.feed(Reading("T1", "temperature", 27.0, T + 10 * MIN, "A1"))
    assert [(t.rule, t.state) for t in out] == [("band", "active")]
    assert engine.feed(Reading("T1", "temperature", 20.0, T + 5 * MIN, "A1")) == []  # late, in band
    assert engine.advance(T + 60 * MIN) == []
    assert _states(store) == {"band:T1/temperature/high": "active"}
    assert engine.counters.late_readings == 1
    # a late out-of-band value after the band is fine again raises nothing
    engine.feed(Reading("T1", "temperature", 20.0, T + 61 * MIN, "A1"))
    assert _states(store)["band:T1/temperature/high"] == "cleared"
    assert engine.feed(Reading("T1", "temperature", 27.0, T + 59 * MIN, "A1")) == []
    store.close()


def test_mould_a_late_humid_reading_does_not_start_the_delay(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, "mould", overrides={"mould": {"delay_s": 600}})
    engine.feed(Reading("T1", "humidity", 55.0, T, "A1"))
    assert engine.feed(Reading("T1", "humidity", 70.0, T - MIN, "A1")) == []
    assert engine.advance(T + HOUR) == [] and _states(store) == {}
    store.close()


def test_stuck_a_late_different_value_does_not_break_the_flat_line(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, "stuck", stuck={"hours": 1})
    out = []
    for minute in range(0, 70, 10):
        out += engine.feed(Reading("T1", "humidity", 50.0, T + minute * MIN, "A1"))
    assert [(t.rule, t.state) for t in out] == [("stuck", "active")]
    assert engine.feed(Reading("T1", "humidity", 53.0, T + 30 * MIN, "A1")) == []  # late, different
    assert _states(store) == {"stuck:T1/humidity": "active"}
    out = engine.feed(Reading("T1", "humidity", 50.5, T + 71 * MIN, "A1"))  # a newer different value clears
    assert [(t.rule, t.state) for t in out] == [("stuck", "cleared")]
    store.close()


def test_stale_a_late_reading_neither_clears_offline_nor_postpones_staleness(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, "stale")
    engine.feed(Reading("T1", "temperature", 20.0, T, "A1"))
    out = engine.availability("T1", "offline", T + 2 * MIN)
    assert [(t.rule, t.state) for t in out] == [("stale", "active")]
    # a redelivered reading taken before the offline message is no proof the sensor is back
    assert engine.feed(Reading("T1", "temperature", 20.0, T + MIN, "A1")) == []
    assert _states(store) == {"stale:T1": "active"}
    out = engine.feed(Reading("T1", "temperature", 20.0, T + 3 * MIN, "A1"))
    assert [(t.rule, t.state) for t in out if t.sensor == "T1"] == [("stale", "cleared")]
    # a late reading does not move the last-seen time: stale 3 min after the newest, not after the late one
    engine.feed(Reading("T1", "humidity", 50.0, T + 3 * MIN, "A1"))
    engine.feed(Reading("T1", "temperature", 20.0, T + 2 * MIN + 30_000, "A1"))
    out = engine.advance(T + 6 * MIN)
    assert [(t.rule, t.state, t.ts_ms) for t in out if t.sensor == "T1"] == [("stale", "active", T + 6 * MIN)]
    store.close()


def test_door_rules_take_only_the_newest_door_reading_for_the_state_now(tmp_path: Path) -> None:
    """An old "open" after a newer "closed" sets no state (door_hours ignores it); what it proves about the past
    is door_open's: open 30 min, 10 allowed, so raised and cleared at once (see test_late_runs.py)."""
    from alerts.history import MemoryHistory

    engine, store = _engine(tmp_path, "door_open", "door_hours")
    history = engine.history.source = MemoryHistory((), engine.tz)

    def feed(reading: Reading) -> list:
        history.add(reading)  # stored before it is judged, as in archmon run
        return engine.feed(reading)

    night = T + 10 * HOUR  # 22:00 local, outside working hours
    feed(Reading("D1", "door", 0.0, night, "A1"))
    # an old "open" (in the middle of the night) arriving after the newer "closed"
    out = feed(Reading("D1", "door", 1.0, night - 30 * MIN, "A1"))
    assert [(t.rule, t.state) for t in out] == [("door_open", "active"), ("door_open", "cleared")]
    assert [t.state for t in engine.advance(night + HOUR)] == ["closed"]  # an hour after it cleared
    out = feed(Reading("D1", "door", 1.0, night + HOUR + MIN, "A1"))
    assert sorted((t.rule, t.state) for t in out) == [("door_hours", "active"), ("door_open", "pending")]
    assert feed(Reading("D1", "door", 0.0, night + HOUR, "A1")) == []  # a late "closed" before the opening
    assert {a["state"] for a in store.alerts() if a["rule"] == "door_open"} == {"closed", "pending"}
    assert _states(store)["door_hours:D1"] == "active"
    store.close()


def test_battery_an_old_low_reading_after_a_new_battery_raises_nothing(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, "battery")
    engine.feed(Reading("T1", "battery", 10.0, T, "A1"))
    engine.feed(Reading("T1", "battery", 100.0, T + HOUR, "A1"))
    assert _states(store) == {"battery:T1": "cleared"}
    assert engine.feed(Reading("T1", "battery", 12.0, T + 30 * MIN, "A1")) == []
    assert _states(store) == {"battery:T1": "cleared"}
    store.close()


def test_stability_a_reading_of_a_judged_day_is_counted_not_judged(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, "stability", stability={"min_coverage": 0})
    day_start = T - 12 * HOUR
    engine.feed(Reading("T1", "temperature", 20.0, day_start + HOUR, "A1"))
    engine.feed(Reading("T1", "temperature", 20.5, day_start + 20 * HOUR, "A1"))
    out = engine.advance(day_start + 24 * HOUR)
    assert out == []  # 0.5 ℃: the day passes
    assert engine.feed(Reading("T1", "temperature", 25.0, day_start + 10 * HOUR, "A1")) == []  # late, judged day
    rule = next(r for r in engine.rules if r.name == "stability")
    assert rule.late_for_day == 1 and rule.judged_through > 0
    # a late reading of the day being accumulated counts, whatever its arrival order
    engine.feed(Reading("T1", "temperature", 20.0, day_start + 30 * HOUR, "A1"))
    engine.feed(Reading("T1", "temperature", 24.0, day_start + 25 * HOUR, "A1"))
    out = engine.advance(day_start + 48 * HOUR)
    assert [(t.rule, t.state, t.value) for t in out] == [("stability", "active", 4.0)]
    store.close()


def test_smoke_a_late_alarm_still_alerts_and_a_late_clear_never_ends_one(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, "smoke", "leak")
    engine.feed(Reading("S1", "smoke", 0.0, T, "A1"))
    out = engine.feed(Reading("S1", "smoke", 1.0, T - 5 * MIN, "A1"))  # the alarm arrives after a newer "clear"
    assert [(t.state, t.detail.split()[0]) for t in out] == [("active", "late"), ("cleared", "late")]
    assert [n["transition"] for n in store.notifications()] == ["fired", "recovered"]
    engine.feed(Reading("W1", "leak", 1.0, T + MIN, "A1"))
    assert engine.feed(Reading("W1", "leak", 0.0, T, "A1")) == []  # a late "dry" does not end the leak
    assert _states(store)["leak:W1"] == "active"
    # older than the 24 h window: no window is touched, but the alarm is still heard
    out = engine.feed(Reading("S1", "smoke", 1.0, T - 30 * HOUR, "A1"))
    assert [t.state for t in out] == ["active", "cleared"]
    assert engine.counters.late_for_alerts == 1 and engine.counters.late_alarms == 2
    store.close()
