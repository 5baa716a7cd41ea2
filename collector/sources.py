"""The registry of source kinds: name → schema, module (with its sample beside it) and factory.

The service starts sources from here and ``archmon check-config`` validates source tables with the
kinds' schemas from here, so adding a kind means: a module with its schema and a
``<module>.sample.toml`` beside it, and one line in :data:`SOURCE_KINDS`.
``tests/collector/test_sources.py`` fails when a source module is not registered, lacks a sample,
is registered under another name, or its sample does not load through its schema.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pydantic

from archmon.config import Config, SourceTable, validation_problems
from archmon.errors import ConfigError
from collector.modbus import ModbusSource, bus_devices
from collector.modbus_config import ModbusSourceConfig
from collector.mqtt import MqttSource
from collector.mqtt_config import MqttSourceConfig
from collector.serial_line import SerialLineSource
from collector.serial_line_config import LineSourceConfig
from collector.source import DeviceKey, PlacedSensor, Source, SourceConfig, SourceContext

__all__ = [
    "SOURCE_KINDS",
    "SourceKind",
    "build_sources",
    "configs_of",
    "sample_path",
    "source_configs",
    "source_problems",
]

SourceFactory = Callable[[Any, SourceContext], Source]
"""Builds a running source from its validated config (never touching the network or a port)."""

_T = TypeVar("_T", bound=SourceConfig)

# Keys an older [[serial]] table accepted whatever its protocol; ignored where the kind has no use for them.
_SERIAL_LINE_KEYS = frozenset({"line_pattern", "line_units", "line_scale", "line_encoding", "device_tz",
                               "reconnect_max_s"})
_SERIAL_MODBUS_KEYS = frozenset({"poll_interval_s", "timeout_s"})


@dataclass(frozen=True)
class SourceKind:
    """One kind of source.

    Attributes:
        schema: the kind's config schema; its ``kind`` field's default is the kind's name.
        module: the module implementing it; its sample config is ``<module>.sample.toml`` beside it.
        build: makes the running source; None for a kind without one (readings imported from files).
        redelivers: the origin keeps what was not acknowledged and sends it again (an MQTT broker), so
            a stopping service may leave messages unacknowledged instead of storing them.
        legacy_ignored: keys an older ``[[serial]]`` table of this kind may carry that it does not use.
    """

    schema: type[SourceConfig]
    module: str
    build: SourceFactory | None
    redelivers: bool = False
    legacy_ignored: frozenset[str] = field(default=frozenset())

    @property
    def name(self) -> str:
        """The name the kind's schema gives itself (``kind = "..."`` in a table)."""
        return str(self.schema.model_fields["kind"].default)

    @property
    def sample(self) -> Path:
        """The commented sample config beside the module (every option, defaults commented out)."""
        file = import_module(self.module).__file__
        assert file is not None
        return Path(file).with_suffix(".sample.toml")


def _mqtt(config: MqttSourceConfig, context: SourceContext) -> MqttSource:
    return MqttSource(config, batch_handler=context.sink, max_chunk=context.max_chunk, site=context.config.site.name,
                      topics=context.router.mqtt_topics(config.id))


def _modbus(config: ModbusSourceConfig, context: SourceContext) -> ModbusSource:
    return ModbusSource(config, bus_devices(context.config, config.id), context.sink, max_chunk=context.max_chunk)


def _line(config: LineSourceConfig, context: SourceContext) -> SerialLineSource:
    return SerialLineSource(config, context.sink, max_chunk=context.max_chunk)


SOURCE_KINDS: dict[str, SourceKind] = {
    "mqtt": SourceKind(MqttSourceConfig, "collector.mqtt", _mqtt, redelivers=True),
    "modbus": SourceKind(ModbusSourceConfig, "collector.modbus", _modbus, legacy_ignored=_SERIAL_LINE_KEYS),
    "line": SourceKind(LineSourceConfig, "collector.serial_line", _line, legacy_ignored=_SERIAL_MODBUS_KEYS),
}


