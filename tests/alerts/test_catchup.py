"""Readings stored but not judged when the engine stopped are judged at the next start (review finding 3).

The store commits first, the engine judges afterwards; a crash in between used to leave the readings unjudged
for good (the rebuild fills the windows but judges nothing): a smoke alarm, a door left open. Real SQLite files
(the readings store and the alert store in one file, as ``archmon run`` has them); the crash is the state a
SIGKILL leaves: readings committed, their judgement not (tests/archmon/test_crash_catchup.py kills a real
process).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts._steps import STEP_BUDGET, Budget
from alerts.rules import RULES
from alerts.service import AlertService
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.records import Batch
from collector.store import SqliteStore
from tests.alerts.helpers import site_config

MIN = 60_000


def _stories(service: AlertService) -> dict[str, list[str]]:
    """Each alert subject's states in order (the same story, whatever the time stamps)."""
    out: dict[str, list[str]] = defaultdict(list)
    for ident, state in service.store.conn.execute(
            "SELECT a.ident, t.to_state FROM alert_transitions t JOIN alert_alerts a ON a.id = t.alert_id "
            "ORDER BY t.id"):
        out[ident].append(state)
    return dict(out)


def _store_and_judge(store: SqliteStore, alerts: AlertService, readings: list[Reading]) -> None:
    store.write_many([Batch(readings=readings)])
    alerts.on_readings(readings)


def test_smoke_and_an_open_door_stored_but_unjudged_at_a_crash_are_alarmed_after_the_restart(tmp_path: Path) -> None:
    config = site_config(tmp_path, sensors=("T1", "S1", "D1"))
    db = config.resolve(config.storage.sqlite_path)
    t = now_ms() - 20 * MIN
    store = SqliteStore(db, tz=config.site.tz)
    alerts = AlertService(config, db)
    _store_and_judge(store, alerts, [Reading("S1", "smoke", 0.0, t, "A1"), Reading("D1", "door", 0.0, t, "A1"),
                                     Reading("T1", "temperature", 20.0, t, "A1")])
    # committed, never judged: the engine was behind when the process died
    store.write_many([Batch(readings=[Reading("S1", "smoke", 1.0, t + MIN, "A1"),
                                      Reading("D1", "door", 1.0, t + MIN, "A1"),
                                      Reading("T1", "temperature", 20.4, t + MIN, "A1")])])
    alerts.store.close()  # the crash: no stop, nothing more from this process
    store.close()

    again = AlertService(config, db)
    try:
        again.tick()  # the door's delay (10 min from its device time) was served long ago
        states = {a["ident"]: a["state"] for a in again.store.alerts()}
        assert states.get("smoke:S1") == "active"
        assert states.get("door_open:D1") == "active"  # open 19 min, 10 allowed
        assert again.stats()["caught_up"] == 3
        # the caught-up readings were not put in the windows a second time
        slot = again.engine.series.find("T1", "temperature")
        assert again.engine.series.day_stats(slot).count == 2
        stability = next(rule for rule in again.engine.rules if rule.name == "stability")
        assert stability.snapshot()["days"][0]["count"] == 2  # the day aggregate holds each reading once
        assert again.engine.series.newest(slot).value == 20.4
    finally:
        again.stop()
    # a clean stop saved how far it judged: the next start judges nothing again
    third = AlertService(config, db)
    try:
        assert third.stats()["caught_up"] == 0
    finally:
        third.stop()


def test_a_reading_whose_transitions_were_committed_is_not_judged_again(tmp_path: Path) -> None:
    """High then back in band with a delay: pending, then cancelled; a crash after that must not raise a new
    pending alert from the same readings at the restart."""
    enabled = {name: {"enabled": name == "band"} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled}, sensors=("T1",),
                         overrides={"temperature": {"delay_s": 600}})
    db = config.resolve(config.storage.sqlite_path)
    t = now_ms() - 30 * MIN
    store = SqliteStore(db, tz=config.site.tz)
    alerts = AlertService(config, db)
    _store_and_judge(store, alerts, [Reading("T1", "temperature", 20.0, t, "A1")])
    _store_and_judge(store, alerts, [Reading("T1", "temperature", 27.0, t + MIN, "A1")])
    _store_and_judge(store, alerts, [Reading("T1", "temperature", 20.0, t + 2 * MIN, "A1")])
    _store_and_judge(store, alerts, [Reading("T1", "temperature", 20.1, t + 3 * MIN, "A1")])  # quiet: no watermark
    before = _stories(alerts)
    alerts.store.close()
    store.close()
    again = AlertService(config, db)
    try:
        assert again.stats()["caught_up"] == 1  # the quiet reading after the last watermark, judged once more
        again.tick()
        assert _stories(again) == before == {"band:T1/temperature/high": ["pending", "cancelled"]}
    finally:
        again.stop()


def test_a_store_the_engine_never_judged_is_not_judged_at_start(tmp_path: Path) -> None:
    """Series without a watermark (a file seeded or imported, an older archmon) are taken as judged: a start
    on 24 h of history judges none of it again."""
    config = site_config(tmp_path, sensors=("T1", "S1"))
    db = config.resolve(config.storage.sqlite_path)
    t = now_ms() - 2 * 60 * MIN
    store = SqliteStore(db, tz=config.site.tz)
    store.write_many([Batch(readings=[Reading("T1", "temperature", 30.0, t + k * MIN, "A1") for k in range(60)]
                            + [Reading("S1", "smoke", 1.0, t, "A1")])])
    store.close()
    alerts = AlertService(config, db)
    try:
        assert alerts.stats()["caught_up"] == 0 and alerts.store.alerts() == []
    finally:
        alerts.stop()


