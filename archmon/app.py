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
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from archmon.config import Config
from archmon.domain import RawMessage
from archmon.errors import ConfigError
from archmon.timeutil import now_ms
from collector.fanout import ConsumerThread
from collector.modbus import ModbusDevice, ModbusSource
from collector.mqtt import MqttSource
from collector.pipeline import Pipeline
from collector.records import Batch, WriteResult
from collector.routing import decode_options
from collector.serial_line import SerialLineSource
from collector.store import SqliteStore
from collector.writer import StoreWriter
from devices.formats import DECODERS
from devices.line import LineFormat
from devices.modbus import get_register_map, read_plan

__all__ = ["Service", "check_references"]

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 10.0
_GAUGES = frozenset({"connected", "pending", "queued"})  # states, not counters: not summed into the store


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
        self.notifier: Any = self._notifier()
        self._reported: dict[str, dict[str, int]] = defaultdict(dict)
        self._stopped = threading.Event()

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
        self.scheduler.add_job(self.apply_retention, "interval", hours=1, id="retention",
                               next_run_time=_now_dt(self.config))
        if self.alerts is not None:
            self._alert_feed.start()
            self.alerts.start(self.scheduler)
        if self.notifier is not None:
            self.notifier.start()
        self.scheduler.start()
        log.info("archmon started: %d MQTT, %d Modbus, %d line sources; data in %s",
                 len(self.mqtt), len(self.modbus), len(self.lines), self.db_path)

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

    def report_stats(self, *, stopping: bool = False) -> None:
        """Persist the sources' counters (as deltas) and states (gauges) so ``archmon status`` can show them."""
        batch = Batch()
        now = now_ms()
        batch.gauges["service.running"] = (0 if stopping else 1, now)
        for source_id, source in self.sources().items():
            stats = dict(source.stats())
            if isinstance(source, MqttSource):
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
        for line in self.lines:
            line.stop()
        for bus in self.modbus:
            bus.close()
        self.report_stats(stopping=True)
        self.writer.flush(timeout=30)
        for source in self.mqtt:
            # Wait until every stored message is acknowledged (deferred ones stay unacknowledged on purpose).
            _wait_for(lambda s=source: s.stats().get("pending", 0) <= self._deferred[s.config.id], timeout_s=5.0)
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
