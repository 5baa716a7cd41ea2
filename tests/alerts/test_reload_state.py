"""What a reload does to windows and reminders (review finding 10).

- A changed ``rate.window_s`` used to empty every rate window (blind for up to the window's length, though a
  restart rebuilds it from the store): the reload now refills the new rows from the readings store.
- An open alert of a sensor the reload removed went on sending repeats and escalations for ever (no reading
  can clear it): they stop, except for smoke, leak and critical alerts, which go on until cleared by hand.
"""

from __future__ import annotations

from pathlib import Path

from alerts.rules import RULES
from alerts.service import AlertService
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.records import Batch
from collector.store import SqliteStore
from tests.alerts.helpers import site_config

MIN = 60_000
HOUR = 60 * MIN


def test_a_changed_rate_window_is_refilled_from_the_store(tmp_path: Path) -> None:
    config = site_config(tmp_path, sensors=("T1",))
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=config.site.tz)
    t = now_ms() - 50 * MIN
    readings = [Reading("T1", "temperature", 20.0 + k * 0.03, t + k * MIN, "A1") for k in range(50)]
    store.write_many([Batch(readings=readings)])
    service = AlertService(config, db)  # rebuilt from the store: the hour's window holds 1.47 ℃ of rise
    try:
        slot = service.engine.series.find("T1", "temperature")
        assert round(service.engine.series.swing(slot), 2) == 1.47
        service.reload(site_config(tmp_path, sensors=("T1",), overrides={"rate": {"window_s": 1800}}))
        # the last 30 min of the store (before: an empty window until 30 min of new readings)
        assert round(service.engine.series.swing(slot), 2) == 0.9
        assert service.engine.series.fine_window[slot] == 1_800_000
        reading = Reading("T1", "temperature", 21.6, t + 50 * MIN, "A1")  # 2.1 ℃ over the hour, 1.0 over 30 min
        store.write_many([Batch(readings=[reading])])
        service.on_readings([reading])
        assert round(service.engine.series.swing(slot), 2) == 1.0
    finally:
        service.stop()
        store.close()


def _requests(service: AlertService) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in service.store.conn.execute(
        "SELECT a.ident, q.transition FROM notification_queue q JOIN alert_alerts a ON a.id = q.alert_id "
        "ORDER BY q.id")]


def test_an_open_alert_of_a_removed_sensor_stops_reminding_unless_it_is_an_alarm(tmp_path: Path) -> None:
    enabled = {name: {"enabled": name in ("band", "smoke", "leak")} for name in RULES}
    alerts = {"rules": enabled, "notify": {"repeat_s": {"major": 600, "critical": 600},
                                          "escalation_after_s": [1200]}}
    config = site_config(tmp_path, alerts=alerts, sensors=("T1", "T2", "S1"),
                         overrides={"temperature": {"delay_s": 0}})
    service = AlertService(config, tmp_path / "archmon.db")
    try:
        t = now_ms() - 3 * HOUR
        service.on_readings([Reading("T1", "temperature", 30.0, t, "A1"), Reading("T2", "temperature", 30.0, t, "A1"),
                             Reading("S1", "smoke", 1.0, t, "A1")])
        service.engine.advance(t + 15 * MIN)  # a repeat each, and T1's band alert escalated
        service.reload(site_config(tmp_path, alerts=alerts, sensors=("T2",),
                                   overrides={"temperature": {"delay_s": 0}}))
        before = _requests(service)
        service.engine.advance(t + 2 * HOUR)
        after = _requests(service)[len(before):]
        assert before.count(("band:T1/temperature/high", "repeat")) == 1
        assert not any(ident == "band:T1/temperature/high" for ident, _ in after)  # removed: no more reminders
        assert ("band:T2/temperature/high", "repeat") in after and ("band:T2/temperature/high", "escalate") in after
        assert after.count(("smoke:S1", "repeat")) >= 9  # a removed detector's fire alarm goes on reminding
        states = {a["ident"]: a["state"] for a in service.store.alerts()}
        assert states["band:T1/temperature/high"] == "active"  # still open: cleared by hand
    finally:
        service.stop()
