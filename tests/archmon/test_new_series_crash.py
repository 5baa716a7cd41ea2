"""SIGKILL with a new series' first readings committed but not judged: the next start alarms them (review of
fix 6, finding 5).

The catch-up judges what the store holds after each series' watermark; a series the engine had never judged
has none, and was taken as judged (a file seeded or imported): a smoke detector's or a door contact's first
message ever, committed while the engine was held, was never alarmed. The file now records since when
watermarks are kept (``alerts.catchup.KEPT_SINCE``): a series without one whose stored readings are all newer
is judged from its first reading. A real ``Service`` in a child process, killed with SIGKILL.
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
    service = Service(load_config(Path(path)))
    service.start()
    # only the temperature sensor has reported (and been judged) so far
    service._submit(batch(Reading("t0", "temperature", 20.0, t, "paper")))
    service.writer.flush(30)
    service._alert_feed.join(30)
    held, forever = threading.Event(), threading.Event()

    def hold_engine() -> None:
        with service.alerts._lock.urgent():
            held.set()
            forever.wait()

    threading.Thread(target=hold_engine, daemon=True).start()
    held.wait(30)
    # first ever messages of the smoke detector and the door contact: an alarm, a door opened
    service._submit(batch(Reading("smoke0", "smoke", 1.0, t + MIN, "paper"),
                          Reading("door0", "door", 1.0, t + MIN, "paper"),
                          Reading("t0", "temperature", 20.3, t + MIN, "paper")))
    done.send(service.writer.flush(30))
    forever.wait()


def test_first_readings_of_a_new_series_committed_before_sigkill(tmp_path: Path) -> None:
    path = line_site(tmp_path, extra=DOOR)
    t = now_ms() - 20 * MIN
    spawn = mp.get_context("spawn")
    parent, child_end = spawn.Pipe()
    child = spawn.Process(target=_run_until_killed, args=(str(path), t, child_end))
    child.start()
    try:
        assert parent.poll(120) and parent.recv() is True
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
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
