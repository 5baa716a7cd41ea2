"""Live wiring: the engine behind a lock, driven by the store writer's callbacks and an APScheduler tick.

Timers (delays, clear delays, stale detection, daily verdicts, repeats, escalations) run from one short
periodic job (``alerts.tick_s``, default 1 s) that calls ``engine.advance(now)``; smoke and leak are judged
in ``on_readings`` itself, with no polling delay. A second job checkpoints the rules' memory every minute.

``on_readings`` judges the whole batch in memory and writes only transitions, in one transaction per call
(``AlertStore.batch``); a notification request (a smoke alarm firing) is committed as soon as the reading
that caused it has been judged, before the rest of the batch.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from apscheduler.schedulers.base import BaseScheduler

from alerts.engine import AlertEngine
from alerts.model import Transition
from alerts.site import check_config
from alerts.store import AlertStore
from archmon.config import Config
from archmon.domain import Reading
from archmon.timeutil import now_ms

__all__ = ["AlertService", "check_config"]

log = logging.getLogger(__name__)

_TICK_JOB = "alerts.tick"
_CHECKPOINT_JOB = "alerts.checkpoint"


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

    Raises:
        ConfigError: bad alert settings or room profiles.
    """

    def __init__(self, config: Config, db_path: Path) -> None:
        self.config = config
        self.store = AlertStore(db_path)
        self.engine = AlertEngine(config, self.store)
        self._lock = threading.Lock()
        self._scheduler: BaseScheduler | None = None
        self.store.audit(now_ms(), "config", "system", "config",
                         {"event": "load", "path": str(config.path), "sha256": _config_digest(config)})

    def start(self, scheduler: BaseScheduler) -> None:
        """Add the tick and checkpoint jobs to the service's scheduler (and tick once now)."""
        self._scheduler = scheduler
        self.tick()
        scheduler.add_job(self.tick, "interval", seconds=self.engine.settings.tick_s, id=_TICK_JOB,
                          replace_existing=True, max_instances=1, coalesce=True)
        scheduler.add_job(self.checkpoint, "interval", seconds=60, id=_CHECKPOINT_JOB,
                          replace_existing=True, max_instances=1, coalesce=True)

    def tick(self) -> list[Transition]:
        """Advance the engine to the wall clock."""
        with self._lock, self.store.batch():
            return self._log(self.engine.advance(now_ms()))

    def checkpoint(self) -> None:
        """Persist the rules' memory."""
        with self._lock:
            self.engine.checkpoint()

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """Judge readings just made durable (called from the store writer's thread; never raises).

        The batch is judged in memory; its transitions are written in one transaction (a notification
        request is committed right after the reading that caused it).
        """
        with self._lock:
            try:
                with self.store.batch():
                    self._log(self.engine.feed_many(readings, on_error=_reading_failed))
            except Exception:  # the batch's commit failed: the store logged what was lost
                log.exception("alert engine failed to commit a batch of %d readings", len(readings))

    def on_availability(self, sensor: str, state: str, ts_ms: int) -> None:
        """An availability/LWT message for a configured sensor (never raises)."""
        with self._lock:
            try:
                self._log(self.engine.availability(sensor, state, ts_ms))
            except Exception:
                log.exception("alert engine failed on availability %s %s", sensor, state)

    def acknowledge(self, alert_id: int, by: str, comment: str) -> list[Transition]:
        """Acknowledge an alert (see :meth:`AlertEngine.acknowledge`)."""
        with self._lock:
            return self._log(self.engine.acknowledge(alert_id, by, comment, now_ms()))

    def reload(self, config: Config) -> None:
        """Swap in a new configuration, keeping every alert and running delay; audited."""
        with self._lock:
            self.engine.checkpoint()
            self.engine = AlertEngine(config, self.store)
            self.config = config
            self.store.audit(now_ms(), "config", "system", "config",
                             {"event": "reload", "path": str(config.path), "sha256": _config_digest(config)})

    def stop(self) -> None:
        """Remove the jobs, checkpoint and close the store."""
        if self._scheduler is not None:
            for job_id in (_TICK_JOB, _CHECKPOINT_JOB):
                if self._scheduler.get_job(job_id) is not None:
                    self._scheduler.remove_job(job_id)
            self._scheduler = None
        with self._lock:
            self.engine.checkpoint()
            self.store.close()

    def _log(self, transitions: list[Transition]) -> list[Transition]:
        for transition in transitions:
            log.info("alert %d %s → %s (%s) %s value=%s limit=%s", transition.alert, transition.rule,
                     transition.state, transition.severity, transition.title, transition.value, transition.limit)
        return transitions
