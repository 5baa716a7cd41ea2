"""Service wiring: builds stores, the pipeline, sources and schedules from a Config and runs them.

This module (with ``archmon/cli.py``) is the one place in the core that imports the other packages.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from archmon import systemd
from archmon.config import Config, load_config, reference_problems
from archmon.domain import RawMessage
from archmon.errors import ConfigError, RetryLater
from archmon.hub import EventHub
from archmon.reload import ReloadOutcome, plan_reload
from archmon.shutdown import Deadline, StopReport, run_bounded, run_step, wait_until
from archmon.timeutil import now_ms
from collector._mqtt_client import validate_filter
from collector.fanout import ConsumerThread
from collector.modbus import ModbusSource, bus_devices
from collector.mqtt import MqttSource
from collector.pipeline import Pipeline
from collector.records import Batch, WriteResult
from collector.routing import Router, decode_options
from collector.source import PollingSource, PushSource, Source, SourceContext
from collector.sources import SOURCE_KINDS, SourceCheck, build_sources, check_sources, source_problems
from collector.store import SqliteStore
from collector.writer import StoreWriter

__all__ = ["Service", "SourceState", "check_references"]

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 10.0
SOURCE_CHECK_S = 1.0
STORE_BUSY_TIMEOUT_S = 1.0
"""How long one write of the store writer waits for another connection's lock before it retries (with
backoff, for as long as it takes): short, so a stop during a stall gives up within its bound."""
# States, not counters, of the service's other parts; a source kind names its own (SourceKind.gauges).
_PART_GAUGES = frozenset({"queued", "active", "open"})
_AFTER_WRITER_S = 2.0  # of the stop bound, kept for the alert feed and the alert service after the writer


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's state changed (event kind ``source`` on ``Service.hub``; also its first state after start)."""

    source: str
    state: Literal["connected", "disconnected"]
    ts_ms: int


def check_references(config: Config, *, checked: SourceCheck | None = None, secrets: bool = True) -> list[str]:
    """Problems the core schema cannot see, one line each: references between sections (for a config
    loaded with ``references=False``), every source table checked with its kind's schema
    (``sources[2] (bus1).baudrate: ...``), what each kind needs of its sensors (MQTT topic and a known
    format, Modbus address and a known preset...), decoder options, alert and notification settings.

    Args:
        config: the configuration.
        checked: its source tables already validated (:func:`collector.sources.check_sources`).
        secrets: also check that every notification channel's secret can be read (``check-config``); a
            running service (False) starts without a channel whose secret is missing and marks it down.
    """
    from alerts import check_config as check_alerts
    from alerts.notify import check_config as check_notify
    from alerts.notify import check_run_config

    where = config.label
    problems = [f"{where}: {p}" for p in reference_problems(config)]
    problems += source_problems(config, checked=checked)
    for i, sensor in enumerate(config.sensors):
        try:
            decode_options(sensor.options, device_tz=config.site.timezone)
        except ConfigError as exc:
            problems += [f"{where}: sensors[{i}] ({sensor.id}).options: {p.removeprefix('decode options: ')}"
                         for p in exc.problems]
    problems += [f"{where}: {p}" for p in check_alerts(config)]
    # A running service does not stop for one notification channel's missing secret: that channel is down
    # (and says so through the others); check-config stays strict.
    problems += [f"{where}: {p}" for p in (check_notify if secrets else check_run_config)(config)]
    return problems