def sample_path(kind: str) -> Path:
    """The commented sample config of a source kind (every option, defaults commented out)."""
    return SOURCE_KINDS[kind].sample


class _Typed(NamedTuple):
    """A source table and its config validated with its kind's schema."""

    table: SourceTable
    config: SourceConfig


class _Checked:
    """Source tables validated with their kinds' schemas: the typed configs and every problem."""

    def __init__(self, config: Config, kinds: Mapping[str, SourceKind]) -> None:
        self.typed: list[_Typed] = []
        self.problems: list[str] = []
        source = str(config.path or "<config>")
        context = {"base_dir": config.path.parent if config.path else None}
        for table in config.sources:
            kind = kinds.get(table.kind)
            if kind is None:
                self.problems.append(f"{source}: {table.where}.kind: unknown source kind {table.kind!r}; "
                                     f"known: {sorted(kinds)}")
                continue
            options = table.options
            if table.form == "serial":
                options = {k: v for k, v in options.items() if k not in kind.legacy_ignored}
            data = {"kind": table.kind, "id": table.id, **options}
            try:
                self.typed.append(_Typed(table, kind.schema.model_validate(data, context=context)))
            except pydantic.ValidationError as exc:
                self.problems += validation_problems(exc, data, source=source, prefix=table.where)


def source_configs(config: Config, kinds: Mapping[str, SourceKind] = SOURCE_KINDS) -> list[SourceConfig]:
    """Every source table validated with its kind's schema, in file order.

    Raises:
        ConfigError: one line per problem of any source table (``FILE: sources[2] (bus1).baudrate: ...``).
    """
    checked = _Checked(config, kinds)
    if checked.problems:
        raise ConfigError(checked.problems)
    return [typed.config for typed in checked.typed]


def configs_of(config: Config, schema: type[_T], kinds: Mapping[str, SourceKind] = SOURCE_KINDS) -> list[_T]:
    """The validated configs of one kind, e.g. ``configs_of(config, MqttSourceConfig)``.

    Raises:
        ConfigError: as :func:`source_configs`.
    """
    return [typed for typed in source_configs(config, kinds) if isinstance(typed, schema)]


def source_problems(config: Config, kinds: Mapping[str, SourceKind] = SOURCE_KINDS) -> list[str]:
    """Every problem of the source tables and of what their sensors say, one line each with the file name.

    Covers the kinds' schemas (unknown kinds and options, bad values), what each kind needs of its
    sensors (an MQTT topic and format, a Modbus address and preset...), and two enabled sensors
    claiming one device.
    """
    checked = _Checked(config, kinds)
    problems = list(checked.problems)
    source = str(config.path or "<config>")
    placed: dict[str, list[PlacedSensor]] = defaultdict(list)
    for i, sensor in enumerate(config.sensors):
        placed[sensor.source].append(PlacedSensor(f"sensors[{i}] ({sensor.id})", sensor))
    for table, typed in checked.typed:
        sensors = placed.get(table.id, [])
        problems += [f"{source}: {p}" for p in typed.problems(table.where, sensors, config)]
        claimed: dict[DeviceKey, str] = {}
        for where, sensor in sensors:
            key = typed.device_key(sensor)
            if key is None or not sensor.enabled:
                continue
            other = claimed.setdefault(key, sensor.id)
            if other != sensor.id:
                problems.append(f"{source}: {where}: same device as sensor {other!r} (source {table.id!r}, "
                                f"{key.label} {key.value!r}); one of them would never receive data")
    return problems


def build_sources(config: Config, context: SourceContext,
                  kinds: Mapping[str, SourceKind] = SOURCE_KINDS) -> dict[str, Source]:
    """The running sources of every table whose kind has one, by id (built, not started).

    Raises:
        ConfigError: a source table is invalid (run :func:`source_problems` first for every problem).
    """
    checked = _Checked(config, kinds)
    if checked.problems:
        raise ConfigError(checked.problems)
    sources: dict[str, Source] = {}
    for table, typed in checked.typed:
        build = kinds[table.kind].build
        if build is not None:
            sources[table.id] = build(typed, context)
    return sources
