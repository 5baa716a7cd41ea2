"""AlertService on a real APScheduler BackgroundScheduler, with wall-clock ticks."""

from __future__ import annotations

import time
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from alerts.service import AlertService
from alerts.store import AlertStore
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
