"""SIGKILL with a new series' first readings committed but not judged: the next start alarms them (review of
fix 6, finding 5).

The catch-up judges what the store holds after each series' watermark; a series the engine had never judged
has none, and was taken as judged (a file seeded or imported): a smoke detector's or a door contact's first
message ever, committed while the engine was held, was never alarmed. The file now records since when
watermarks are kept (``alerts.catchup.KEPT_SINCE``): a series without one whose stored readings are all newer
is judged from its first reading. A real ``Service`` in a child process, killed with SIGKILL.
"""
from __future__ import annotations

from pathlib import Path

from archmon.app import Service
from archmon.config import load_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.archmon.held_engine import DOOR, MIN, commit_unjudged_then_sigkill
from tests.archmon.sites import alerts, line_site


def test_first_readings_of_a_new_series_committed_before_sigkill(tmp_path: Path) -> None:
    path = line_site(tmp_path, extra=DOOR)
    t = now_ms() - 20 * MIN
    commit_unjudged_then_sigkill(
        path,
        # only the temperature sensor has reported (and been judged) so far
        judged=[Reading("t0", "temperature", 20.0, t, "paper")],
        # first ever messages of the smoke detector and the door contact: an alarm, a door opened
        unjudged=[Reading("smoke0", "smoke", 1.0, t + MIN, "paper"), Reading("door0", "door", 1.0, t + MIN, "paper"),
                  Reading("t0", "temperature", 20.3, t + MIN, "paper")])
    config = load_config(path)
    db = config.resolve(config.storage.sqlite_path)
    assert alerts(db) == []  # nothing was judged of them
    service = Service(config)
    service.start()
    try:
        assert service._alert_feed.join(60)  # (the catch-up is the feed's first item)
        service.alerts.tick()  # the door's delay, served in its own time (opened 19 min ago, 10 allowed)
        found = {(rule, sensor): state for rule, sensor, state in alerts(service.db_path)}
        assert found.get(("smoke", "smoke0")) == "active"
        assert found.get(("door_open", "door0")) == "active"
        assert service.alerts.stats()["caught_up"] == 3  # the two first readings and the temperature
    finally:
        service.stop()
