"""The source registry: every source module registered under its own name with a sample that loads
through its real schema; source tables (new and older form) checked with file, key path and value."""

from __future__ import annotations

import inspect
import re
import threading
import tomllib
import typing
from concurrent.futures import Future
from importlib import import_module
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from archmon.app import Service, check_references
from archmon.cli import main
from archmon.config import Config, load_config, parse_config
from archmon.errors import ConfigError
from collector.modbus_config import ModbusSourceConfig
from collector.mqtt_config import MqttSourceConfig
from collector.routing import Router
from collector.serial_line_config import LineSourceConfig
from collector.source import SourceConfig, SourceContext
from collector.sources import SOURCE_KINDS, SourceKind, build_sources, configs_of, source_configs, source_problems
from collector.store import SqliteStore
from devices.decoded import DecodedValue
from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.modbus_slave import ModbusSlaveSimulator, SimDevice, encode_int16_x10, encode_uint16_x10
from devices.simulators.pty_pair import PtyPair
from tests.fixtures.store_stall import StoreStall
from tests.fixtures.waiting import wait_for

COLLECTOR = Path(__file__).resolve().parents[2] / "collector"
_OPTION = re.compile(r"^#+ ?([a-z_]+) = (.+)$")
_SETTING = re.compile(r"^([a-z_]+) = (.+)$")


