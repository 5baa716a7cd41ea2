"""The live path: batches judged in memory, quiet conditions left out, one transaction per batch.

Equivalence is the point: a batch fed through ``feed_many`` inside ``AlertStore.batch`` (rules skipping
conditions that change nothing) must leave exactly the transitions, alert rows, lifecycle rows,
notification requests and audit chain that reading-by-reading ``feed`` with every condition reported does.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from alerts.actions import clear_by_hand
from alerts.engine import AlertEngine
from alerts.service import AlertService
from alerts.store import AlertStore
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000
TABLES = ("alert_alerts", "alert_transitions", "alert_comments", "alert_conditions", "maintenance_windows",
          "notification_queue", "audit_log")
QUANTITIES = ("temperature", "humidity", "battery", "smoke", "leak", "door", "light", "co2")


class _EveryKey:
    def __contains__(self, item: object) -> bool:
        return True


def _config(tmp_path: Path):  # type: ignore[no-untyped-def]
    overrides = {"temperature": {"delay_s": 120, "clear_delay_s": 60},
                 "humidity": {"delay_s": 0, "clear_delay_s": 120},
                 "mould": {"delay_s": 300}, "rate": {"window_s": 600}}
    return site_config(tmp_path, overrides=overrides, sensors=("T1", "T2", "S1", "D1"),
                       alerts={"close_after_s": 900, "stuck": {"hours": 0.5}})


def _walk(rng: random.Random, start: int, minutes: int) -> list[Reading]:
    """Readings wandering across every limit of the paper profile (and the margins in between)."""
    out = []
    temperature = {"T1": 20.0, "T2": 15.0}
    humidity = {"T1": 55.0, "T2": 46.0}
    for minute in range(minutes):
        ts = start + minute * MIN
        for sensor in ("T1", "T2"):
            temperature[sensor] = min(30.0, max(8.0, temperature[sensor] + rng.choice((-1, 0, 0, 1)) * 0.7))
            humidity[sensor] = min(75.0, max(35.0, humidity[sensor] + rng.choice((-1, 0, 0, 1)) * 1.5))
            out.append(Reading(sensor, "temperature", round(temperature[sensor], 2), ts, "A1"))
            out.append(Reading(sensor, "humidity", round(humidity[sensor], 2), ts, "A1"))
            if minute % 30 == 0:
                out.append(Reading(sensor, "battery", rng.choice((15.0, 19.0, 22.0, 40.0)), ts, "A1"))
        if rng.random() < 0.02:
            out.append(Reading("S1", "smoke", float(rng.random() < 0.5), ts, "A1"))
        if rng.random() < 0.03:
            out.append(Reading("D1", "door", float(rng.random() < 0.5), ts, "A1"))
    return out


def _dump(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES}
    finally:
        conn.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_leave_what_reading_by_reading_leaves(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    readings = _walk(rng, SHANGHAI_NOON, 36 * 60)  # crosses a local midnight: day verdicts too
    (tmp_path / "ref").mkdir()
    (tmp_path / "live").mkdir()
    ref_store, live_store = AlertStore(tmp_path / "ref" / "a.db"), AlertStore(tmp_path / "live" / "a.db")
    ref, live = AlertEngine(_config(tmp_path), ref_store), AlertEngine(_config(tmp_path), live_store)
    for rule in ref.rules:
        rule.watched = _EveryKey()  # the reference hears every condition, as before rules could skip any
    ref_out, live_out = [], []
    index = 0
    try:
        while index < len(readings):
            batch = readings[index:index + rng.randint(1, 200)]
            index += len(batch)
            for reading in batch:
                ref_out += ref.feed(reading)
            with live_store.batch():
                live_out += live.feed_many(batch)
            now = batch[-1].ts_ms
            roll = rng.random()
            open_ids = [a["id"] for a in ref_store.alerts(active_only=True) if a["state"] in ("active", "acknowledged")]
            if roll < 0.05 and open_ids:  # someone clears by hand through the CLI (another process)
                alert_id = rng.choice(open_ids)
                clear_by_hand(ref_store, alert_id, "cli", "checked", now)
                clear_by_hand(live_store, alert_id, "cli", "checked", now)
            elif roll < 0.10 and open_ids:
                alert_id = rng.choice(open_ids)
                ref_out += ref.acknowledge(alert_id, "duty", "seen", now)
                live_out += live.acknowledge(alert_id, "duty", "seen", now)
            elif roll < 0.25:  # violations start silenced, and some end inside the window
                for engine in (ref, live):
                    engine.maintenance("A1", now + 40 * MIN, "filter change", "wang", now)
        ref_out += ref.advance(readings[-1].ts_ms + 180 * MIN)
        with live_store.batch():
            live_out += live.advance(readings[-1].ts_ms + 180 * MIN)
    finally:
        ref_store.close()
        live_store.close()
    assert len(ref_out) > 20, "the walk should exercise the lifecycle"
    assert [t.to_json() for t in live_out] == [t.to_json() for t in ref_out]
    assert _dump(tmp_path / "live" / "a.db") == _dump(tmp_path / "ref" / "a.db")


def test_rules_ignore_every_quantity_they_do_not_declare(tmp_path: Path) -> None:
    """The engine hands a rule only its declared quantities: any other must be a no-op for it."""
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(_config(tmp_path), store)
    engine.advance(SHANGHAI_NOON)
    try:
        for rule in engine.rules:
            if rule.quantities is None:
                continue
            before = rule.snapshot()
            for quantity in QUANTITIES:
                if quantity not in rule.quantities:
                    assert rule.on_reading(Reading("T1", quantity, 1.0, SHANGHAI_NOON, "A1"),
                                           engine.sensors["T1"]) == [], (rule.name, quantity)
            assert rule.snapshot() == before, rule.name
    finally:
        store.close()


def _traced(store: AlertStore) -> list[str]:
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    return statements


def test_a_quiet_batch_runs_one_query_and_no_transaction(tmp_path: Path) -> None:
    service = AlertService(site_config(tmp_path), tmp_path / "a.db")
    try:
        t0 = SHANGHAI_NOON
        # a series the engine meets for the first time gets its judged-through watermark (alerts.catchup)
        service.on_readings([Reading("T1", "temperature", 20.0, t0, "A1"), Reading("T1", "humidity", 50.0, t0, "A1")])
        assert service.store.judged() == {("T1", "temperature"): t0, ("T1", "humidity"): t0}
        statements = _traced(service.store)
        service.on_readings([Reading("T1", q, v, t0 + i * 100, "A1")
                             for i in range(1, 251) for q, v in (("temperature", 20.0 + i % 3 / 10),
                                                                 ("humidity", 50.0))])
        assert len(statements) == 1 and "manual_clear = 1" in statements[0]  # the clears by hand, once
    finally:
        service.store.conn.set_trace_callback(None)
        service.stop()


def test_transitions_of_a_batch_commit_together_and_requests_at_once(tmp_path: Path) -> None:
    config = site_config(tmp_path, overrides={"humidity": {"delay_s": 600}})
    service = AlertService(config, tmp_path / "a.db")
    reader = AlertStore(tmp_path / "a.db")
    try:
        t0 = SHANGHAI_NOON
        statements = _traced(service.store)
        service.on_readings([
            Reading("T1", "humidity", 70.0, t0, "A1"),  # band and mould go pending
            Reading("S1", "smoke", 1.0, t0, "A1"),  # fires: its request is committed at once
            Reading("T1", "temperature", 10.0, t0 + 1000, "A1"),  # band goes pending
        ])
        commits = [s for s in statements if s.startswith(("BEGIN", "COMMIT"))]
        assert commits == ["BEGIN IMMEDIATE", "COMMIT", "BEGIN IMMEDIATE", "COMMIT"]
        states = {a["ident"]: a["state"] for a in reader.alerts()}
        assert states == {"band:T1/humidity/high": "pending", "mould:T1": "pending", "smoke:S1": "active",
                          "band:T1/temperature/low": "pending"}
        assert [n["transition"] for n in reader.notifications()] == ["fired"]
        assert reader.verify_audit().ok
    finally:
        service.store.conn.set_trace_callback(None)
        reader.close()
        service.stop()


def test_a_failing_reading_does_not_stop_its_batch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    service = AlertService(site_config(tmp_path), tmp_path / "a.db")
    band = next(rule for rule in service.engine.rules if rule.name == "band")
    judge = band.on_reading

    def broken(reading, sensor):  # type: ignore[no-untyped-def]
        if reading.value < 0:
            raise ValueError("corrupt reading")
        return judge(reading, sensor)

    band.on_reading = broken  # type: ignore[method-assign]
    try:
        t0 = SHANGHAI_NOON
        service.on_readings([Reading("T1", "temperature", -1.0, t0, "A1"), Reading("S1", "smoke", 1.0, t0, "A1")])
        assert service.store.open_alert("smoke:S1")["state"] == "active"
        assert "alert engine failed on" in caplog.text
    finally:
        service.stop()


def test_a_failed_write_inside_a_batch_is_undone_alone(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    try:
        with store.batch():
            store.audit(SHANGHAI_NOON, "config", "system", "config", {"event": "one"})
            with pytest.raises(RuntimeError), store.tx() as conn:
                store.audit(SHANGHAI_NOON, "config", "system", "config", {"event": "undone"})
                conn.execute("INSERT INTO maintenance_windows (room, start_ms, until_ms, reason, by, created_ms) "
                             "VALUES ('A1', 0, 1, '', '', 0)")
                raise RuntimeError("boom")
            store.audit(SHANGHAI_NOON, "config", "system", "config", {"event": "two"})
        events = [r[0] for r in store.conn.execute("SELECT payload FROM audit_log ORDER BY seq")]
        assert events == ['{"event": "one"}', '{"event": "two"}']
        assert store.conn.execute("SELECT COUNT(*) FROM maintenance_windows").fetchone()[0] == 0
        assert store.verify_audit().ok and not store.conn.in_transaction
    finally:
        store.close()
