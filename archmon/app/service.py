"""The service ``archmon run`` starts: stores, the pipeline, sources, the alert engine and its feed, the
notifier and schedules, built from one Config; reloaded on SIGHUP, stopped within a bound on SIGTERM."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from archmon import systemd
from archmon.app.audit import AuditQueue
from archmon.app.checks import check_references, storage_problems
from archmon.app.feed import AlertFeed, Backlog, load_backlog
from archmon.app.forwarding import FORWARD_GAUGES, FORWARD_STATS, build_forwarding
from archmon.app.reloading import AlertSwap, Reloading
from archmon.app.reports import add_report_job
from archmon.app.stats import ALERT_GAUGES, WRITER_GAUGES, Counters
from archmon.config import Config
from archmon.domain import RawMessage
from archmon.errors import ConfigError, RetryLater
from archmon.heap import TRIM_INTERVAL_S, trim_heap
from archmon.hub import EventHub
from archmon.shutdown import StopReport
from archmon.sqlite import SchemaError
from archmon.timeutil import now_ms
from collector.pipeline import Pipeline
from collector.records import Batch, WriteResult
from collector.source import PollingSource, PushSource, Source, SourceContext
from collector.sources import SOURCE_KINDS, SourceCheck, build_sources, check_sources
from collector.spool import spool_dir
from collector.store import SqliteStore
from collector.writer import StoreWriter

__all__ = ["STORE_BUSY_TIMEOUT_S", "Service", "SourceState"]

log = logging.getLogger("archmon.app")

STATS_INTERVAL_S = 10.0
SOURCE_CHECK_S = 1.0
STORE_BUSY_TIMEOUT_S = 1.0
"""How long one write of the store writer waits for another connection's lock before it retries (with
backoff, for as long as it takes): short, so a stop during a stall gives up within its bound."""
_ALARMS = frozenset({"smoke", "leak"})
_PART_GAUGES = frozenset({"queued", "active", "open"})  # states of other parts; a source kind names its own


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's state changed (event kind ``source`` on ``Service.hub``; also its first state after start)."""

    source: str
    state: Literal["connected", "disconnected"]
    ts_ms: int