class Service:
    """Everything ``archmon run`` starts, in order, and stops in reverse with a final flush.

    Args:
        config: validated configuration.
        on_stored: extra listeners called after each commit (live views, tests).
    """

    def __init__(self, config: Config, *, on_stored: list[Callable[[WriteResult], None]] | None = None) -> None:
        checked = check_sources(config)  # the one validation of the source tables; everything below uses it
        problems = check_references(config, checked=checked, secrets=False)
        if problems:
            raise ConfigError(problems)
        for warning in checked.warnings:
            log.warning("%s", warning)
        self.config = config
        self.db_path: Path = config.resolve(config.storage.sqlite_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = SqliteStore(self.db_path, tz=config.site.tz, busy_timeout_s=STORE_BUSY_TIMEOUT_S)
        self.writer = StoreWriter(
            self.store, batch_size=config.storage.batch_size, flush_interval_ms=config.storage.flush_interval_ms
        )
        self.hub = EventHub()
        """Stored readings and source state changes; alerts, acknowledgements and notification results."""
        self.writer.add_listener(self._publish_readings)
        for listener in on_stored or []:
            self.writer.add_listener(listener)
        self.pipeline = Pipeline(config, self._submit, receipt_lookup=self.store.receipt_time,
                                 sources=checked.configs)
        self._accepting = True
        self._deferred: dict[str, int] = defaultdict(int)
        # Sources whose origin sends again what was not acknowledged (an MQTT broker): see _on_messages.
        self._redelivering = {t.id for t in config.sources if SOURCE_KINDS[t.kind].redelivers}
        self._gauges = {t.id: SOURCE_KINDS[t.kind].gauges | {"connected"} for t in config.sources}
        self._sources = self._build_sources(checked)
        polling = sum(isinstance(source, PollingSource) for source in self._sources.values())
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(4, polling + 2))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=config.site.tz,
        )
        self.alerts: Any = self._alert_service()
        self.notifier: Any = self._notifier()
        self._reported: dict[str, dict[str, int]] = defaultdict(dict)
        self._source_states: dict[str, str] = {}
        self._source_lock = threading.Lock()
        self._stopped = threading.Event()
        self._started = False
        self._reload_lock = threading.Lock()
        self.stop_report: StopReport | None = None

    def _build_sources(self, checked: SourceCheck) -> dict[str, Source]:
        """Every configured source from the registry, by id: built (validated), not started."""
        context = SourceContext(self.config, self._on_messages, self.pipeline.router,
                                max_chunk=self.config.storage.batch_size)
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
        from alerts import AlertService

        service = AlertService(self.config, self.db_path, hub=self.hub)
        # Readings and availability reach the engine in commit order, on its own thread, so judging
        # never holds up the next commit (and the MQTT acks that wait for it).
        self._alert_feed: ConsumerThread[Callable[[], None]] = ConsumerThread(lambda call: call(), name="alerts-feed")

        def judge(result: WriteResult) -> None:
            if result.stored:
                self._alert_feed.submit(lambda: service.on_readings(result.stored))

        self.writer.add_listener(judge)
        return service

    def _notifier(self) -> Any:
        from alerts.notify import build_notifier

        alerts = self.alerts
        return build_notifier(self.config, self.db_path, hub=self.hub, acknowledge=alerts.acknowledge,
                              engine_rules=lambda: alerts.engine.rules)

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
        self.scheduler.add_job(self.check_sources, "interval", seconds=SOURCE_CHECK_S, id="source-states")
        self.scheduler.add_job(self.apply_retention, "interval", hours=1, id="retention",
                               next_run_time=_now_dt(self.config))
        self._alert_feed.start()
        self.alerts.start(self.scheduler)
        if self.notifier is not None:
            self.notifier.start()
        self.scheduler.start()
        self._started = True
        kinds = sorted(f"{t.id} ({t.kind})" for t in self.config.sources if t.id in self._sources)
        log.info("archmon started: %d source(s) %s, %d sensors in %d rooms; data in %s", len(kinds),
                 ", ".join(kinds), len(self.config.sensors), len(self.config.rooms), self.db_path)

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

    def report_stats(self, *, stopping: bool = False, timeout_s: float | None = None) -> None:
        """Persist counters (as deltas) and states (gauges) of the sources, the alert service, the writer and
        the event hub, so ``archmon status`` can show them."""
        batch = self._stats_batch(stopping)
        if batch:
            try:
                self.writer.submit(batch, timeout=timeout_s)
            except RetryLater as exc:  # a full or closed writer while stopping: counters wait for next time
                log.debug("counters not persisted: %s", exc)

    def _stats_batch(self, stopping: bool) -> Batch:
        """What changed in the counters since the last report, and every state."""
        self.check_sources()
        batch = Batch()
        now = now_ms()
        batch.gauges["service.running"] = (0 if stopping else 1, now)
        for source_id, source in self.sources().items():
            stats = dict(source.stats())
            stats["connected"] = int(source.connected)
            self._persist(batch, f"source.{source_id}", stats, now, self._gauges.get(source_id, _PART_GAUGES))
        self._persist(batch, "alerts", dict(self.alerts.stats()), now)
        writer = self.writer.stats()
        self._persist(batch, "writer", {"failures": writer.failures, "rejected": writer.rejected,
                                        "listener_errors": writer.listener_errors}, now)
        batch.gauges["writer.queued_records"] = (writer.queued_records, now)
        batch.gauges["writer.retrying"] = (int(writer.retrying), now)
        for sub in self.hub.subscribers():
            self._persist(batch, f"hub.{sub.name}", {"dropped": sub.dropped}, now)
        return batch

    def _persist(self, batch: Batch, prefix: str, stats: dict[str, Any], now: int,
                 gauges: frozenset[str] = _PART_GAUGES) -> None:
        reported = self._reported[prefix]
        for name, value in stats.items():
            if not isinstance(value, int) or isinstance(value, bool) or name.endswith("_ms"):
                continue
            if name in gauges:
                batch.gauges[f"{prefix}.{name}"] = (value, now)
            elif value != reported.get(name, 0):
                batch.count(f"{prefix}.{name}", value - reported.get(name, 0))
                reported[name] = value

    def apply_retention(self) -> None:
        """Drop raw readings and quarantine entries past their retention (rollups are kept)."""
        storage = self.config.storage
        removed = self.store.apply_retention(now_ms(), storage.raw_retention_days, storage.quarantine_retention_days)
        if self.notifier is not None:
            self.notifier.apply_retention()
        if any(removed.values()):
            log.info("retention removed %s", removed)

    # -- reload (SIGHUP) ---------------------------------------------------------------------------

    def reload(self, path: Path | None = None) -> ReloadOutcome:
        """Read the configuration file again and apply what a running service can change (see
        :mod:`archmon.reload`); a file with problems is refused and the running configuration stays.

        Never raises for a bad file: the outcome says what happened; it is logged and audited either way.
        """
        file = Path(path or self.config.path or "archmon.toml")
        with self._reload_lock:
            try:
                digest = hashlib.sha256(file.read_bytes()).hexdigest()
            except OSError:
                digest = ""
            try:
                new = load_config(file)
                plan = plan_reload(self.config, new)
                checked = check_sources(plan.config)
                problems = (check_references(new, secrets=False)
                            or check_references(plan.config, checked=checked, secrets=False))
                if problems:
                    raise ConfigError(problems)
                self._apply(plan.config, checked)
            except ConfigError as exc:
                outcome = ReloadOutcome(str(file), digest, applied=False, problems=list(exc.problems))
            except Exception as exc:  # a bug must cost the reload, never the running service
                log.exception("reload of %s failed", file)
                outcome = ReloadOutcome(str(file), digest, applied=False,
                                        problems=[f"{file}: internal error: {type(exc).__name__}: {exc}"])
            else:
                outcome = ReloadOutcome(str(file), digest, applied=True, plan=plan)
            self._record_reload(outcome)
        return outcome

    def _apply(self, config: Config, checked: SourceCheck) -> None:
        """Switch every part to ``config``, alert rules first (the one part that may still refuse it)."""
        brokers = {i: s for i, s in self._sources.items() if isinstance(s, MqttSource)}
        buses = {i: s for i, s in self._sources.items() if isinstance(s, ModbusSource)}
        router = Router(config, checked.configs)
        topics = {i: [validate_filter(t, f"mqtt ({i}) topics") for t in router.mqtt_topics(i)] for i in brokers}
        devices = {i: bus_devices(config, i) for i in buses}
        old = self.config
        self.config = config
        try:
            self._reload_alerts(config)
            self.pipeline.reconfigure(config, checked.configs)
        except BaseException:
            self.config = old
            self._reload_alerts(old)
            raise
        for source_id, broker in brokers.items():
            broker.set_topics(topics[source_id])
        for source_id, bus in buses.items():
            bus.set_devices(devices[source_id])
        from alerts.notify import reload_notifier  # never raises; [notify] turned on waits for a restart

        self.notifier = reload_notifier(self.notifier, config)

    def _reload_alerts(self, config: Config) -> None:
        """Swap the alert rules in the alert feed's order: readings stored before the reload are judged by the
        rules they were stored under, every later one by the new rules, none twice."""
        service = self.alerts
        if service.config is config:
            return
        if not self._started or self._stopped.is_set():
            service.reload(config)
            return
        done: Future[None] = Future()

        def swap() -> None:
            try:
                service.reload(config)
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

        self._alert_feed.submit(swap)
        try:
            done.result(timeout=self.config.service.stop_timeout_s)
        except FutureTimeout:
            log.warning("reload: the alert engine is still judging readings stored before the reload; its new "
                        "rules apply once it is through them")

    def _record_reload(self, outcome: ReloadOutcome) -> None:
        now = now_ms()
        plan = outcome.plan
        outcome.log(log)
        batch = Batch()
        batch.count("service.reloads" if outcome.applied else "service.reloads_refused")
        batch.gauges["service.last_reload"] = (int(outcome.applied), now)
        batch.gauges["service.restart_needed"] = (len(plan.restart_needed) if plan else 0, now)
        try:
            self.writer.submit(batch, timeout=1)
        except RetryLater as exc:
            log.debug("reload counters not persisted: %s", exc)
        try:
            self.alerts.store.audit(now, "config", "system", "service", outcome.audit_payload())
        except Exception:
            log.exception("reload: could not write the audit entry")

    # -- stop (SIGTERM) ----------------------------------------------------------------------------

    def stop(self) -> StopReport:
        """Stop taking messages, store and acknowledge every accepted one, then disconnect and close, all
        within ``[service] stop_timeout_s``; what could not be finished by then is given up and said in the
        log and the report: MQTT messages stay unacknowledged (the broker sends them again), messages read
        from serial devices are lost and counted (``lost_at_stop`` per source)."""
        if self._stopped.is_set():
            return self.stop_report or StopReport(self.config.service.stop_timeout_s)
        self._stopped.set()
        self._accepting = False
        bound = self.config.service.stop_timeout_s
        deadline = Deadline(bound)
        tail = min(5.0, bound / 4)  # kept for acknowledgements, disconnects and closing after the flush
        before = self.writer.stats()
        report = StopReport(bound, queued_at_start=before.queued_records)
        log.info("stopping within %g s: %d record(s) queued for the store", bound, before.queued_records)
        systemd.notify_stopping(f"stopping: flushing {before.queued_records} record(s)", timeout_s=bound + 5)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        redelivering = {i: s for i, s in self._sources.items() if i in self._redelivering}
        others = {i: s for i, s in self._sources.items() if i not in redelivering}
        # Serial sources stop reading and hand everything they buffered to the writer, which queues it for its
        # final flush; they wait for it, all of them at once, in one shared budget.
        stoppers = {i: threading.Thread(target=s.stop, kwargs={"timeout": deadline.left(reserve=tail)},
                                        name=f"stop {i}", daemon=True) for i, s in others.items()}
        for thread in stoppers.values():
            thread.start()
        for source_id, thread in stoppers.items():
            thread.join(deadline.left(reserve=tail / 2))
            if thread.is_alive():
                report.unfinished.append(f"source {source_id}")
        self.report_stats(stopping=True, timeout_s=0)
        if self._started:  # (a writer never started has no thread to flush; close() drains it)
            self.writer.flush(timeout=deadline.left(reserve=tail))
        for source_id, source in redelivering.items():
            # Wait until every stored message is acknowledged (deferred ones stay unacknowledged on purpose).
            wait_until(lambda s=source, i=source_id: s.stats().get("pending", 0) <= self._deferred[i],
                       deadline.left(reserve=tail / 2, cap=5))
            source.stop(timeout=deadline.left(reserve=tail / 2, cap=4))
            report.unacknowledged[source_id] = source.stats().get("pending", 0)
        # The writer gives up early enough for its thread to end (one busy wait) within the bound: then every
        # future it did not commit has failed, and the serial sources have counted what they lost.
        after_writer = min(_AFTER_WRITER_S, bound / 10)
        give_up = after_writer + min(STORE_BUSY_TIMEOUT_S + 0.5, bound / 10)  # the abort ends one busy wait
        committed: list[bool] = []  # close() says whether everything submitted was committed
        finished = run_bounded(
            lambda: committed.append(self.writer.close(timeout=max(0.1, deadline.left(reserve=give_up)))),
            deadline.left(reserve=after_writer), "store writer")
        closed = finished and committed == [True]
        wait_until(lambda: not any(s.stats().get("buffered", 0) for s in others.values()),
                   deadline.left(reserve=after_writer / 2, cap=1.0))
        for source_id, source in others.items():
            stats = source.stats()  # still buffered now: never confirmed stored, so lost as well
            if stats.get("lost_at_stop", 0) + stats.get("buffered", 0):
                report.lost_at_stop[source_id] = stats.get("lost_at_stop", 0) + stats.get("buffered", 0)
        if closed:  # what was counted at the writer's close goes straight to the store (its thread has ended)
            try:
                self.store.write_many([self._stats_batch(stopping=True)])
            except Exception as exc:  # the log line and the report say it anyway
                log.warning("stopping: the last counters were not stored: %s: %s", type(exc).__name__, exc)
        if self.notifier is not None and not run_bounded(self.notifier.stop, deadline.left(reserve=1.0), "notifier"):
            report.unfinished.append("notifier")  # what is queued stays queued, sent at the next start
        # judge the last readings before the engine saves its state
        for what, step, reserve in (("alert feed", lambda: self._alert_feed.stop(timeout=deadline.left(reserve=0.5)),
                                     0.5), ("alert service", self.alerts.stop, 0.0)):
            if not run_step(step, deadline.left(reserve=reserve), what):  # a locked file: one line, not a crash
                report.unfinished.append(what)
        self.hub.close()  # subscribers blocked in get() see the end
        after = self.writer.stats()
        report.stored = after.committed_readings - before.committed_readings
        report.not_committed = after.queued_records + after.abandoned_records - before.abandoned_records
        if finished:
            self.store.close()  # the writer's thread has ended: nothing writes any more
        if not closed:
            report.unfinished.append("store writer")
        report.elapsed_s = deadline.elapsed()
        self.stop_report = report
        (log.info if report.complete else log.error)("%s", report.summary())
        return report

def _now_dt(config: Config) -> Any:
    from datetime import datetime

    return datetime.now(config.site.tz)
