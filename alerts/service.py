"""Live wiring: the engine behind a lock, driven by the store writer's callbacks and an APScheduler tick.

Timers (delays, clear delays, stale detection, daily verdicts, repeats, escalations) run from one short
periodic job (``alerts.tick_s``, default 1 s) that calls ``engine.advance(now)``; smoke and leak are judged
in ``on_readings`` itself, with no polling delay. There is no checkpoint job: at start the engine rebuilds
its windows and rule memory from the readings store (:mod:`alerts.rebuild`); what it persists on its own
(lifecycle phases, the last day judged) is small and written with the transition that changed it.

``on_readings`` judges a batch in slices (:data:`SLICE` readings, one transaction each, writing only
transitions), smoke and leak readings first; between slices the engine lock goes to whoever waits in its
priority lane (the tick, smoke and leak, availability, people's actions), so a huge batch never starves
the tick and an alarm never waits behind more than one slice. Committed transitions are published on the
event hub (kind ``alert``), acknowledgements as ``ack``.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apscheduler.schedulers.base import BaseScheduler

from alerts._lock import EngineLock
from alerts._lookups import late_last
from alerts._steps import STEP_BUDGET, Budget
from alerts.catchup import SAVE_EVERY_S, CatchUp, save_watermarks
from alerts.engine import AlertEngine
from alerts.history import ReadingHistory
from alerts.model import Transition
from alerts.rebuild import refill_windows
from alerts.site import check_config
from alerts.store import AlertStore
from archmon.config import Config
from archmon.domain import Reading
from archmon.errors import ConfigError
from archmon.hub import EventHub
from archmon.timeutil import now_ms

__all__ = ["SLICE", "AlertService", "check_config"]

log = logging.getLogger(__name__)

_TICK_JOB = "alerts.tick"
SLICE = 1000
"""Readings judged per hold of the engine lock (about 20 ms of work)."""
TICK_BUDGET = STEP_BUDGET
"""Work units per hold of the lock (timers, rule deadlines and what they raise, transitions of readings:
see :mod:`alerts._steps`); the tick and a batch's slices go on in further steps while more is due."""
URGENT = frozenset({"smoke", "leak"})
REFILL_SLICE = 200
"""Series whose windows a reload refills from the store per hold of the lock (a query or two each)."""


def _config_digest(config: Config) -> str:
    if config.path is not None and Path(config.path).is_file():
        return hashlib.sha256(Path(config.path).read_bytes()).hexdigest()
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


def _reading_failed(reading: Reading, exc: Exception) -> None:
    """One bad reading must not stop the writer (nor the rest of its batch)."""
    log.error("alert engine failed on %s", reading, exc_info=exc)


