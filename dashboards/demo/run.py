"""``archmon demo``: the real service against built-in simulators, a month of history first, then live.

In order: the dashboard's address and a one-time administrator password are printed; 30 days of history
are written and judged (:mod:`dashboards.demo.month`, a few seconds); the service starts with the
dashboard, the simulators start reporting in real time, and the script (:mod:`dashboards.demo.scenario`)
runs. Logs go to ``archmon-demo.log`` in the data directory; the terminal shows the address, the history's
progress, the script, the live one-line summary and alert lines (:mod:`dashboards.demo.terminal`).

Each run starts a fresh site: a previous demo's database in the data directory is moved to
``previous/`` first (a database the demo did not make is left alone and the demo refuses to start).
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.control import ControlRecords
from archmon.config import load_config
from archmon.errors import ConfigError
from archmon.logsetup import setup_logging, use_zone
from archmon.timeutil import now_ms
from collector.backfill import BackfillResult
from dashboards.demo.controlled import ACTUATOR, PLUG_TOPIC, SENSOR_NAME, LiveControlledRoom
from dashboards.demo.month import HistorySummary, write_history
from dashboards.demo.scenario import LiveScenario
from dashboards.demo.site import DEMO_TIMEZONE, GENERATED, demo_config
from dashboards.demo.terminal import Terminal
from devices.simulators.broker import EmbeddedBroker
from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.modbus_slave import ModbusSlaveSimulator, SimDevice, encode_int16_x10, encode_uint16_x10
from devices.simulators.mqtt_sensors import SimulatorFleet, Zigbee2MqttSensor
from devices.simulators.plugs import PlugFleet, TasmotaPlug
from devices.simulators.pty_pair import PtyPair

__all__ = ["LOG_NAME", "run_demo"]

log = logging.getLogger("archmon.demo")

LOG_NAME = "archmon-demo.log"
DEFAULT_ADDRESS = "127.0.0.1:8080"


class _Stopped(Exception):
    """SIGINT/SIGTERM while the history is written."""


class _RoomNow:
    """One room of the live scenario as the simulators read it: its values at the real time (or at ``ts_ms``)."""

    def __init__(self, scenario: LiveScenario, room: str) -> None:
        self.scenario, self.room = scenario, room

    def values(self, ts_ms: int | None = None) -> dict[str, float]:
        values = self.scenario.values(self.room, now_ms() if ts_ms is None else ts_ms)
        return {**values, "temperature": round(values["temperature"], 2), "humidity": round(values["humidity"], 1)}


def run_demo(data_dir: Path, *, duration_s: float | None, interval_s: float = 2.0, http: str | None = None) -> int:
    """Write the history, then run the simulators and the real service until ``duration_s`` or SIGINT/SIGTERM.

    Args:
        data_dir: where the demo keeps its config, database and log.
        duration_s: stop after the live part ran this long (None: until a signal).
        interval_s: how often the simulated sensors report in the live part.
        http: the dashboard's ``HOST:PORT`` (None: ``127.0.0.1:8080``; port 0: a free one; ``"off"``: none).

    Raises:
        ConfigError: ``data_dir`` holds a database the demo did not make.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    tz = ZoneInfo(DEMO_TIMEZONE)
    terminal = Terminal(tz)
    moved = _fresh(data_dir)
    log_path = data_dir / LOG_NAME
    named = logging.getLevelName(logging.getLogger().level)
    level = named if isinstance(named, str) else "INFO"
    log_file = log_path.open("a", encoding="utf-8")
    setup_logging(level, stream=log_file)
    use_zone(tz, why="the demo site's time zone")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    address = _address(http)
    try:
        with ExitStack() as stack:
            return _run(data_dir, stack, terminal, tz, stop, address, duration_s, interval_s, log_path, moved)
    except _Stopped:
        terminal.line("archmon demo: stopped while writing the history")
        return 0
    finally:
        setup_logging(level)  # back to stderr: a late record of a thread still stopping never meets a closed file
        log_file.close()