def _source_modules() -> dict[str, list[str]]:
    """Public collector modules defining a running source class (connected, stats, stop, start or gather)."""
    found: dict[str, list[str]] = {}
    for path in sorted(COLLECTOR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = import_module(f"collector.{path.stem}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or inspect.isabstract(cls) or typing.Protocol in cls.__mro__:
                continue
            if all(hasattr(cls, a) for a in ("connected", "stats", "stop")) and (
                    hasattr(cls, "start") or hasattr(cls, "gather")):
                found.setdefault(module.__name__, []).append(name)
    return found


def test_every_source_module_is_registered_under_its_own_name() -> None:
    modules = _source_modules()
    assert set(modules) == {"collector.mqtt", "collector.modbus", "collector.serial_line"}  # the finder works
    registered = {kind.module for kind in SOURCE_KINDS.values()}
    assert not set(modules) - registered, f"source modules not in SOURCE_KINDS: {sorted(set(modules) - registered)}"
    for name, kind in SOURCE_KINDS.items():
        assert kind.name == name, f"{kind.schema.__name__} calls itself {kind.name!r} but is registered as {name!r}"
        assert typing.get_args(kind.schema.model_fields["kind"].annotation) == (name,)
        assert kind.module in modules or kind.build is None, f"{name}: {kind.module} defines no source class"
        assert kind.decoder is not None or kind.build is None, f"{name}: its messages have no decode step"
    samples = {path.name for path in COLLECTOR.glob("*.sample.toml")}
    assert samples == {kind.sample.name for kind in SOURCE_KINDS.values()}, "a sample without a registered kind"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field (``TlsConfig``, ``list[MqttSubscription]``), None for plain values."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if inspect.isclass(candidate) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _mentioned(text: str, schema: type[BaseModel]) -> dict[str, dict[str, tuple[bool, str]]]:
    """Per section (``sources``, ``sources.tls``...), each option line: key → (commented, value)."""
    sections: dict[str, dict[str, tuple[bool, str]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[] ")
            sections.setdefault(section, {})
            continue
        match = _SETTING.match(line) or _OPTION.match(line)
        if match and section:
            sections[section].setdefault(match.group(1), (line.startswith("#"), match.group(2)))
    return sections


@pytest.mark.parametrize("name", sorted(SOURCE_KINDS))
def test_sample_loads_through_the_real_schema_and_shows_every_option(name: str) -> None:
    kind = SOURCE_KINDS[name]
    text = kind.sample.read_text(encoding="utf-8")
    config = parse_config(tomllib.loads(text), source=str(kind.sample))
    (table,) = config.sources
    assert (table.kind, table.form) == (name, "sources")
    (typed,) = source_configs(config)
    assert type(typed) is kind.schema
    sections = _mentioned(text, kind.schema)
    checked = 0
    models: list[tuple[str, type[BaseModel]]] = [("sources", kind.schema)]
    while models:
        section, model = models.pop()
        lines = sections.get(section, {})
        for key, info in model.model_fields.items():
            nested = _model_of(info.annotation)
            if nested is not None:
                assert f"{section}.{key}" in sections, f"{kind.sample.name}: no [{section}.{key}] section"
                models.append((f"{section}.{key}", nested))
                continue
            assert key in lines, f"{kind.sample.name}: [{section}] does not show {key}"
            commented, value = lines[key]
            if info.is_required():
                assert not commented, f"{kind.sample.name}: required {key} is commented out"
            elif commented:
                default = info.get_default(call_default_factory=True)
                if default is not None:  # examples of optional settings are not defaults
                    shown = tomllib.loads(f"v = {value}")["v"]
                    assert shown == default, f"{kind.sample.name}: {key} shows {value}, the default is {default!r}"
                    checked += 1
    assert checked >= 4


MQTT_SENSOR = '[[sensors]]\nid = "th1"\nroom = "r"\nsource = "b"\ntopic = "z/th1"\nformat = "zigbee2mqtt"\n'
ROOM = '[[rooms]]\nid = "r"\n'


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = tmp_path / "archmon.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == f"{path}: {len(lines) - 1} problem(s)"
    return lines[:-1]


def test_new_and_older_tables_report_key_path_and_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = ROOM + (
        '[[sources]]\nkind = "mqtt"\nid = "b"\nport = 0\nqos = 3\n'
        '[[sources]]\nkind = "modbus"\nid = "bus1"\ndevice = "/dev/null"\nbaudrate = 100\nparity = "X"\n'
        '[[sources]]\nkind = "line"\nid = "log"\ndevice = "/dev/null"\nline_pattern = "x"\n'
        '[[sources]]\nkind = "line"\nid = "log2"\ndevice = "/dev/null"\nline_pattern = "(?P<humidity>.*)"\n'
        'poll_interval_s = 5\n'
        '[[serial]]\nid = "bus2"\ndevice = "/dev/null"\nprotocol = "modbus"\nbaudrate = 100\n'
        '[[mqtt]]\nid = "b2"\nkeepalive_s = 1\n'
    ) + MQTT_SENSOR
    lines = _check(tmp_path, text, capsys)
    where = str(tmp_path / "archmon.toml")
    assert lines == [
        f"{where}: sources[0] (b).port: Input should be greater than or equal to 1 (got 0)",
        f"{where}: sources[0] (b).qos: Input should be 0, 1 or 2 (got 3)",
        f"{where}: sources[1] (bus1).baudrate: Input should be greater than or equal to 300 (got 100)",
        f"{where}: sources[1] (bus1).parity: Input should be 'N', 'E' or 'O' (got 'X')",
        f"{where}: sources[2] (log): line_pattern 'x' has no quantity group such as (?P<temperature>...)",
        f"{where}: sources[3] (log2).poll_interval_s: unknown option (got 5)",
        f"{where}: mqtt[0] (b2).keepalive_s: Input should be greater than or equal to 5 (got 1)",
        f"{where}: serial[0] (bus2).baudrate: Input should be greater than or equal to 300 (got 100)",
    ]


def test_source_table_problems_stop_run_and_the_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text(ROOM + '[[serial]]\nid = "bus1"\ndevice = "/dev/null"\nprotocol = "modbus"\nbaudrate = "fast"\n',
                    encoding="utf-8")
    expected = f"{path}: serial[0] (bus1).baudrate: Input should be a valid integer, unable to parse string as an " \
               "integer (got 'fast')"
    assert main(["--config", str(path), "run"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [expected]
    with pytest.raises(ConfigError) as info:
        Service(load_config(path))
    assert info.value.problems == [expected]
    with pytest.raises(ConfigError) as info:  # and whoever reads typed configs without checking first
        Router(load_config(path))
    assert info.value.problems == [expected]


def test_kind_and_id_are_checked_by_the_core(tmp_path: Path) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text('[[sources]]\nid = "a"\n[[sources]]\nkind = "mqtt"\nid = "-x"\n[[serial]]\nid = "s"\n'
                    'device = "/dev/null"\nprotocol = "can"\n[[sources]]\nkind = "mqtt"\nid = "a"\n'
                    '[[mqtt]]\nid = "a"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: sources[0] (a).kind: Field required",
        f"{path}: sources[1] (-x).id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.\\-]*$' (got '-x')",
        f"{path}: serial[0] (s).protocol: Input should be 'modbus' or 'line' (got 'can')",
    ]
    path.write_text('[[sources]]\nkind = "mqtt"\nid = "a"\n[[mqtt]]\nid = "a"\n[[sources]]\nkind = "zigbee"\n'
                    'id = "z"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mqtt\[0\] \(a\)\.id: duplicate source id 'a' \(also sources\[0\] \(a\)\)"):
        load_config(path)
    path.write_text('[[sources]]\nkind = "zigbee"\nid = "z"\n', encoding="utf-8")
    assert check_references(load_config(path)) == [
        f"{path}: sources[0] (z).kind: unknown source kind 'zigbee'; known: ['line', 'modbus', 'mqtt']"]


def test_older_tables_keep_working_and_read_like_new_ones() -> None:
    older = parse_config({
        "mqtt": [{"id": "b", "port": 1884}],
        "serial": [{"id": "bus", "device": "/dev/null", "protocol": "modbus", "baudrate": 4800,
                    "reconnect_max_s": 5, "line_encoding": "ascii"},  # accepted before for every protocol
                   {"id": "log", "device": "/dev/null", "protocol": "line", "line_pattern": "T=(?P<temperature>.*)",
                    "poll_interval_s": 5, "timeout_s": 1}],
    })
    newer = parse_config({"sources": [
        {"kind": "mqtt", "id": "b", "port": 1884},
        {"kind": "modbus", "id": "bus", "device": "/dev/null", "baudrate": 4800},
        {"kind": "line", "id": "log", "device": "/dev/null", "line_pattern": "T=(?P<temperature>.*)"},
    ]})
    assert source_configs(older) == source_configs(newer)
    assert [(t.where, t.form) for t in older.sources] == [("mqtt[0] (b)", "mqtt"), ("serial[0] (bus)", "serial"),
                                                          ("serial[1] (log)", "serial")]
    (bus,) = configs_of(older, ModbusSourceConfig)
    assert (bus.baudrate, bus.poll_interval_s, bus.max_buffered_messages) == (4800, 60.0, 10_000)
    assert [c.id for c in configs_of(older, MqttSourceConfig)] == ["b"]
    assert [c.id for c in configs_of(older, LineSourceConfig)] == ["log"]


@pytest.mark.parametrize(("source", "sensor", "expected"), [
    ('[[sources]]\nkind = "mqtt"\nid = "b"\n', 'source = "b"\n',
     ["sensors[0] (s1).topic: required for a sensor on MQTT source 'b'",
      "sensors[0] (s1).format: required for a sensor on MQTT source 'b'"]),
    ('[[sources]]\nkind = "mqtt"\nid = "b"\n', 'source = "b"\ntopic = "z/s1"\nformat = "zigbee3000"\n',
     ["sensors[0] (s1).format: unknown format 'zigbee3000'; known: ['esphome', 'json', 'shelly-gen1', "
      "'shelly-gen2', 'tasmota', 'zigbee2mqtt']"]),
    ('[[sources]]\nkind = "modbus"\nid = "bus"\ndevice = "/dev/null"\n', 'source = "bus"\n',
     ["sensors[0] (s1).address: required for a sensor on Modbus bus 'bus'",
      "sensors[0] (s1).preset: required for a sensor on Modbus bus 'bus'"]),
    ('[[sources]]\nkind = "modbus"\nid = "bus"\ndevice = "/dev/null"\n', 'source = "bus"\naddress = 3\npreset = "x"\n',
     ["sensors[0] (s1).preset: unknown Modbus register map 'x'; known: di8, kincony-sht30, renke-rs-ws-n01, "
      "xy-md02"]),
    ('[[sources]]\nkind = "line"\nid = "log"\ndevice = "/dev/null"\nline_pattern = "T=(?P<temperature>.*)"\n',
     'source = "log"\n', []),
])
def test_each_kind_says_what_its_sensors_need(tmp_path: Path, source: str, sensor: str, expected: list[str]) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text(ROOM + source + f'[[sensors]]\nid = "s1"\nroom = "r"\n{sensor}', encoding="utf-8")
    assert source_problems(load_config(path)) == [f"{path}: {line}" for line in expected]


def test_two_sensors_on_one_device_are_reported_per_kind() -> None:
    config = parse_config({
        "rooms": [{"id": "r"}],
        "sources": [{"kind": "modbus", "id": "bus", "device": "/dev/null"}, {"kind": "mqtt", "id": "b"}],
        "sensors": [
            {"id": "a", "room": "r", "source": "bus", "address": 2, "preset": "di8", "channel": 0, "kind": "door"},
            {"id": "b", "room": "r", "source": "bus", "address": 2, "preset": "di8", "channel": 1, "kind": "door"},
            {"id": "c", "room": "r", "source": "bus", "address": 2, "preset": "di8", "channel": 1, "kind": "door"},
            {"id": "d", "room": "r", "source": "b", "topic": "z/x/", "format": "json"},
            {"id": "e", "room": "r", "source": "b", "topic": "z/x", "format": "json", "enabled": False},
        ],
    })
    assert source_problems(config) == [
        "<config>: sensors[2] (c): same device as sensor 'b' (source 'bus', address/channel '2/1'); "
        "one of them would never receive data"]


class ImportedConfig(SourceConfig):
    """A kind without a running source: readings come from files (a later issue imports logger CSVs)."""

    kind: Literal["import"] = "import"


def test_a_kind_without_a_running_source_needs_nothing_of_its_sensors() -> None:
    kinds = {**SOURCE_KINDS, "import": SourceKind(ImportedConfig, __name__, build=None)}
    config = parse_config({"rooms": [{"id": "r"}], "sources": [{"kind": "import", "id": "files"}],
                           "sensors": [{"id": "old-logger", "room": "r", "source": "files"}]})
    assert source_problems(config, kinds) == []
    assert [type(c) for c in source_configs(config, kinds)] == [ImportedConfig]
    router = Router(config, source_configs(config, kinds))
    context = SourceContext(config, lambda messages: pytest.fail("no source should run"), router)
    assert build_sources(config, context, kinds) == {}
    assert source_problems(config) == [  # not registered here: a clear error, not a silent skip
        "<config>: sources[0] (files).kind: unknown source kind 'import'; known: ['line', 'modbus', 'mqtt']"]


def test_paths_in_a_source_table_are_relative_to_the_config_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    path = tmp_path / "archmon.toml"
    path.write_text('[[sources]]\nkind = "mqtt"\nid = "b"\npassword_file = "pw"\n'
                    '[sources.tls]\nenabled = true\nca_file = "certs/ca.pem"\n', encoding="utf-8")
    monkeypatch.chdir("/")
    (broker,) = configs_of(load_config(path), MqttSourceConfig)
    assert broker.password() == "s3cret"
    assert broker.tls.ca_file == tmp_path / "certs" / "ca.pem"


def test_summary_lists_every_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text('[[sources]]\nkind = "mqtt"\nid = "b"\nhost = "10.0.0.5"\n'
                    '[[serial]]\nid = "bus"\ndevice = "/dev/ttyUSB0"\nprotocol = "modbus"\n', encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert "2 source(s): b (mqtt) 10.0.0.5, bus (modbus) /dev/ttyUSB0" in capsys.readouterr().out


def test_config_holds_only_generic_tables() -> None:
    assert "mqtt" not in Config.model_fields and "serial" not in Config.model_fields
    config = parse_config({"sources": [{"kind": "mqtt", "id": "b", "host": "h"}],
                           "serial": [{"id": "bus", "protocol": "modbus", "device": "/dev/null"}]})
    assert config.source("b").options == {"host": "h"}
    dumped = config.model_dump()  # as [[sources]] tables, so a dumped config parses again
    assert dumped["sources"][1] == {"kind": "modbus", "id": "bus", "device": "/dev/null"}
    assert source_configs(parse_config(dumped)) == source_configs(config)


@pytest.mark.serial
def test_the_service_starts_sources_from_the_registry_and_stores_what_they_buffered_at_stop(
    tmp_path: Path, pty_pair: PtyPair
) -> None:
    """A Modbus bus polled on the service's schedule and a line sensor read by its thread, both built
    from the registry; lines read while the store is stalled are still stored by ``stop()``."""
    climate = {"temperature": 21.5, "humidity": 48.0}
    bus_pty = PtyPair(link_dir=tmp_path / "bus")
    slave = ModbusSlaveSimulator(bus_pty.b, baudrate=9600, devices={1: SimDevice(input={
        1: lambda: encode_int16_x10(climate["temperature"]), 2: lambda: encode_uint16_x10(climate["humidity"])})})
    line = LineSensorSimulator(pty_pair.b, dict, interval_s=None)
    path = tmp_path / "archmon.toml"
    path.write_text(ROOM + (
        f'[[sources]]\nkind = "modbus"\nid = "bus"\ndevice = "{bus_pty.a}"\npoll_interval_s = 0.2\n'
        f'timeout_s = 0.5\n'
        f'[[sources]]\nkind = "line"\nid = "log"\ndevice = "{pty_pair.a}"\nline_pattern = "T=(?P<temperature>.+)"\n'
        '[[sensors]]\nid = "bus-th"\nroom = "r"\nsource = "bus"\naddress = 1\npreset = "xy-md02"\n'
        '[[sensors]]\nid = "log-t"\nroom = "r"\nsource = "log"\nkind = "temperature"\n'
    ), encoding="utf-8")
    service = Service(load_config(path))
    assert {k: type(v).__name__ for k, v in service.sources().items()} == {
        "bus": "ModbusSource", "log": "SerialLineSource"}
    slave.start()
    line.open()
    try:
        service.start()
        wait_for(lambda: service.store.count_readings("bus-th", "humidity") >= 2, "two polls on the schedule")
        log = service.sources()["log"]
        wait_for(lambda: log.connected, "the line port open")
        with StoreStall(service.db_path):
            for i in range(5):
                line.write_line(f"T={20 + i}.5")
            wait_for(lambda: log.stats()["lines"] == 5 and log.stats()["buffered"] == 5, "lines read, not stored")
            stopping = threading.Thread(target=service.stop)
            stopping.start()
            wait_for(lambda: not service.scheduler.running, "the service stopping")
        stopping.join(60)
        assert not stopping.is_alive()
    finally:
        service.stop()
        line.stop()
        slave.stop()
        bus_pty.close()
    reader = SqliteStore(service.db_path, tz=ZoneInfo("UTC"), readonly=True)
    try:
        assert sorted(v for _, v in reader.series("log-t", "temperature", 0, 2**62)) == [20.5, 21.5, 22.5, 23.5, 24.5]
        gauges = reader.gauges()
        assert gauges["source.log.buffered"][0] == 0 and gauges["service.running"][0] == 0
        assert reader.counters()["source.log.delivered"] == 5
    finally:
        reader.close()


# -- problems check-config finds before run does ----------------------------------------------------------

def test_older_serial_keys_a_kind_does_not_use_keep_their_types_and_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text(ROOM + '[[serial]]\nid = "log"\nprotocol = "line"\ndevice = "/dev/null"\n'
                    'line_pattern = "T=(?P<temperature>.+)"\npoll_interval_s = "every minute"\ntimeout_s = -1\n'
                    '[[serial]]\nid = "bus"\nprotocol = "modbus"\ndevice = "/dev/null"\nline_pattern = 5\n',
                    encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        *(f"{path}: serial[0] (log).{key}: ignored: a line source does not use it (an older [[serial]] table "
          "accepted it whatever the protocol); remove it" for key in ("poll_interval_s", "timeout_s")),
        f"{path}: serial[1] (bus).line_pattern: ignored: a modbus source does not use it (an older [[serial]] "
        "table accepted it whatever the protocol); remove it",
        f"{path}: serial[0] (log).poll_interval_s: Input should be a valid number, unable to parse string as a "
        "number (got 'every minute')",
        f"{path}: serial[0] (log).timeout_s: Input should be greater than 0 (got -1)",
        f"{path}: serial[1] (bus).line_pattern: Input should be a valid string (got 5)",
        f"{path}: 3 problem(s)",
    ]
    path.write_text(path.read_text().replace('"every minute"', "60").replace("-1", "1").replace(
        "line_pattern = 5", 'line_pattern = "((("'), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0  # the older file still works ...
    err = capsys.readouterr().err.splitlines()
    assert err == [  # ... and says what it ignores
        f"{path}: serial[0] (log).poll_interval_s: ignored: a line source does not use it (an older [[serial]] "
        "table accepted it whatever the protocol); remove it",
        f"{path}: serial[0] (log).timeout_s: ignored: a line source does not use it (an older [[serial]] table "
        "accepted it whatever the protocol); remove it",
        f"{path}: serial[1] (bus).line_pattern: ignored: a modbus source does not use it (an older [[serial]] "
        "table accepted it whatever the protocol); remove it",
    ]


def test_check_config_checks_the_broker_secret_and_tls_files_as_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.mqtt import MqttSource
    from tests.fixtures.mosquitto import _write_certs

    _write_certs(tmp_path / "certs")
    monkeypatch.delenv("T_ARCHMON_UNSET", raising=False)
    path = tmp_path / "archmon.toml"
    text = ROOM + ('[[sources]]\nkind = "mqtt"\nid = "c"\npassword_env = "T_ARCHMON_UNSET"\n'
                   '[sources.tls]\nenabled = true\nca_file = "certs/missing.pem"\n'
                   '[[sources]]\nkind = "mqtt"\nid = "d"\n'
                   '[sources.tls]\nenabled = true\ncert_file = "certs/client.pem"\nkey_file = "certs/ca.key"\n'
                   '[[sources]]\nkind = "mqtt"\nid = "e"\npassword_file = "nothing-here"\n')
    problems = [
        f"{path}: sources[0] (c).password_env: environment variable T_ARCHMON_UNSET is not set",
        f"{path}: sources[0] (c).tls.ca_file: cannot load certificates from {tmp_path}/certs/missing.pem: "
        "No such file or directory",
        f"{path}: sources[1] (d).tls.cert_file: cannot load the certificate {tmp_path}/certs/client.pem with the "
        f"key {tmp_path}/certs/ca.key: [X509: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:3926)",
        f"{path}: sources[2] (e).password_file: cannot read secret file {tmp_path}/nothing-here: "
        "No such file or directory",
    ]
    lines = _check(tmp_path, text, capsys)
    assert lines[:2] + lines[3:] == problems[:2] + problems[3:]
    assert lines[2].startswith(problems[2].split(": [X509")[0])  # OpenSSL's words vary
    assert main(["--config", str(path), "run"]) == 2  # run refuses with the same lines, before starting
    assert capsys.readouterr().err.strip().splitlines()[:2] == problems[:2]
    monkeypatch.setenv("T_ARCHMON_UNSET", "s3cret")
    (broker, *_) = configs_of(load_config(path), MqttSourceConfig)
    with pytest.raises(ConfigError) as info:  # the source itself names the table too
        MqttSource(broker, batch_handler=lambda messages: Future(), site="s", where="sources[0] (c)")
    assert info.value.problems == [problems[1].removeprefix(f"{path}: ")]
    path.write_text(ROOM + '[[sources]]\nkind = "mqtt"\nid = "c"\npassword_env = "T_ARCHMON_UNSET"\n'
                    '[sources.tls]\nenabled = true\nca_file = "certs/ca.pem"\ncert_file = "certs/client.pem"\n'
                    'key_file = "certs/client.key"\n', encoding="utf-8")
    assert check_references(load_config(path)) == []


def test_check_config_reports_references_and_source_tables_in_one_run_naming_the_file_as_typed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "archmon.toml").write_text(
        ROOM + '[[sources]]\nkind = "modbus"\nid = "bus"\ndevice = "/dev/null"\nbaudrate = 100\n'
        '[[sensors]]\nid = "s1"\nroom = "nowhere"\nsource = "bus"\naddress = 1\npreset = "xy-md02"\n'
        '[[sensors]]\nid = "s2"\nroom = "r"\nsource = "bus"\npreset = "xy-md02"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["check-config", "archmon.toml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "archmon.toml: sensors[0] (s1).room: unknown room 'nowhere'; known: ['r']",
        "archmon.toml: sources[0] (bus).baudrate: Input should be greater than or equal to 300 (got 100)",
        "archmon.toml: 2 problem(s)",
    ]
    (tmp_path / "archmon.toml").write_text(
        ROOM + '[[sources]]\nkind = "modbus"\nid = "bus"\ndevice = "/dev/null"\n'
        '[[sensors]]\nid = "s1"\nroom = "nowhere"\nsource = "bus"\naddress = 1\npreset = "xy-md02"\n'
        '[[sensors]]\nid = "s2"\nroom = "r"\nsource = "bus"\npreset = "xy-md02"\n', encoding="utf-8")
    assert main(["check-config", "archmon.toml"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "archmon.toml: sensors[0] (s1).room: unknown room 'nowhere'; known: ['r']",
        "archmon.toml: sensors[1] (s2).address: required for a sensor on Modbus bus 'bus'",
        "archmon.toml: 2 problem(s)",
    ]


def test_mqtt_sensors_without_a_topic_are_not_also_the_same_device() -> None:
    config = parse_config({"rooms": [{"id": "r"}], "sources": [{"kind": "mqtt", "id": "b"}],
                           "sensors": [{"id": "a", "room": "r", "source": "b", "format": "json"},
                                       {"id": "c", "room": "r", "source": "b", "format": "json"}]})
    assert source_problems(config) == [
        "<config>: sensors[0] (a).topic: required for a sensor on MQTT source 'b'",
        "<config>: sensors[1] (c).topic: required for a sensor on MQTT source 'b'",
    ]


def test_a_service_validates_the_source_tables_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archmon.source_tables import SourceTables, read_source_tables
    from collector import handover

    assert "RefusedMessage" in handover.__all__
    tables = read_source_tables({"sources": [{"kind": "mqtt", "id": "b"}]}, "<config>")
    assert isinstance(tables, SourceTables) and [t.id for t in tables.tables] == ["b"] and tables.problems == []
    validated: list[str] = []
    real = MqttSourceConfig.model_validate.__func__  # type: ignore[attr-defined]

    def counting(cls: type[MqttSourceConfig], data: Any, **kwargs: Any) -> MqttSourceConfig:
        validated.append(data["id"])
        return real(cls, data, **kwargs)

    monkeypatch.setattr(MqttSourceConfig, "model_validate", classmethod(counting))
    path = tmp_path / "archmon.toml"
    path.write_text(ROOM + '[storage]\nsqlite_path = "a.db"\n[[sources]]\nkind = "mqtt"\nid = "b"\n' + MQTT_SENSOR,
                    encoding="utf-8")
    config = load_config(path)
    service = Service(config)
    try:
        assert validated == ["b"]  # not again for the router, the pipeline, the checks and the build
    finally:
        service.stop()


# -- a kind is its registration ------------------------------------------------------------------------


class BacklogConfig(SourceConfig):
    """A kind added by registration alone: lines ``sensor,quantity,value`` read from a logger's backlog."""

    kind: Literal["backlog"] = "backlog"


class BacklogSource:
    """A running source of the kind: its counters and one gauge the registration names."""

    connected = True

    def stats(self) -> dict[str, int]:
        return {"files": 2, "backlog": 3}

    def stop(self, timeout: float = 10.0) -> None:
        pass

    def start(self) -> None:
        pass


def _backlog_step(config: BacklogConfig, whole: Config) -> Any:
    def step(handling: Any, message: Any) -> None:
        sensor_id, quantity, value = message.payload.decode().split(",")
        sensor = next(s for s in whole.sensors if s.id == sensor_id)
        handling.accept(message, sensor, [DecodedValue(quantity, float(value), "°C")])

    return step


def test_a_kind_brings_its_decode_step_and_its_gauges_with_its_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archmon.domain import RawMessage
    from collector.pipeline import Pipeline

    kind = SourceKind(BacklogConfig, __name__, lambda config, context: BacklogSource(), _backlog_step,
                      gauges=frozenset({"backlog"}))
    monkeypatch.setitem(SOURCE_KINDS, "backlog", kind)
    path = tmp_path / "archmon.toml"
    path.write_text(ROOM + '[storage]\nsqlite_path = "a.db"\n[[sources]]\nkind = "backlog"\nid = "old"\n'
                    '[[sensors]]\nid = "logger-t"\nroom = "r"\nsource = "old"\nkind = "temperature"\n',
                    encoding="utf-8")
    config = load_config(path)
    batches: list[Any] = []
    pipeline = Pipeline(config, lambda batch: batches.append(batch) or Future())
    pipeline.process(RawMessage("old", "backlog/old", b"logger-t,temperature,21.5", 1_767_225_600_000))
    assert [(r.sensor, r.quantity, r.value, r.ts_ms) for r in batches[0].readings] == [
        ("logger-t", "temperature", 21.5, 1_767_225_600_000)]
    service = Service(config)
    service.start()
    try:
        service.report_stats()
        assert service.writer.flush(30)
        reader = SqliteStore(service.db_path, tz=ZoneInfo("UTC"), readonly=True)
        try:
            assert reader.gauges()["source.old.backlog"][0] == 3  # a state, as it is
            assert reader.counters()["source.old.files"] == 2  # a counter, summed as deltas
            assert "source.old.files" not in reader.gauges()
        finally:
            reader.close()
    finally:
        service.stop()
