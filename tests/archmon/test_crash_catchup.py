"""SIGKILL of a running service with readings committed but not yet judged: the next start alarms them.

A child process runs the real ``archmon.app.Service`` on a real SQLite file; its alert engine is held (as a
long batch or a stalled judgement holds it), readings are committed (smoke = 1, a door left open), and the
child is killed. The restarted service judges what the store holds after each series' watermark
(``alerts.catchup``): the smoke and door-open alerts are there after the restart.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from archmon.app import Service
from archmon.config import load_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.archmon.sites import alerts, batch, line_site

MIN = 60_000
DOOR = '[[sensors]]\nid = "door0"\nroom = "paper"\nsource = "bus"\nkind = "door"\n'


def _run_until_killed(path: str, t: int, done: Connection) -> None:
    """Child: judge the first readings, then hold the engine and commit the alarms; wait to be killed."""
    service = Service(load_config(Path(path)))
    service.start()
    service._submit(batch(Reading("smoke0", "smoke", 0.0, t, "paper"), Reading("door0", "door", 0.0, t, "paper"),
                          Reading("t0", "temperature", 20.0, t, "paper")))
    service.writer.flush(30)
    service._alert_feed.join(30)
    held, forever = threading.Event(), threading.Event()

    def hold_engine() -> None:
        with service.alerts._lock.urgent():
            held.set()
            forever.wait()

    threading.Thread(target=hold_engine, daemon=True).start()
    held.wait(30)
    service._submit(batch(Reading("smoke0", "smoke", 1.0, t + MIN, "paper"),
                          Reading("door0", "door", 1.0, t + MIN, "paper"),
                          Reading("t0", "temperature", 20.3, t + MIN, "paper")))
    done.send(service.writer.flush(30))
    forever.wait()


def test_a_smoke_alarm_and_an_open_door_committed_before_a_sigkill_are_alarmed_after_the_restart(
        tmp_path: Path) -> None:
    path = line_site(tmp_path, extra=DOOR)
    t = now_ms() - 20 * MIN
    spawn = mp.get_context("spawn")
    parent, child_end = spawn.Pipe()
    child = spawn.Process(target=_run_until_killed, args=(str(path), t, child_end))
    child.start()
    try:
        assert parent.poll(120) and parent.recv() is True  # committed
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert child.exitcode == -signal.SIGKILL
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
