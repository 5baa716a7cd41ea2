"""Service wiring: builds stores, the pipeline, sources and schedules from a Config and runs them.

This module (with ``archmon/cli.py``) is the one place in the core that imports the other packages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from archmon.config import Config
from archmon.domain import RawMessage
from archmon.errors import ConfigError
from archmon.timeutil import now_ms
from collector.fanout import ConsumerThread
from collector.pipeline import Pipeline
from collector.records import Batch, WriteResult
from collector.routing import decode_options
from collector.source import PollingSource, PushSource, Source, SourceContext
from collector.sources import SOURCE_KINDS, build_sources, source_problems
from collector.store import SqliteStore
from collector.writer import StoreWriter

__all__ = ["Service", "check_references"]

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 10.0
# States, not counters: not summed into the store.
_GAUGES = frozenset({"connected", "pending", "queued", "buffered"})


def check_references(config: Config) -> list[str]:
    """Problems the core schema cannot see, one line each: every source table checked with its kind's
    schema (``sources[2] (bus1).baudrate: ...``), what each kind needs of its sensors (MQTT topic and a
    known format, Modbus address and a known preset...), decoder options, alert settings."""
    where = str(config.path or "<config>")
    problems = source_problems(config)
    for i, sensor in enumerate(config.sensors):
        try:
            decode_options(sensor.options, device_tz=config.site.timezone)
        except ConfigError as exc:
            problems += [f"{where}: sensors[{i}] ({sensor.id}).options: {p.removeprefix('decode options: ')}"
                         for p in exc.problems]
    try:
        from alerts import check_config as check_alerts
    except ImportError:  # the alert engine is optional at this layer
        check_alerts = None
    if check_alerts is not None:
        problems += [f"{where}: {p}" for p in check_alerts(config)]
    try:
        from alerts.notify import check_config as check_notify
    except ImportError:  # notifications are optional at this layer
        check_notify = None
    if check_notify is not None:
        problems += [f"{where}: {p}" for p in check_notify(config)]
    return problems


class Service:
    """Everything ``archmon run`` starts, in order, and stops in reverse with a final flush.

    Args:
        config: validated configuration.
        on_stored: extra listeners called after each commit (live views, tests).
    """

    def __init__(self, config: Config, *, on_stored: list[Callable[[WriteResult], None]] | None = None) -> None:
        problems = check_references(config)
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.db_path: Path = config.resolve(config.storage.sqlite_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = SqliteStore(self.db_path, tz=config.site.tz)
        self.writer = StoreWriter(
            self.store, batch_size=config.storage.batch_size, flush_interval_ms=config.storage.flush_interval_ms
        )
        for listener in on_stored or []:
            self.writer.add_listener(listener)
        self.pipeline = Pipeline(config, self._submit, receipt_lookup=self.store.receipt_time)
        self._accepting = True
        self._deferred: dict[str, int] = defaultdict(int)
        # Sources whose origin sends again what was not acknowledged (an MQTT broker): see _on_messages.
        self._redelivering = {t.id for t in config.sources if SOURCE_KINDS[t.kind].redelivers}
        self._sources = self._build_sources()
        polling = sum(isinstance(source, PollingSource) for source in self._sources.values())
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(4, polling + 2))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=config.site.tz,
        )
        self.alerts: Any = self._alert_service()
        self.notifier: Any = self._notifier()
        self._reported: dict[str, dict[str, int]] = defaultdict(dict)
        self._stopped = threading.Event()

    def _build_sources(self) -> dict[str, Source]:
        """Every configured source from the registry, by id: built (validated), not started."""
        context = SourceContext(self.config, self._on_messages, self.pipeline.router,
                                max_chunk=self.config.storage.batch_size)
        return build_sources(self.config, context)

    def _on_messages(self, messages: Sequence[RawMessage]) -> Future[WriteResult]:
        """The sink of every source: the pipeline, except for a redelivering source while stopping.

        A redelivering source (MQTT) calls this from its network thread, which must keep serving the
        connection: it never waits for room in the writer; a full writer raises RetryLater and the source
        holds the messages (unacknowledged) and offers them again. Serial sources hand over from their own
        hand-over thread, which may wait.
        """
        redelivering = bool(messages) and messages[0].source in self._redelivering
        if self._accepting or not redelivering:
            return self.pipeline.process_many(messages, timeout=0 if redelivering else None)
        # Stopping: leave the messages unacknowledged; the broker delivers them again on the next start.
        # (Serial sources cannot be asked again: they keep handing over until their buffers are stored.)
        for message in messages:
            self._deferred[message.source] += 1
        return Future()

    def _submit(self, batch: Batch, *, timeout: float | None = None) -> Future[WriteResult]:
        future = self.writer.submit(batch, timeout=timeout)
        if batch.availability and self.alerts is not None:
            records, alerts = list(batch.availability), self.alerts

            def forward(done: Future[WriteResult]) -> None:
                if done.exception() is None:
                    for record in records:
                        self._alert_feed.submit(
                            lambda r=record: alerts.on_availability(r.sensor, r.state, r.ts_ms))

            future.add_done_callback(forward)
        return future

    def _alert_service(self) -> Any:
        try:
            from alerts import AlertService
        except ImportError:
            return None
        service = AlertService(self.config, self.db_path)
        # Readings and availability reach the engine in commit order, on its own thread, so judging
        # never holds up the next commit (and the MQTT acks that wait for it).
        self._alert_feed: ConsumerThread[Callable[[], None]] = ConsumerThread(lambda call: call(), name="alerts-feed")

        def judge(result: WriteResult) -> None:
            if result.stored:
                self._alert_feed.submit(lambda: service.on_readings(result.stored))

        self.writer.add_listener(judge)
        return service

    def _notifier(self) -> Any:
        try:
            from alerts.notify import build_notifier
        except ImportError:
            return None
        alerts = self.alerts
        return build_notifier(self.config, self.db_path, hub=getattr(self, "hub", None),
                              acknowledge=alerts.acknowledge if alerts is not None else None,
                              engine_rules=(lambda: alerts.engine.rules) if alerts is not None else None)

    def start(self) -> None:
        """Start the writer, the sources and the schedules (never blocks on an unreachable device)."""
        self.writer.start()
        for source_id, source in self._sources.items():
            if isinstance(source, PollingSource):
                self.scheduler.add_job(source.gather, "interval", seconds=source.interval_s,
                                       id=f"gather:{source_id}", next_run_time=_now_dt(self.config))
            elif isinstance(source, PushSource):
                source.start()
        self.scheduler.add_job(self.report_stats, "interval", seconds=STATS_INTERVAL_S, id="stats",
                               next_run_time=_now_dt(self.config))
        self.scheduler.add_job(self.apply_retention, "interval", hours=1, id="retention",
                               next_run_time=_now_dt(self.config))
        if self.alerts is not None:
            self._alert_feed.start()
            self.alerts.start(self.scheduler)
        if self.notifier is not None:
            self.notifier.start()
        self.scheduler.start()
        kinds = sorted(f"{t.id} ({t.kind})" for t in self.config.sources if t.id in self._sources)
        log.info("archmon started: %d source(s) %s; data in %s", len(kinds), ", ".join(kinds), self.db_path)

    def sources(self) -> dict[str, Source]:
        """Every running source by id (tables of a kind without a running source have none)."""
        return dict(self._sources)

    def report_stats(self, *, stopping: bool = False) -> None:
        """Persist the sources' counters (as deltas) and states (gauges) so ``archmon status`` can show them."""
        batch = Batch()
        now = now_ms()
        batch.gauges["service.running"] = (0 if stopping else 1, now)
        for source_id, source in self.sources().items():
            stats = dict(source.stats())
            stats["connected"] = int(source.connected)
            for name, value in stats.items():
                if not isinstance(value, int) or isinstance(value, bool) or name.endswith("_ms"):
                    continue
                if name in _GAUGES:
                    batch.gauges[f"source.{source_id}.{name}"] = (value, now)
                    continue
                last = self._reported[source_id].get(name, 0)
                if value != last:
                    batch.count(f"source.{source_id}.{name}", value - last)
                    self._reported[source_id][name] = value
        if batch:
            self.writer.submit(batch)

    def apply_retention(self) -> None:
        """Drop raw readings and quarantine entries past their retention (rollups are kept), and MQTT
        receipts older than 24 h."""
        storage = self.config.storage
        now = now_ms()
        removed = self.store.apply_retention(now, storage.raw_retention_days, storage.quarantine_retention_days)
        removed["mqtt_receipts"] = self.store.prune_receipts(now)
        if any(removed.values()):
            log.info("retention removed %s", removed)

    def stop(self) -> None:
        """Stop taking messages, store and acknowledge every accepted one, then disconnect and close."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._accepting = False
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        redelivering = {i: s for i, s in self._sources.items() if i in self._redelivering}
        for source_id, source in self._sources.items():
            if source_id not in redelivering:
                source.stop()  # serial sources hand over what they read until it is stored (bounded wait)
        self.report_stats(stopping=True)
        self.writer.flush(timeout=30)
        for source_id, source in redelivering.items():
            # Wait until every stored message is acknowledged (deferred ones stay unacknowledged on purpose).
            _wait_for(lambda s=source, i=source_id: s.stats().get("pending", 0) <= self._deferred[i], timeout_s=5.0)
            source.stop()
        self.writer.close(timeout=30)
        if self.notifier is not None:
            self.notifier.stop()  # what is queued stays queued, sent at the next start
        if self.alerts is not None:
            self._alert_feed.stop()  # judge the last readings before the engine saves its state
            self.alerts.stop()
        self.store.close()
        log.info("archmon stopped; every accepted reading is stored")


def _wait_for(condition: Callable[[], bool], *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _now_dt(config: Config) -> Any:
    from datetime import datetime

    return datetime.now(config.site.tz)