class AlertService:
    """The alert engine as a service of ``archmon run``.

    Args:
        config: validated site configuration.
        db_path: the shared SQLite file.
        hub: where committed transitions (``alert``) and acknowledgements (``ack``) are published.
        history: where the engine rebuilds its windows from at start (default: the readings store in
            ``db_path``, opened read-only, if it has one).
        defer_catch_up: leave the readings stored but not judged when the last run stopped to
            :meth:`catch_up` (``archmon run`` does it on the alert feed's thread after its sources start);
            False: judged here, in steps, before the constructor returns.

    Raises:
        ConfigError: bad alert settings or room profiles.
    """

    stats_gauges = frozenset({"series", "window_bytes", "rebuilt_series", "rebuild_ms", "state_write_max_bytes",
                              "state_write_max_us", "lock_hold_max_us"})
    """The names in :meth:`stats` that are states (kept as they are by ``archmon status``), not counters."""

    def __init__(self, config: Config, db_path: Path, *, hub: EventHub | None = None,
                 history: ReadingHistory | None = None, defer_catch_up: bool = False) -> None:
        self.config = config
        self.hub = hub
        self.store = AlertStore(db_path)
        self.engine = AlertEngine(config, self.store)
        self._lock = EngineLock()
        self._ticking = threading.Lock()
        self.ticks_overlapped = 0
        self._watermarks_due = time.monotonic() + SAVE_EVERY_S
        self._watermarks_stalled = False
        self._scheduler: BaseScheduler | None = None
        self.rebuild_seconds = 0.0
        self.rebuilt_series = 0
        self._db_path = db_path
        self._opened: Any = None  # the readings store this service opened (read-only), closed at stop
        self._catch_up: CatchUp | None = None
        from alerts.access import attach_register  # before the rebuild: doors open at the restart judged again

        attach_register(self.engine, db_path)
        from alerts.calibration import attach_calibrations  # calibration-due warnings from the recorded history

        attach_calibrations(self.engine)
        self._rebuild(history, db_path)
        self.store.audit(now_ms(), "config", "system", "config",
                         {"event": "load", "path": str(config.path), "sha256": _config_digest(config)})
        if not defer_catch_up:
            self.catch_up()

    def _rebuild(self, history: ReadingHistory | None, db_path: Path) -> None:
        if history is None:
            history = self._opened = _readings_store(db_path, self.config)
        if history is None:
            return
        now = now_ms()
        report = self.engine.rebuild(history, now)
        self.rebuild_seconds, self.rebuilt_series = report.seconds, report.series
        # the rules look up stored readings around a late one (alerts.rules._late_runs), read-only
        self.engine.history.source = history
        self._catch_up = self.engine.start_catch_up(now)  # what the store holds that was not judged at the stop

    def catch_up(self) -> None:
        """Judge what the store held but the engine had not judged when the last run stopped
        (:mod:`alerts.catchup`), in steps of :data:`TICK_BUDGET` work units, each one hold of the lock's
        slice lane and one transaction: smoke and leak (and people's actions) go between the steps; the tick
        waits until it is done (timers run in device-time order with the caught-up readings)."""
        job, self._catch_up = self._catch_up, None
        started = time.perf_counter()
        while job is not None and not job.done:
            job.read_ahead()  # (the store only: outside the lock)
            with self._lock.slice():
                try:
                    with self.store.batch():
                        done = job.step(Budget(TICK_BUDGET))
                except Exception:  # the store cannot be written: the readings are judged at the next start
                    log.exception("alert engine: the catch-up stopped after %d reading(s)", job.judged)
                    self.engine.catching_up = False
                    return
            self._committed(done)
        if job is not None and job.judged:
            log.info("alert engine: caught up %d reading(s) in %.2f s", job.judged, time.perf_counter() - started)

    def start(self, scheduler: BaseScheduler) -> None:
        """Add the tick job to the service's scheduler (and tick once now)."""
        self._scheduler = scheduler
        self.tick()
        # two instances allowed: a tick due while the last one still runs returns at once (counted)
        # instead of APScheduler logging "skipped: maximum number of running instances reached"
        scheduler.add_job(self.tick, "interval", seconds=self.engine.settings.tick_s, id=_TICK_JOB,
                          replace_existing=True, max_instances=2, coalesce=True)

    def tick(self) -> list[Transition]:
        """Advance the engine to the wall clock (in steps of :data:`TICK_BUDGET`, releasing the lock).

        A tick that finds the previous one still running returns at once: time only moves forward, so the
        running tick (or the next) does the work; ``stats()["ticks_overlapped"]`` counts them.
        """
        if self.engine.catching_up:
            return []  # (the catch-up runs the timers in device-time order; the tick after it runs the rest)
        if not self._ticking.acquire(blocking=False):
            self.ticks_overlapped += 1
            return []
        try:
            now = now_ms()
            out: list[Transition] = []
            while True:
                with self._lock.urgent():
                    with self.store.batch():
                        done = self.engine.advance(now, budget=TICK_BUDGET)
                    more = self.engine.due(now)
                out.extend(self._committed(done))
                if not more:
                    break
            if time.monotonic() >= self._watermarks_due:
                self._save_watermarks(TICK_BUDGET)
            return out
        finally:
            self._ticking.release()

    def _save_watermarks(self, limit: int | None) -> None:
        """Persist how far each series has been judged (the readings after it are judged again at a restart,
        see :mod:`alerts.catchup`); at most ``limit`` rows in one hold of the lock."""
        with self._lock.urgent():
            try:
                with self.store.batch():
                    saved = save_watermarks(self.engine.series, self.store, limit)
            except sqlite3.OperationalError as exc:  # a stalled file: the next tick tries again
                if not self._watermarks_stalled:  # one line per stall, not one traceback a tick
                    log.warning("alert engine: the judged-through watermarks were not saved (%s); tried again "
                                "at every tick until the store takes them", exc)
                self._watermarks_stalled = True
                return
            except Exception:
                log.exception("alert engine: the judged-through watermarks were not saved")
                return
        if self._watermarks_stalled:
            log.info("alert engine: the judged-through watermarks are saved again")
            self._watermarks_stalled = False
        if limit is None or saved < limit:
            self._watermarks_due = time.monotonic() + SAVE_EVERY_S

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """Judge readings just made durable (called from the store writer's thread; never raises).

        Smoke and leak readings go first, in the priority lane; the rest in slices of :data:`SLICE`, each
        one transaction (a notification request is committed right after the reading that caused it).
        """
        urgent = [r for r in readings if r.quantity in URGENT]
        if urgent:
            self._judge(urgent, self._lock.urgent, wait_for_due=False)
            readings = [r for r in readings if r.quantity not in URGENT]
        readings = late_last(readings, self.engine.series)
        with self._lock.slice():  # (stored already: a late one is judged against what was judged)
            engine = self.engine
            engine.history.lookups.expect(readings)
        try:
            for start in range(0, len(readings), SLICE):
                self._judge(readings[start:start + SLICE], self._lock.slice)
        finally:
            with self._lock.slice():
                engine.history.lookups.settle(readings)

    def _judge(self, readings: Sequence[Reading], hold: Any, *, wait_for_due: bool = True) -> None:
        """Judge ``readings`` in steps of :data:`TICK_BUDGET` work units, each one hold of the lock and one
        transaction; smoke and leak (``wait_for_due`` False) do not wait for a mass of timers due before them."""
        while readings:
            with hold():
                try:
                    with self.store.batch():
                        part = self.engine.feed_part(readings, budget=TICK_BUDGET, wait_for_due=wait_for_due,
                                                     on_error=_reading_failed)
                except Exception:  # the batch's commit failed: the store logged what was lost
                    log.exception("alert engine failed to commit a batch of %d readings", len(readings))
                    return
            self._committed(part.transitions)
            readings = readings[part.judged:]

    def on_availability(self, sensor: str, state: str, ts_ms: int) -> None:
        """An availability/LWT message for a configured sensor (never raises)."""
        with self._lock.urgent():
            try:
                with self.store.batch():
                    out = self.engine.availability(sensor, state, ts_ms, budget=TICK_BUDGET)
            except Exception:
                log.exception("alert engine failed on availability %s %s", sensor, state)
                return
        self._committed(out)

    def judge_backlog(self, readings: Sequence[Reading], availability: Sequence[Any] = ()) -> None:
        """What the last run stored but did not judge before its stop ran out of time (``archmon.app.feed``,
        handed over before anything this run stores): its readings after their series' watermark were judged
        at start already (:mod:`alerts.catchup`), the older (late) ones are judged now, then its availability
        changes (``sensor``, ``state``, ``ts_ms``)."""
        with self._lock.urgent():
            try:
                with self.store.batch():
                    out = self.engine.judge_backlog(readings)
            except Exception:
                log.exception("alert engine failed to judge the last run's backlog of %d readings", len(readings))
                out = []
        self._committed(out)
        for change in availability:
            self.on_availability(change.sensor, change.state, change.ts_ms)

    def acknowledge(self, alert_id: int, by: str, comment: str) -> list[Transition]:
        """Acknowledge an alert (see :meth:`AlertEngine.acknowledge`); published as ``ack`` (the transition
        it caused, or ``{"alert", "by", "comment", "ts_ms"}`` when it only added the comment)."""
        ts = now_ms()
        with self._lock.urgent():
            out = self.engine.acknowledge(alert_id, by, comment, ts)
        self._committed(out)
        if self.hub is not None:
            ack: Any = next((t for t in out if t.state in ("acknowledged", "closed")), None)
            self.hub.publish("ack", ack or {"alert": alert_id, "by": by, "comment": comment, "ts_ms": ts})
        return out

    def reload(self, config: Config) -> None:
        """Swap in a new configuration, keeping every alert, running delay and window; audited.

        The new engine takes over the old one's series table (windows of sensors still configured), rule
        memory, clock and counters; a changed limit applies from the next reading; nothing is judged again.

        Raises:
            ConfigError: the alert layer refuses the configuration (``check_config``); the old one goes on.
        """
        problems = check_config(config)
        if problems:
            raise ConfigError(problems)
        with self._lock.urgent():
            engine = AlertEngine(config, self.store, series=self.engine.series)
            engine.take_over(self.engine)
            from alerts.access import attach_register  # also for a reload before the first tick

            attach_register(engine, self._db_path)
            self.engine, self.config = engine, config
            self.store.audit(now_ms(), "config", "system", "config",
                             {"event": "reload", "path": str(config.path), "sha256": _config_digest(config)})
        self._refill(engine)
        log.info("alert configuration reloaded from %s", config.path)

    def _refill(self, engine: AlertEngine) -> None:
        """Fill the window rows a reload gave anew from the readings store, as a restart would (a changed rate
        window was blind for its length), :data:`REFILL_SLICE` series per hold of the lock."""
        slots, history = engine.refill, engine.history.source
        engine.refill = []
        if not slots or history is None:
            return
        started = time.perf_counter()
        for start in range(0, len(slots), REFILL_SLICE):
            with self._lock.slice():
                if self.engine is not engine:
                    return  # another reload replaced it (and fills its own)
                try:
                    refill_windows(engine.series, history, slots[start:start + REFILL_SLICE])
                except Exception:  # the store cannot be read: the rows fill from live readings
                    log.exception("alert engine: windows of %d series not refilled from the store", len(slots))
                    return
        log.info("alert engine: windows of %d series refilled from the store in %.2f s", len(slots),
                 time.perf_counter() - started)

    def stats(self) -> dict[str, int]:
        """Counters for ``archmon status`` and the store's counters (see ``EngineCounters``).

        ``late_for_alerts``: readings older than the 24 h window (stored, judged by no rule but smoke and
        leak); ``late_readings``: older than their series' newest but inside the window; ``late_for_rate``:
        late readings older than the rate window; ``late_for_day``: readings of a day already judged;
        ``caught_up``: readings stored but not judged before the last stop, judged at this start;
        ``state_write_max_bytes``/``_us``: the largest single write of engine state (a lifecycle row or a rule
        marker) and the longest one (inside its transaction); ``lock_hold_max_us``: the longest single hold
        of the engine lock (a slice, a tick's step, a reload: the most smoke and leak can have waited).
        """
        with self._lock.urgent():
            counters = self.engine.counters
            writes = self.store.state_writes
            stability = next((r for r in self.engine.rules if r.name == "stability"), None)
            return {
                "readings_judged": counters.readings,
                "late_readings": counters.late_readings,
                "late_for_alerts": counters.late_for_alerts,
                "late_alarms": counters.late_alarms,
                "late_for_rate": counters.late_for_rate,
                "caught_up": counters.caught_up,
                "late_for_day": int(getattr(stability, "late_for_day", 0)),
                "series": len(self.engine.series),
                "window_bytes": self.engine.series.nbytes(),
                "rebuilt_series": self.rebuilt_series,
                "rebuild_ms": int(self.rebuild_seconds * 1000),
                "state_writes": writes.count,
                "state_write_max_bytes": writes.max_bytes,
                "state_write_max_us": writes.max_us,
                "lock_hold_max_us": self._lock.longest_hold_us,
                "ticks_overlapped": self.ticks_overlapped,
            }

    def stop(self) -> None:
        """Remove the tick job and close the store (nothing to checkpoint)."""
        if self._scheduler is not None:
            if self._scheduler.get_job(_TICK_JOB) is not None:
                self._scheduler.remove_job(_TICK_JOB)
            self._scheduler = None
        self._save_watermarks(None)  # a clean stop: nothing is judged again at the next start
        with self._lock.urgent():
            self.store.close()
            if self._opened is not None:
                self._opened.close()

    def _committed(self, transitions: list[Transition]) -> list[Transition]:
        """Log and publish transitions whose transaction has committed."""
        for transition in transitions:
            log.info("alert %d %s → %s (%s) %s value=%s limit=%s", transition.alert, transition.rule,
                     transition.state, transition.severity, transition.title, transition.value, transition.limit)
            if self.hub is not None:
                self.hub.publish("alert", transition)
        return transitions


def _readings_store(db_path: Path, config: Config) -> Any:
    """The readings store in ``db_path``, read-only, or None (no file yet, or no readings tables)."""
    if not Path(db_path).is_file():
        return None
    try:
        from collector.store import SqliteStore

        return SqliteStore(Path(db_path), tz=config.site.tz, readonly=True)
    except Exception as exc:  # a file of the alert tables alone, or a store this archmon cannot read
        log.info("alert engine starts without history: no readable readings store in %s (%s)", db_path, exc)
        return None