def _run(data_dir: Path, stack: ExitStack, terminal: Terminal, tz: ZoneInfo, stop: threading.Event,
         address: str, duration_s: float | None, interval_s: float, log_path: Path, moved: bool) -> int:
    from alerts.access import AccessRegister
    from archmon.app import Service
    from dashboards.status import status_report

    broker = EmbeddedBroker().start()
    stack.callback(broker.stop)
    bus = stack.enter_context(PtyPair())
    line_pair = stack.enter_context(PtyPair())
    config_path = data_dir / "archmon.toml"
    config_path.write_text(demo_config(config_path, mqtt_port=broker.port, modbus_port=bus.a, line_port=line_pair.a,
                                       interval=interval_s), encoding="utf-8")
    config = load_config(config_path)
    db_path = config.resolve(config.storage.sqlite_path)
    _announce_dashboard(terminal, db_path, address)
    terminal.line(f"archmon demo: data in {db_path}, log in {log_path}" +
                  (f" (the previous demo's data is in {data_dir / 'previous'})" if moved else ""))

    def progress(done: BackfillResult, total: int) -> None:
        if stop.is_set():
            raise _Stopped
        terminal.progress(done, total)

    end = now_ms()
    past = write_history(config, db_path, end, progress=progress)
    terminal.line(f"history: {past.stored.stored:,} readings of {len(config.sensors)} sensors over 30 days stored "
                  f"in {past.seconds:.1f} s; {past.alerts} alerts judged ({past.acknowledged} acknowledged), "
                  f"{past.sessions} access sessions")

    service = Service(config)
    dashboard = service.serve_dashboard(address)
    if dashboard is None and address != "off":
        terminal.line(f"archmon demo: the dashboard could NOT be served on {address} (see {log_path})")
    scenario = LiveScenario(past.site, now_ms(), tz)
    _start_simulators(stack, scenario, past, broker.port, bus.b, line_pair.b, interval_s)
    register = AccessRegister(db_path, hub=service.hub)
    stack.callback(register.close)
    records = ControlRecords(db_path) if past.controlled is not None else None
    if records is not None:
        stack.callback(records.close)
    watch = service.hub.subscribe(["alert"], name="demo-terminal", maxsize=10_000)
    service.start()
    stack.callback(service.stop)  # runs first: the collector stops before the sensors go "offline"
    terminal.script(scenario)
    started = time.monotonic()
    next_summary = 0.0
    while not stop.is_set() and (duration_s is None or time.monotonic() - started < duration_s):
        for event in scenario.step(now_ms(), register):
            terminal.event(event, scenario)
            if event.key == "dehumidifier_back" and records is not None:  # the keeper: `archmon control auto`
                records.end_override(ACTUATOR, now_ms(), "张伟", "滤网已更换 / filter changed")
        for item in watch.drain():
            terminal.alert(item.data)
        if time.monotonic() >= next_summary:
            terminal.summary(status_report(config))
            next_summary = time.monotonic() + 2.0
        stop.wait(0.25)
    for item in watch.drain():
        terminal.alert(item.data)
    stack.close()
    terminal.summary(status_report(config), final=True)
    exe = Path(sys.executable).with_name("archmon")
    cmd = str(exe) if exe.exists() else "archmon"
    terminal.line(f"\nlook at the data:\n  {cmd} status --config {config_path}\n"
                  f"  {cmd} alerts list --config {config_path}\n"
                  f"  {cmd} export --config {config_path} --from 2000-01-01 --to 2100-01-01 --format csv")
    return 0


def _announce_dashboard(terminal: Terminal, db_path: Path, address: str) -> None:
    """First of all: where the dashboard will be, and a one-time administrator password for it."""
    from dashboards.web import UserStore, one_time_admin, parse_address

    if address == "off":
        terminal.line("archmon demo: no dashboard (--http off)")
        return
    users = UserStore(db_path)
    try:
        password = one_time_admin(users)
    finally:
        users.close()
    host, port = parse_address(address)
    shown = f"[{host}]" if ":" in host else host
    terminal.line(f"archmon demo: dashboard http://{shown}:{port}/ — log in as admin with the one-time password "
                  f"{password}")


def _start_simulators(stack: ExitStack, scenario: LiveScenario, past: HistorySummary, mqtt_port: int,
                      modbus_pty: str, line_pty: str, interval_s: float) -> None:
    paper, film, reading = (_RoomNow(scenario, room) for room in ("paper", "film", "reading"))
    rooms: dict[str, object] = {}
    devices = []
    if past.controlled is not None:  # the basement store: its dehumidifier on a Tasmota plug, its sensor
        plug = TasmotaPlug(now_ms, topic=PLUG_TOPIC, power_w=300.0, on=past.plug_on)
        plugs = PlugFleet("127.0.0.1", mqtt_port, [plug], client_id="archmon-demo-plugs").start()
        stack.callback(plugs.stop)
        rooms[SENSOR_NAME] = LiveControlledRoom(past.controlled, lambda: plug.on, scenario.start_ms)
        devices.append(Zigbee2MqttSensor(SENSOR_NAME, "temperature_humidity"))
    modbus = ModbusSlaveSimulator(modbus_pty, baudrate=4800, devices={
        1: SimDevice(holding={0: lambda: encode_uint16_x10(film.values()["humidity"]),
                              1: lambda: encode_int16_x10(film.values()["temperature"])}),
        # input 0: the door's reed contact, closed (1) while the door is closed
        2: SimDevice(discrete={0: lambda: int(not film.values()["door"]), **{i: 0 for i in range(1, 8)}}),
    })
    line = LineSensorSimulator(line_pty, lambda: reading.values(), interval_s=interval_s)
    names = {"paper_th": "temperature_humidity", "paper_door": "door", "paper_smoke": "smoke", "paper_leak": "leak"}
    fleet = SimulatorFleet(
        "127.0.0.1", mqtt_port,
        [*(Zigbee2MqttSensor(name, kind) for name, kind in names.items()), *devices],  # type: ignore[arg-type]
        interval_s=interval_s, rooms={**dict.fromkeys(names, paper), **rooms},  # type: ignore[arg-type, dict-item]
        client_id="archmon-demo-sensors",
    )
    for part in (modbus, line, fleet):
        part.start()
        stack.callback(part.stop)


def _address(http: str | None) -> str:
    """``HOST:PORT`` for the dashboard (port 0 becomes a free port now, so it can be printed first), or ``off``."""
    from dashboards.web import parse_address

    if http == "off":
        return "off"
    host, port = parse_address(http or DEFAULT_ADDRESS)
    if port == 0:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _fresh(data_dir: Path) -> bool:
    """Move a previous demo's database and log to ``previous/``; True if there was one.

    Raises:
        ConfigError: the directory holds a database but no configuration written by the demo.
    """
    db = data_dir / "archmon.db"
    if not db.exists():
        return False
    config = data_dir / "archmon.toml"
    first = config.read_text(encoding="utf-8", errors="replace")[: len(GENERATED)] if config.is_file() else ""
    if first != GENERATED:
        raise ConfigError(f"{data_dir}: holds {db.name}, which `archmon demo` did not make; the demo starts a "
                          "fresh site, so give it another --data-dir")
    previous = data_dir / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for path in data_dir.iterdir():
        if path.name.startswith(("archmon.db", LOG_NAME)):
            path.rename(previous / path.name)
    return True
