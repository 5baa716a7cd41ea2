"""Service wiring: builds stores, the pipeline, sources and schedules from a Config and runs them.

This module (with ``archmon/cli.py``) is the one place in the core that imports the other packages.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from archmon import systemd
from archmon.config import Config, load_config
from archmon.domain import RawMessage
from archmon.errors import ConfigError, RetryLater
from archmon.hub import EventHub
from archmon.reload import ReloadOutcome, plan_reload
from archmon.shutdown import Deadline, StopReport, run_bounded, wait_until
from archmon.timeutil import now_ms
from collector._mqtt_client import validate_filter
from collector.fanout import ConsumerThread
from collector.modbus import ModbusDevice, ModbusSource
from collector.mqtt import MqttSource
from collector.pipeline import Pipeline
from collector.records import Batch, WriteResult
from collector.routing import Router, decode_options
from collector.serial_line import SerialLineSource
from collector.store import SqliteStore
from collector.writer import StoreWriter
from devices.formats import DECODERS
from devices.line import LineFormat
from devices.modbus import get_register_map, read_plan

__all__ = ["Service", "SourceState", "check_references"]

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 10.0
SOURCE_CHECK_S = 1.0
_GAUGES = frozenset({"connected", "pending", "queued", "active", "open"})  # states, not counters: not summed


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's state changed (event kind ``source`` on ``Service.hub``; also its first state after start)."""

    source: str
    state: Literal["connected", "disconnected"]
    ts_ms: int


class _Source(Protocol):
    def stats(self) -> dict[str, int]: ...


