"""SIGKILL of a running service with readings committed but not yet judged: the next start alarms them.

A child process runs the real ``archmon.app.Service`` on a real SQLite file; its alert engine is held (as a
long batch or a stalled judgement holds it), readings are committed (smoke = 1, a door left open), and the
child is killed. The restarted service judges what the store holds after each series' watermark
(``alerts.catchup``): the smoke and door-open alerts are there after the restart.
"""

from __future__ import annotations

from pathlib import Path

from archmon.app import Service
from archmon.config import load_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.archmon.held_engine import DOOR, MIN, commit_unjudged_then_sigkill
from tests.archmon.sites import alerts, line_site


def test_a_smoke_alarm_and_an_open_door_committed_before_a_sigkill_are_alarmed_after_the_restart(
        tmp_path: Path) -> None:
    path = line_site(tmp_path, extra=DOOR)
    t = now_ms() - 20 * MIN
    commit_unjudged_then_sigkill(
        path,
        judged=[Reading("smoke0", "smoke", 0.0, t, "paper"), Reading("door0", "door", 0.0, t, "paper"),
                Reading("t0", "temperature", 20.0, t, "paper")],
        unjudged=[Reading("smoke0", "smoke", 1.0, t + MIN, "paper"), Reading("door0", "door", 1.0, t + MIN, "paper"),
                  Reading("t0", "temperature", 20.3, t + MIN, "paper")])
    config = load_config(path)
    assert alerts(config.resolve(config.storage.sqlite_path)) == []  # nothing was judged of them

    service = Service(config)
    service.start()  # (the catch-up runs first on the alert feed's thread, the sources already started)
    try:
        assert service._alert_feed.join(60)
        service.alerts.tick()  # the first tick after it serves the door's delay: 10 min from its own time
        found = {(rule, sensor): state for rule, sensor, state in alerts(service.db_path)}
        assert found.get(("smoke", "smoke0")) == "active"
        assert found.get(("door_open", "door0")) == "active"  # open 19 min, 10 allowed
        assert service.alerts.stats()["caught_up"] == 3
        engine = service.alerts.engine
        slot = engine.series.find("t0", "temperature")
        assert engine.series.day_stats(slot).count == 2  # in the window once
    finally:
        report = service.stop()
    assert report.complete, report.summary()