class Service(Reloading):
    """Everything ``archmon run`` starts, in order, and stops in reverse with a final flush (reloads:
    :class:`~archmon.app.reloading.Reloading`).

    Args:
        config: validated configuration.
        on_stored: extra listeners called after each commit (live views, tests).

    Raises:
        ConfigError: a problem with the file, including a database that cannot be written where
            ``storage.sqlite_path`` says.
    """

    def __init__(self, config: Config, *, on_stored: list[Callable[[WriteResult], None]] | None = None) -> None:
        checked = check_sources(config)  # the one validation of the source tables; everything below uses it
        problems = check_references(config, checked=checked, secrets=False) + storage_problems(config)
        if problems:
            raise ConfigError(problems)
        for warning in checked.warnings:
            log.warning("%s", warning)
        self.config = config
        self.db_path: Path = config.resolve(config.storage.sqlite_path)
        self.store = _open_store(config, self.db_path)
        self.writer = StoreWriter(
            self.store, batch_size=config.storage.batch_size, flush_interval_ms=config.storage.flush_interval_ms
        )
        self.forwarding = build_forwarding(config, self.store, self.db_path, busy_timeout_s=STORE_BUSY_TIMEOUT_S)
        """Readings copied to InfluxDB through the outbox (None: no ``[forward.influxdb]``)."""
        if self.forwarding is not None:
            self.writer.add_listener(self.forwarding.forwarder.wake)
        self.hub = EventHub()
        """Stored readings and source state changes; alerts, acknowledgements and notification results."""
        self.writer.add_listener(self._publish_readings)
        for listener in on_stored or []:
            self.writer.add_listener(listener)
        from alerts.calibration import RecordedCorrections

        self.corrections = RecordedCorrections(self.db_path)
        """The recorded calibrations, followed as ``archmon calibration add`` adds them (any process)."""
        self.pipeline = Pipeline(config, self._submit, receipt_lookup=self.store.receipt_time,
                                 sources=checked.configs, corrections=self.corrections)
        self._checked = checked
        self._accepting = True
        self._alarms_told: dict[str, float] = {}  # sensor -> when an alarm during a store stall was logged
        self._deferred: dict[str, int] = defaultdict(int)
        # Sources whose origin sends again what was not acknowledged (an MQTT broker): see _on_messages.
        self._redelivering = {t.id for t in config.sources if SOURCE_KINDS[t.kind].redelivers}
        self._gauges = {t.id: SOURCE_KINDS[t.kind].gauges | {"connected"} for t in config.sources}
        self._sources = self._build_sources(checked)
        polling = sum(isinstance(source, PollingSource) for source in self._sources.values())
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(4, polling + 2),
                                                     pool_kwargs={"thread_name_prefix": "archmon-job"})},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=config.site.tz,
        )
        self.audit = AuditQueue(self.db_path)
        """The service's own audit entries (reloads), written whatever the database is doing."""
        self.backlog_path = self.db_path.with_name(self.db_path.name + ".unjudged.json")
        """Readings stored but not judged when the last stop ran out of time (see :mod:`archmon.app.feed`)."""
        self.alerts: Any = self._alert_service()
        self.notifier: Any = self._notifier()
        self.control: Any = self._climate()
        """Climate control (``[[actuators]]``; None without any): :mod:`archmon.app.climate`."""
        from archmon.app.city import build_city

        self.city = build_city(config, self.db_path, self.hub)
        """The site's link to the city's broker and/or the central overview (None: neither configured)."""
        self.audit.start()  # (the alert service made the audit table) also for a reload before the start
        self.counters = Counters()
        self._service_counts: dict[str, int] = defaultdict(int)  # reloads, refusals... (persisted as counters)
        self._service_gauges: dict[str, int] = {}
        self._source_states: dict[str, str] = {}
        self._source_lock = threading.Lock()
        self._stopping = threading.Event()  # asked to stop: reloads are no longer applied
        self._stopped = threading.Event()  # stop() ran
        self._started = False
        self._reload_lock = threading.Lock()
        self._queued_swaps: list[AlertSwap] = []  # queued by the reload under way, its entry not yet submitted
        self.on_reload: list[Callable[[Config], None]] = []
        """Called with the configuration in force after each applied reload (the dashboard follows it)."""
        self.dashboard: Any = None
        """The web dashboard's server while ``serve_dashboard`` runs it (stopped first by ``stop``)."""
        self.stop_report: StopReport | None = None

    def _build_sources(self, checked: SourceCheck) -> dict[str, Source]:
        """Every configured source from the registry, by id: built (validated), not started."""
        context = SourceContext(self.config, self._on_messages, self.pipeline.router,
                                max_chunk=self.config.storage.batch_size, spool_dir=spool_dir(self.db_path))
        return build_sources(self.config, context, checked=checked)

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
        if any(r.quantity in _ALARMS and r.value >= 1.0 for r in batch.readings):
            self._alarm_while_stalled(batch)
        if batch.availability:
            records, feed = list(batch.availability), self._alert_feed

            def forward(done: Future[WriteResult]) -> None:
                if done.exception() is None:
                    for record in records:
                        feed.availability(record.sensor, record.state, record.ts_ms)

            future.add_done_callback(forward)
        return future

    def _alarm_while_stalled(self, batch: Batch) -> None:
        """A smoke or leak alarm the store cannot take now (its writes are failing and retried): the alert
        engine judges it only once it is stored (its alerts live in the same file, which takes no write
        either), so say so at once, once a minute per sensor."""
        if not self.writer.stats().retrying:
            return
        now = time.monotonic()
        for reading in batch.readings:
            if reading.quantity in _ALARMS and reading.value >= 1.0 and \
                    now - self._alarms_told.get(reading.sensor, -60.0) >= 60.0:
                self._alarms_told[reading.sensor] = now
                log.error("%s alarm from %s received while the store cannot be written (%s): it is judged and "
                          "notified as soon as it is stored", reading.quantity, reading.sensor,
                          self.writer.stats().last_error or "retrying")

    def _alert_service(self) -> Any:
        from alerts import AlertService

        # (what the last run stored but did not judge is judged on the feed's thread once sources run)
        service = AlertService(self.config, self.db_path, hub=self.hub, defer_catch_up=True)
        # Readings and availability reach the engine in commit order, on its own thread, so judging
        # never holds up the next commit (and the MQTT acks that wait for it).
        self._alert_feed = AlertFeed(service, on_backlog=self._judge_backlog)
        self.writer.add_listener(lambda result: self._alert_feed.readings(result.stored) if result.stored else None)
        return service

    def _judge_backlog(self, backlog: Backlog) -> None:
        """On the feed's thread, before this run's first commit: what the last stop could not judge (its
        readings after their series' watermark were judged at start already, see ``alerts.catchup``)."""
        self.alerts.judge_backlog(backlog.readings, backlog.availability)
        log.info("alerts: took the %d reading(s) and %d availability change(s) the last run stored but could not "
                 "judge before it stopped (the readings stored after what it had judged of their series were "
                 "judged at start)", len(backlog.readings), len(backlog.availability))
        if not self._alert_feed.abandoned:  # (a stop that ran out of time keeps the file itself)
            self.backlog_path.unlink(missing_ok=True)

    def _notifier(self) -> Any:
        from alerts.notify import build_notifier

        alerts = self.alerts
        return build_notifier(self.config, self.db_path, hub=self.hub, acknowledge=alerts.acknowledge,
                              engine_rules=lambda: alerts.engine.rules)

    def _climate(self) -> Any:
        from archmon.app.climate import build_climate

        control = build_climate(self.config, self.db_path)
        if control is not None:
            self.writer.add_listener(control.on_stored)
            control.attach(self.alerts.engine.rules)
        return control

    def start(self) -> None:
        """Start the writer, the sources and the schedules (never blocks on an unreachable device)."""
        self._alert_feed.call("catch-up", self.alerts.catch_up)  # first: in steps, smoke in its own lane
        self._alert_feed.call("heap-trim", trim_heap)  # what the rebuild and the catch-up freed (archmon.heap)
        backlog = load_backlog(self.backlog_path)
        if backlog is not None:  # judged before anything this run stores
            self._alert_feed.backlog(backlog)
        self._alert_feed.start()
        self.writer.start()
        for source_id, source in self._sources.items():
            if isinstance(source, PollingSource):
                self.scheduler.add_job(source.gather, "interval", seconds=source.interval_s,
                                       id=f"gather:{source_id}", next_run_time=_now_dt(self.config))
            elif isinstance(source, PushSource):
                source.start()
        self.scheduler.add_job(self.report_stats, "interval", seconds=STATS_INTERVAL_S, id="stats",
                               next_run_time=_now_dt(self.config))
        self.scheduler.add_job(self.check_sources, "interval", seconds=SOURCE_CHECK_S, id="source-states")
        self.scheduler.add_job(self.apply_retention, "interval", hours=1, id="retention",
                               next_run_time=_now_dt(self.config))
        self.scheduler.add_job(trim_heap, "interval", seconds=TRIM_INTERVAL_S, id="heap-trim")
        self.alerts.start(self.scheduler)
        add_report_job(self.scheduler, lambda: self.config)  # monthly reports and registers ([reports.schedule])
        if self.forwarding is not None:
            forwarding = self.forwarding
            forwarding.start()
            self.scheduler.add_job(lambda: forwarding.attach(self.alerts), "interval", seconds=5, id="forward-alert",
                                   next_run_time=_now_dt(self.config))
        if self.notifier is not None:
            self.notifier.start()
        if self.control is not None:
            self.control.start(self.scheduler)
        if self.city is not None:
            self.city.start()
        self.scheduler.start()
        self._started = True
        kinds = sorted(f"{t.id} ({t.kind})" for t in self.config.sources if t.id in self._sources)
        log.info("archmon started: %d source(s) %s, %d sensors in %d rooms; data in %s", len(kinds),
                 ", ".join(kinds), len(self.config.sensors), len(self.config.rooms), self.db_path)

    def serve_dashboard(self, address: str | None = None) -> Any:
        """Start the web dashboard (``--http HOST:PORT``, else ``[http]``; ``"off"``: not at all); see
        :func:`archmon.app.web.serve_dashboard`. A dashboard that cannot start is logged, never fatal."""
        from archmon.app.web import serve_dashboard

        return serve_dashboard(self, address)

    def sources(self) -> dict[str, Source]:
        """Every running source by id (tables of a kind without a running source have none)."""
        return dict(self._sources)

    # -- event hub ---------------------------------------------------------------------------------

    def _publish_readings(self, result: WriteResult) -> None:
        """Writer listener: one ``readings`` event per commit (the hub never blocks, so neither does this)."""
        if result.stored:
            self.hub.publish("readings", result.stored)

    def check_sources(self) -> None:
        """Publish a ``source`` event for every source whose connection state changed (a 1 s job)."""
        with self._source_lock:  # the 1 s job and report_stats both look
            for source_id, source in self.sources().items():
                state = "connected" if source.connected else "disconnected"
                if self._source_states.get(source_id) != state:
                    self._source_states[source_id] = state
                    self.hub.publish("source", SourceState(source_id, state, now_ms()))

    # -- counters ----------------------------------------------------------------------------------

    def report_stats(self, *, stopping: bool = False, timeout_s: float | None = None, alerts: bool = True) -> None:
        """Persist counters (as deltas) and states (gauges) of the sources, the alert service, the writer and
        the event hub, so ``archmon status`` can show them (see :mod:`archmon.app.stats`).

        Args:
            stopping: ``service.running`` is 0 from now on.
            timeout_s: longest wait for room in the writer (None: as long as it takes; 0: none).
            alerts: with the alert service's numbers (they wait for the engine's lock).
        """
        batch = self.stats_batch(stopping=stopping, alerts=alerts)
        try:
            self.counters.track(batch, self.writer.submit(batch, timeout=timeout_s))
        except RetryLater as exc:  # a full or closed writer: these deltas go with the next report
            self.counters.undo(batch.counters.items())
            log.debug("counters not persisted: %s", exc)

    def stats_batch(self, *, stopping: bool = False, alerts: bool = True) -> Batch:
        """What changed in the counters since the last report, and every state (``alerts=False``: without
        the alert service's, e.g. while its engine may be held by a stalled database)."""
        self.check_sources()
        batch = Batch()
        now = now_ms()
        batch.gauges["service.running"] = (0 if stopping else 1, now)
        for source_id, source in self.sources().items():
            stats = dict(source.stats())
            stats["connected"] = int(source.connected)
            self.counters.add(batch, f"source.{source_id}", stats, now, self._gauges.get(source_id, _PART_GAUGES))
        if alerts:
            gauges = frozenset(getattr(self.alerts, "stats_gauges", None) or ALERT_GAUGES)
            self.counters.add(batch, "alerts", dict(self.alerts.stats()), now, gauges)
        writer = self.writer.stats()
        self.counters.add(batch, "writer", {"failures": writer.failures, "rejected": writer.rejected,
                                            "listener_errors": writer.listener_errors,
                                            "queued_records": writer.queued_records,
                                            "retrying": int(writer.retrying)}, now, WRITER_GAUGES)
        if self.forwarding is not None:
            self.counters.add(batch, FORWARD_STATS, self.forwarding.stats(), now, FORWARD_GAUGES)
        for sub in self.hub.subscribers():
            self.counters.add(batch, f"hub.{sub.name}", {"dropped": sub.dropped}, now, frozenset())
        self.counters.add(batch, "service", {**self._service_counts, **self._service_gauges}, now,
                          frozenset(self._service_gauges))
        return batch

    def apply_retention(self) -> None:
        """Drop raw readings and quarantine entries past their retention (rollups are kept)."""
        storage = self.config.storage
        try:
            raw_days = storage.raw_retention_days
            if self.forwarding is not None:  # readings still to be queued again are kept
                raw_days = self.forwarding.retention_days(raw_days, now_ms())
            removed = self.store.apply_retention(now_ms(), raw_days, storage.quarantine_retention_days)
        except sqlite3.OperationalError as exc:  # a stalled file: the next hour's run removes them
            log.warning("retention: nothing removed this time: %s", exc)
            removed = {}
        if self.notifier is not None:
            try:
                self.notifier.apply_retention()
            except sqlite3.OperationalError as exc:
                log.warning("retention: no notification records removed this time: %s", exc)
        if any(removed.values()):
            log.info("retention removed %s", removed)

    # -- stop (SIGTERM) ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """A stop was asked for (a signal): reloads are no longer applied, and systemd hears it now, not when
        the stop gets going. Cheap and safe from a signal handler; :meth:`stop` does the work."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        bound = self.config.service.stop_timeout_s
        systemd.notify_stopping(f"stopping within {bound:g} s", timeout_s=bound + 5)

    @property
    def stopping(self) -> bool:
        """A stop was asked for (or has run)."""
        return self._stopping.is_set()

    def stop(self) -> StopReport:
        """Stop taking messages, store and acknowledge every accepted one, judge what was stored, then
        disconnect and close, all within ``[service] stop_timeout_s`` (see :mod:`archmon.app.stopping`)."""
        from archmon.app.stopping import stop_service

        if self._stopped.is_set():
            return self.stop_report or StopReport(self.config.service.stop_timeout_s)
        self._stopped.set()
        self.request_stop()
        self.stop_report = stop_service(self)
        return self.stop_report


def _open_store(config: Config, db_path: Path) -> SqliteStore:
    """The readings store, or a ConfigError naming the path (a file that is not an archmon database...)."""
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteStore(db_path, tz=config.site.tz, busy_timeout_s=STORE_BUSY_TIMEOUT_S)
    except (OSError, SchemaError) as exc:
        raise ConfigError(f"{config.label}: storage.sqlite_path: {db_path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise  # another process holds it: a restart may well work
        raise ConfigError(f"{config.label}: storage.sqlite_path: {db_path}: cannot use it as the database: "
                          f"{exc}") from exc


def _now_dt(config: Config) -> Any:
    from datetime import datetime

    return datetime.now(config.site.tz)
