"""AlertService on a real APScheduler BackgroundScheduler, with wall-clock ticks."""

from __future__ import annotations

import time
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from alerts.model import Transition
from alerts.service import AlertService
from alerts.store import AlertReader, AlertStore
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.alerts.helpers import site_config


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_smoke_is_immediate_and_delays_run_on_the_scheduler(tmp_path: Path) -> None:
    config = site_config(tmp_path, alerts={"tick_s": 0.05},
                         overrides={"humidity": {"delay_s": 0.3, "clear_delay_s": 0}})
    db = tmp_path / "archmon.db"
    service = AlertService(config, db)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start()
    try:
        service.start(scheduler)
        service.on_readings([Reading("S1", "smoke", 1.0, now_ms(), "A1")])
        reader = AlertStore(db)
        try:
            # judged in on_readings itself: the notification request exists before any tick could run
            assert [(n["transition"], n["severity"]) for n in reader.notifications()] == [("fired", "critical")]
            service.on_readings([Reading("T1", "humidity", 70.0, now_ms(), "A1")])
            band = reader.open_alert("band:T1/humidity/high")
            assert band is not None and band["state"] == "pending"
            assert _wait_for(lambda: reader.open_alert("band:T1/humidity/high")["state"] == "active")
            service.on_availability("D1", "offline", now_ms())
            assert reader.open_alert("stale:D1")["state"] == "active"
        finally:
            reader.close()
    finally:
        service.stop()
        scheduler.shutdown(wait=True)
    assert scheduler.get_jobs() == []
    store = AlertStore(db)
    try:
        kinds = [r[0] for r in store.conn.execute("SELECT kind FROM audit_log ORDER BY seq")]
        assert kinds[0] == "config" and "transition" in kinds
        assert store.verify_audit().ok
    finally:
        store.close()


def test_scheduler_tick_closes_a_quiet_cleared_alert(tmp_path: Path) -> None:
    """Live, the close time runs on the APScheduler tick like every other timer."""
    config = site_config(tmp_path, alerts={"tick_s": 0.05, "close_after_s": 0.5})
    db = tmp_path / "archmon.db"
    service = AlertService(config, db)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start()
    reader = AlertStore(db)
    try:
        service.start(scheduler)
        service.on_readings([Reading("S1", "smoke", 1.0, now_ms(), "A1")])
        service.on_readings([Reading("S1", "smoke", 0.0, now_ms(), "A1")])
        assert reader.alert(1)["state"] == "cleared"
        assert _wait_for(lambda: reader.alert(1)["state"] == "closed")
        service.on_readings([Reading("S1", "smoke", 1.0, now_ms(), "A1")])
        assert reader.open_alert("smoke:S1")["id"] == 2
    finally:
        reader.close()
        service.stop()
        scheduler.shutdown(wait=True)


def test_transitions_and_acknowledgements_are_published_after_their_commit(tmp_path: Path) -> None:
    from archmon.hub import EventHub

    db = tmp_path / "archmon.db"
    hub = EventHub()
    service = AlertService(site_config(tmp_path), db, hub=hub)
    reader = AlertReader(db)
    seen: list[tuple[str, str | None]] = []
    sub = hub.subscribe(["alert", "ack"], name="test")

    def on_ready() -> None:  # runs in the publishing thread: what it reads is what was committed
        for event in sub.drain():
            data = event.data
            alert = data.alert if isinstance(data, Transition) else data["alert"]
            row = reader.alert(alert)
            seen.append((event.kind, None if row is None else row["state"]))

    sub.on_ready = on_ready
    try:
        service.on_readings([Reading("S1", "smoke", 1.0, now_ms(), "A1")])
        assert seen == [("alert", "active")]
        service.acknowledge(1, "wang", "on my way")
        assert seen[1:] == [("alert", "acknowledged"), ("ack", "acknowledged")]
    finally:
        sub.close()
        reader.close()
        service.stop()


def test_smoke_in_a_batch_is_judged_before_the_rest_of_it(tmp_path: Path) -> None:
    from archmon.hub import EventHub

    hub = EventHub()
    sub = hub.subscribe(["alert"], name="test")
    service = AlertService(site_config(tmp_path), tmp_path / "archmon.db", hub=hub)
    try:
        t = now_ms()
        batch = [Reading("T1", "humidity", 70.0, t + i, "A1") for i in range(3000)]  # band and mould go pending
        batch.append(Reading("S1", "smoke", 1.0, t + 3000, "A1"))
        service.on_readings(batch)
        kinds = [(e.data.rule, e.data.state) for e in sub.drain()]
        assert kinds[0] == ("smoke", "active") and ("band", "pending") in kinds[1:]
    finally:
        sub.close()
        service.stop()