def check_references(config: Config) -> list[str]:
    """Problems the schema cannot see: unknown formats, presets and profiles, mixed presets per address."""
    problems: list[str] = []
    where = str(config.path or "<config>")
    for m in config.mqtt:
        for i, sub in enumerate(m.subscriptions):
            if sub.format not in DECODERS:
                problems.append(f"{where}: mqtt ({m.id}).subscriptions[{i}].format: unknown format "
                                f"{sub.format!r}; known: {sorted(DECODERS)}")
    for i, serial in enumerate(config.serial):
        if serial.protocol != "line":
            continue
        try:
            line_format = LineFormat(serial.line_pattern or "", units=serial.line_units, scale=serial.line_scale,
                                     encoding=serial.line_encoding)
        except ConfigError as exc:
            problems += [f"{where}: serial[{i}] ({serial.id}): {p}" for p in exc.problems]
            continue
        on_port = [s.id for s in config.sensors if s.source == serial.id and s.enabled]
        if len(on_port) > 1 and "(?P<sensor>" not in line_format.pattern:
            problems.append(f"{where}: serial[{i}] ({serial.id}).line_pattern: {len(on_port)} sensors {on_port} "
                            "share this port, so the pattern needs a (?P<sensor>...) group naming the sensor")
    presets: dict[tuple[str, int], str] = {}
    for i, sensor in enumerate(config.sensors):
        key = f"{where}: sensors[{i}] ({sensor.id})"
        if sensor.format is not None and sensor.format not in DECODERS:
            problems.append(f"{key}.format: unknown format {sensor.format!r}; known: {sorted(DECODERS)}")
        if sensor.preset is not None:
            try:
                regmap = get_register_map(sensor.preset, config.modbus_maps)
            except KeyError as exc:
                problems.append(f"{key}.preset: {exc.args[0] if exc.args else exc}")
            else:
                inputs = [r.quantity for r in regmap.registers if r.quantity.startswith("input")]
                if inputs and sensor.channel is None:
                    problems.append(f"{key}.channel: preset {sensor.preset!r} is a digital-input module; "
                                    f"say which input ({inputs[0]}..{inputs[-1]}) with channel = N")
                elif sensor.channel is not None and f"input{sensor.channel}" not in inputs:
                    problems.append(f"{key}.channel: preset {sensor.preset!r} has no input {sensor.channel}")
            if sensor.address is not None:
                other = presets.setdefault((sensor.source, sensor.address), sensor.preset)
                if other != sensor.preset:
                    problems.append(f"{key}.preset: address {sensor.address} on {sensor.source!r} already "
                                    f"uses preset {other!r}; one device has one register map")
    tables = [(f"sensors[{i}] ({s.id}).options", s.options) for i, s in enumerate(config.sensors)]
    tables += [(f"mqtt ({m.id}).subscriptions[{i}].options", sub.options)
               for m in config.mqtt for i, sub in enumerate(m.subscriptions)]
    for key, options in tables:
        try:
            decode_options(options, device_tz=config.site.timezone)
        except ConfigError as exc:
            problems += [f"{where}: {key}: {p.removeprefix('decode options: ')}" for p in exc.problems]
    try:
        from alerts import check_config as check_alerts
    except ImportError:  # the alert engine is optional at this layer
        check_alerts = None
    if check_alerts is not None:
        problems += [f"{where}: {p}" for p in check_alerts(config)]
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
        self.hub = EventHub()
        """Stored readings and source state changes, and (from the alert service) alerts and notifications."""
        self.writer.add_listener(self._publish_readings)
        for listener in on_stored or []:
            self.writer.add_listener(listener)
        self.pipeline = Pipeline(config, self._submit, receipt_lookup=self.store.receipt_time)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(4, len(config.serial) + 2))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=config.site.tz,
        )
        self._accepting = True
        self._deferred: dict[str, int] = defaultdict(int)
        self.mqtt = [
            MqttSource(m, batch_handler=self._on_mqtt, max_chunk=config.storage.batch_size, site=config.site.name,
                       topics=self.pipeline.router.mqtt_topics(m.id))
            for m in config.mqtt
        ]
        self.modbus = [ModbusSource(s, self._modbus_devices(s.id), self.pipeline.process)
                       for s in config.serial if s.protocol == "modbus"]
        self.lines = [SerialLineSource(s, self.pipeline.process) for s in config.serial if s.protocol == "line"]
        self.alerts: Any = self._alert_service()
        self._reported: dict[str, dict[str, int]] = defaultdict(dict)
        self._source_states: dict[str, str] = {}
        self._source_lock = threading.Lock()
        self._stopped = threading.Event()
        self._started = False
        self._reload_lock = threading.Lock()
        self.stop_report: StopReport | None = None

    def _on_mqtt(self, messages: Sequence[RawMessage]) -> Future[WriteResult]:
        if self._accepting:
            return self.pipeline.process_many(messages)
        # Stopping: leave the messages unacknowledged; the broker delivers them again on the next start.
        for message in messages:
            self._deferred[message.source] += 1
        return Future()

    def _submit(self, batch: Batch) -> Future[WriteResult]:
        future = self.writer.submit(batch)
        if batch.availability and self.alerts is not None:
            records, alerts = list(batch.availability), self.alerts

            def forward(done: Future[WriteResult]) -> None:
                if done.exception() is None:
                    for record in records:
                        self._alert_feed.submit(
                            lambda r=record: alerts.on_availability(r.sensor, r.state, r.ts_ms))

            future.add_done_callback(forward)
        return future

    def _modbus_devices(self, source: str) -> list[ModbusDevice]:
        by_address: dict[int, list[Any]] = defaultdict(list)
        for sensor in self.config.sensors:
            if sensor.enabled and sensor.source == source and sensor.address is not None:
                by_address[sensor.address].append(sensor)
        devices = []
        for address, sensors in sorted(by_address.items()):
            regmap = get_register_map(sensors[0].preset or "", self.config.modbus_maps)
            timeouts = [s.timeout_s for s in sensors if s.timeout_s is not None]
            devices.append(ModbusDevice(address=address, blocks=read_plan(regmap),
                                        timeout_s=max(timeouts) if timeouts else None,
                                        name=",".join(s.id for s in sensors)))
        return devices

    def _alert_service(self) -> Any:
        try:
            from alerts import AlertService
        except ImportError:
            return None
        # `hub` is the alerts' seam for publishing transitions; older AlertService versions lack it.
        if "hub" in inspect.signature(AlertService).parameters:
            service = AlertService(self.config, self.db_path, hub=self.hub)
        else:
            service = AlertService(self.config, self.db_path)
        # Readings and availability reach the engine in commit order, on its own thread, so judging
        # never holds up the next commit (and the MQTT acks that wait for it).
        self._alert_feed: ConsumerThread[Callable[[], None]] = ConsumerThread(lambda call: call(), name="alerts-feed")

        def judge(result: WriteResult) -> None:
            if result.stored:
                self._alert_feed.submit(lambda: service.on_readings(result.stored))

        self.writer.add_listener(judge)
        return service

    def start(self) -> None:
        """Start the writer, the sources and the schedules (never blocks on an unreachable device)."""
        self.writer.start()
        for source in self.mqtt:
            source.start()
        for line in self.lines:
            line.start()
        for bus in self.modbus:
            interval = next(s.poll_interval_s for s in self.config.serial if s.id == bus.config.id)
            self.scheduler.add_job(bus.gather, "interval", seconds=interval, id=f"modbus:{bus.config.id}",
                                   next_run_time=_now_dt(self.config))
        self.scheduler.add_job(self.report_stats, "interval", seconds=STATS_INTERVAL_S, id="stats",
                               next_run_time=_now_dt(self.config))
        self.scheduler.add_job(self.check_sources, "interval", seconds=SOURCE_CHECK_S, id="source-states")
        self.scheduler.add_job(self.apply_retention, "interval", hours=1, id="retention",
                               next_run_time=_now_dt(self.config))
        if self.alerts is not None:
            self._alert_feed.start()
            self.alerts.start(self.scheduler)
        self.scheduler.start()
        self._started = True
        log.info("archmon started: %d MQTT, %d Modbus, %d line sources, %d sensors in %d rooms; data in %s",
                 len(self.mqtt), len(self.modbus), len(self.lines), len(self.config.sensors),
                 len(self.config.rooms), self.db_path)

    def sources(self) -> dict[str, _Source]:
        """Every running source by id."""
        out: dict[str, _Source] = {}
        for m in self.mqtt:
            out[m.config.id] = m
        for b in self.modbus:
            out[b.config.id] = b
        for line in self.lines:
            out[line.config.id] = line
        return out

    # -- event hub ---------------------------------------------------------------------------------

    def _publish_readings(self, result: WriteResult) -> None:
        """Writer listener: one ``readings`` event per commit (the hub never blocks, so neither does this)."""
        if result.stored:
            self.hub.publish("readings", result.stored)

    def check_sources(self) -> None:
        """Publish a ``source`` event for every source whose connection state changed (a 1 s job)."""
        with self._source_lock:  # the 1 s job and report_stats both look
            for source_id, source in self.sources().items():
                connected = _connected(source)
                if connected is None:
                    continue
                state = "connected" if connected else "disconnected"
                if self._source_states.get(source_id) != state:
                    self._source_states[source_id] = state
                    self.hub.publish("source", SourceState(source_id, state, now_ms()))

    # -- counters ----------------------------------------------------------------------------------

    def report_stats(self, *, stopping: bool = False, timeout_s: float | None = None) -> None:
        """Persist counters (as deltas) and states (gauges) of the sources, the alert service, the writer and
        the event hub, so ``archmon status`` can show them."""
        self.check_sources()
        batch = Batch()
        now = now_ms()
        batch.gauges["service.running"] = (0 if stopping else 1, now)
        for source_id, source in self.sources().items():
            stats = dict(source.stats())
            if isinstance(source, MqttSource):
                stats["connected"] = int(source.connected)
            self._persist(batch, f"source.{source_id}", stats, now)
        if self.alerts is not None and hasattr(self.alerts, "stats"):
            self._persist(batch, "alerts", dict(self.alerts.stats()), now)
        writer = self.writer.stats()
        self._persist(batch, "writer", {"failures": writer.failures, "rejected": writer.rejected,
                                        "listener_errors": writer.listener_errors}, now)
        batch.gauges["writer.queued_records"] = (writer.queued_records, now)
        batch.gauges["writer.retrying"] = (int(writer.retrying), now)
        for sub in self.hub.subscribers():
            self._persist(batch, f"hub.{sub.name}", {"dropped": sub.dropped}, now)
        if batch:
            try:
                self.writer.submit(batch, timeout=timeout_s)
            except (RetryLater, RuntimeError) as exc:  # a full queue while stopping: counters wait for next time
                log.debug("counters not persisted: %s", exc)

    def _persist(self, batch: Batch, prefix: str, stats: dict[str, Any], now: int) -> None:
        reported = self._reported[prefix]
        for name, value in stats.items():
            if not isinstance(value, int) or isinstance(value, bool) or name.endswith("_ms"):
                continue
            if name in _GAUGES:
                batch.gauges[f"{prefix}.{name}"] = (value, now)
            elif value != reported.get(name, 0):
                batch.count(f"{prefix}.{name}", value - reported.get(name, 0))
                reported[name] = value

    def apply_retention(self) -> None:
        """Drop raw readings and quarantine entries past their retention (rollups are kept), and MQTT
        receipts older than 24 h."""
        storage = self.config.storage
        now = now_ms()
        removed = self.store.apply_retention(now, storage.raw_retention_days, storage.quarantine_retention_days)
        removed["mqtt_receipts"] = self.store.prune_receipts(now)
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
                problems = check_references(new) or check_references(plan.config)
                if problems:
                    raise ConfigError(problems)
                self._apply(plan.config)
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

    def _apply(self, config: Config) -> None:
        """Switch every part to ``config``, alert rules first (the one part that may still refuse it)."""
        topics = {m.config.id: _checked_topics(Router(config).mqtt_topics(m.config.id), m.config.id)
                  for m in self.mqtt}
        old = self.config
        self.config = config  # _modbus_devices reads it
        try:
            devices = {bus.config.id: self._modbus_devices(bus.config.id) for bus in self.modbus}
            self._reload_alerts(config)
            self.pipeline.reconfigure(config)
        except BaseException:
            self.config = old
            self._reload_alerts(old)
            raise
        for source in self.mqtt:
            source.set_topics(topics[source.config.id])
        for bus in self.modbus:
            bus.set_devices(devices[bus.config.id])

    def _reload_alerts(self, config: Config) -> None:
        """Swap the alert rules in the alert feed's order: readings stored before the reload are judged by the
        rules they were stored under, every later one by the new rules, none twice."""
        service = self.alerts
        if service is None or service.config is config:
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
        except (RetryLater, RuntimeError) as exc:
            log.debug("reload counters not persisted: %s", exc)
        store = getattr(self.alerts, "store", None)
        if store is None:
            log.warning("reload not audited: no alert service (the audit log lives there)")
            return
        try:
            store.audit(now, "config", "system", "service", outcome.audit_payload())
        except Exception:
            log.exception("reload: could not write the audit entry")

    # -- stop (SIGTERM) ----------------------------------------------------------------------------

    def stop(self) -> StopReport:
        """Stop taking messages, store and acknowledge every accepted one, then disconnect and close, all
        within ``[service] stop_timeout_s``; what could not be finished by then is given up (MQTT messages
        stay unacknowledged, so the broker sends them again) and said in the log and the report."""
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
        for line in self.lines:
            line.stop(timeout=deadline.left(reserve=tail, cap=5))
        for bus in self.modbus:
            if not run_bounded(bus.close, deadline.left(reserve=tail, cap=5), f"closing Modbus {bus.config.id}"):
                report.unfinished.append(f"Modbus {bus.config.id}")
        self.report_stats(stopping=True, timeout_s=0)
        if self._started:  # (a writer never started has no thread to flush; close() drains it)
            self.writer.flush(timeout=deadline.left(reserve=tail))
        for source in self.mqtt:
            # Wait until every stored message is acknowledged (deferred ones stay unacknowledged on purpose).
            wait_until(lambda s=source: s.stats().get("pending", 0) <= self._deferred[s.config.id],
                       deadline.left(reserve=tail / 2, cap=5))
            source.stop(timeout=deadline.left(reserve=tail / 2, cap=4))
            report.unacknowledged[source.config.id] = source.stats().get("pending", 0)
        closed = run_bounded(lambda: self.writer.close(timeout=deadline.left(reserve=1)), deadline.left(),
                             "store writer")
        if self.alerts is not None:
            # judge the last readings before the engine saves its state
            for what, step in (("alert feed", lambda: self._alert_feed.stop(timeout=deadline.left())),
                               ("alert service", self.alerts.stop)):
                if not run_bounded(step, deadline.left(), what):
                    report.unfinished.append(what)
        self.hub.close()  # subscribers blocked in get() see the end
        after = self.writer.stats()
        report.stored = after.committed_readings - before.committed_readings
        report.not_committed = after.queued_records
        if closed and not report.not_committed:
            self.store.close()
        elif not closed:
            report.unfinished.append("store writer")
        report.elapsed_s = deadline.elapsed()
        self.stop_report = report
        (log.info if report.complete else log.error)("%s", report.summary())
        return report


def _connected(source: _Source) -> bool | None:
    """Whether a source is connected (None: it does not say)."""
    if isinstance(source, MqttSource):
        return source.connected
    value = source.stats().get("connected")
    return None if value is None else bool(value)


def _checked_topics(topics: list[str], source_id: str) -> list[str]:
    """The topic filters, each checked before anything is switched (raises ConfigError)."""
    return [validate_filter(topic, f"mqtt ({source_id}) topics") for topic in topics]


def _now_dt(config: Config) -> Any:
    from datetime import datetime

    return datetime.now(config.site.tz)