_EVENTS = st.lists(st.tuples(st.sampled_from(["T1", "S1", "D1"]), st.integers(0, 2)), min_size=1, max_size=30)


@settings(max_examples=40, deadline=None)
@given(events=_EVENTS, crash_at=st.integers(0, 30), saved_at=st.integers(0, 30))
def test_a_crash_anywhere_tells_the_same_story_as_no_crash(tmp_path_factory, events: list[tuple[str, int]],
                                                           crash_at: int, saved_at: int) -> None:
    """Brute force: readings one a minute, judged live without a stop, against the same readings with a crash
    after the ``crash_at``-th (the rest committed but unjudged; watermarks last saved by the periodic save
    after the ``saved_at``-th): each alert subject goes through the same states (band with a 5 min delay,
    smoke, door open 10 min)."""
    folder = tmp_path_factory.mktemp("crash")
    values = {"T1": ("temperature", (20.0, 24.2, 27.0)), "S1": ("smoke", (0.0, 0.0, 1.0)),
              "D1": ("door", (0.0, 1.0, 1.0))}
    t = now_ms() - (len(events) + 60) * MIN
    first = [("T1", 0), ("S1", 0), ("D1", 0)]  # each series judged once before (a series new at the crash is not)
    readings = [Reading(sensor, values[sensor][0], values[sensor][1][level], t + i * MIN, "A1")
                for i, (sensor, level) in enumerate(first + events)]
    crash_at += len(first)
    enabled = {name: {"enabled": name in ("band", "smoke", "door_open")} for name in RULES}
    stories = []
    for run, crash in (("live", len(readings)), ("crash", min(crash_at, len(readings)))):
        config = site_config(folder / run, alerts={"rules": enabled}, sensors=("T1", "S1", "D1"),
                             overrides={"temperature": {"delay_s": 300, "clear_delay_s": 120}})
        db = config.resolve(config.storage.sqlite_path)
        db.parent.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(db, tz=config.site.tz)
        alerts = AlertService(config, db)
        for i, reading in enumerate(readings):
            if i < crash:
                _store_and_judge(store, alerts, [reading])
            else:
                store.write_many([Batch(readings=[reading])])
            if i + 1 == min(saved_at, crash):
                alerts._save_watermarks(None)  # the tick's periodic save
        if run == "crash":
            alerts.store.close()
            alerts = AlertService(config, db)
        alerts.tick()
        # (a clear judged at the restart is stamped then, so its alert closes an hour after it: not compared)
        stories.append({ident: [s for s in states if s != "closed"] for ident, states in _stories(alerts).items()})
        alerts.stop()
        store.close()
    assert stories[0] == stories[1]


def test_the_catch_up_runs_in_steps_and_smoke_is_judged_meanwhile(tmp_path: Path) -> None:
    """Review of fix 6, finding 4: the catch-up loaded every unjudged reading into one list and judged them in
    one transaction inside ``AlertService()``, before any source started (10,000 series, 60 min unjudged:
    25 s, 191 MiB; smoke waited behind it). Now it streams them from the store in steps of the lock's budget,
    deferred by ``archmon run`` to the alert feed's thread; smoke is judged between its steps and the tick
    waits for it (timers run in device-time order with the caught-up readings)."""
    config = site_config(tmp_path, sensors=("T1", "T2", "S1"))
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=config.site.tz)
    t = now_ms() - 3 * 60 * MIN
    first = [Reading("T1", "temperature", 20.0, t, "A1"), Reading("T2", "temperature", 20.0, t, "A1"),
             Reading("S1", "smoke", 0.0, t, "A1")]
    alerts = AlertService(config, db)
    _store_and_judge(store, alerts, first)
    alerts.stop()  # clean: every watermark at t
    unjudged = [Reading(s, "temperature", 20.0 + (k % 3) / 10, t + 1000 + k * 5000, "A1")
                for k in range(1200) for s in ("T1", "T2")]  # 2,400 readings stored, never judged (a crash)
    store.write_many([Batch(readings=unjudged)])
    again = AlertService(config, db, defer_catch_up=True)
    try:
        assert again.stats()["caught_up"] == 0 and again.engine.catching_up
        assert again.tick() == []  # the tick waits for the catch-up
        smoke = [Reading("S1", "smoke", 1.0, now_ms(), "A1")]
        _store_and_judge(store, again, smoke)  # judged at once, catch-up or not
        assert {a["ident"]: a["state"] for a in again.store.alerts()} == {"smoke:S1": "active"}
        job = again._catch_up
        assert job is not None
        steps = 0
        while not job.done:
            job.read_ahead()  # (the store only: AlertService.catch_up does it outside the lock)
            with again.store.batch():
                job.step(Budget(STEP_BUDGET))
            steps += 1
        assert steps >= 3 and not again.engine.catching_up  # about a thousand readings a step
        assert again.stats()["caught_up"] == len(unjudged)
        assert again.engine.series.newest(again.engine.series.find("T1", "temperature")).ts_ms == unjudged[-1].ts_ms
    finally:
        again.stop()
        store.close()