def test_the_priority_lane_goes_before_the_next_slice() -> None:
    import threading

    from alerts.service import EngineLock

    lock = EngineLock()
    order: list[str] = []
    in_slice, urgent_waiting = threading.Event(), threading.Event()

    def batch() -> None:
        with lock.slice():
            order.append("slice 1")
            in_slice.set()
            assert urgent_waiting.wait(10)
            while not lock._waiting:  # the urgent thread is queued in the lane
                threading.Event().wait(0.001)
        with lock.slice():
            order.append("slice 2")

    def urgent() -> None:
        assert in_slice.wait(10)
        urgent_waiting.set()
        with lock.urgent():
            order.append("urgent")

    threads = [threading.Thread(target=batch), threading.Thread(target=urgent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["slice 1", "urgent", "slice 2"]


def test_reload_keeps_alerts_delays_and_windows(tmp_path: Path) -> None:
    import json

    import pytest

    from alerts.rules import RULES
    from archmon.config import load_config
    from archmon.errors import ConfigError
    from tests.alerts.helpers import write_config_toml

    path = write_config_toml(tmp_path)
    config = load_config(path)
    db = config.resolve(config.storage.sqlite_path)
    service = AlertService(config, db)
    try:
        t = now_ms()
        service.on_readings([Reading("T1", "temperature", 20.0 + i / 10, t - (30 - i) * 60_000, "A1")
                             for i in range(30)])
        service.on_readings([Reading("T1", "humidity", 70.0, t, "A1")])  # band pending: 15 min delay
        engine = service.engine
        slot = engine.series.find("T1", "temperature")
        window = engine.series.day_stats(slot)
        pending = service.store.open_alert("band:T1/humidity/high")
        assert pending is not None and pending["state"] == "pending"
        # a refused configuration: the old engine goes on
        bad = path.read_text(encoding="utf-8") + '\n[alerts.rules.smoke]\nenabled = false\n'
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match="smoke"):
            service.reload(load_config(path))
        assert service.engine is engine
        # a changed band: applies to the next reading, the window and the pending delay are kept
        good = bad.replace("[alerts.rules.smoke]\nenabled = false\n", "")
        good = good.replace('profile = "paper"', 'profile = "paper"\noverrides = { temperature = { high = 20.5 } }')
        path.write_text(good, encoding="utf-8")
        service.reload(load_config(path))
        assert service.engine is not engine and service.engine.series is engine.series
        assert service.engine.series.day_stats(slot) == window
        assert service.engine.counters.readings == 31
        assert [r.name for r in service.engine.rules] == list(RULES)
        service.on_readings([Reading("T1", "temperature", 21.0, t + 1000, "A1")])  # above the new 20.5
        assert service.store.open_alert("band:T1/temperature/high")["state"] == "pending"
        assert service.engine.series.day_stats(slot).count == window.count + 1
        service.engine.advance(t + 15 * 60_000)
        assert service.store.open_alert("band:T1/humidity/high")["state"] == "active"  # the delay went on
        audits = [json.loads(p) for (p,) in service.store.conn.execute(
            "SELECT payload FROM audit_log WHERE kind = 'config' ORDER BY seq")]
        import hashlib

        assert [a["event"] for a in audits] == ["load", "reload"]
        assert audits[1]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    finally:
        service.stop()


def test_stats_count_late_readings(tmp_path: Path) -> None:
    service = AlertService(site_config(tmp_path), tmp_path / "archmon.db")
    try:
        t = now_ms()
        service.on_readings([Reading("T1", "temperature", 20.0, t, "A1"),
                             Reading("T1", "temperature", 20.1, t - 60_000, "A1"),
                             Reading("T1", "temperature", 20.2, t - 30 * 3_600_000, "A1")])
        stats = service.stats()
        assert (stats["late_readings"], stats["late_for_alerts"], stats["readings_judged"]) == (1, 1, 3)
        assert all(isinstance(v, int) for v in stats.values())
    finally:
        service.stop()
