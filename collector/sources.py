"""The registry of source kinds: name → schema, module (with its sample beside it) and factory.

The service starts sources from here, the pipeline decodes their messages with the kinds' decode
steps and persists their gauges by the kinds' gauge names, and ``archmon check-config`` validates
source tables with the kinds' schemas from here, so adding a kind means: a module with its schema, a
decode step and a ``<module>.sample.toml`` beside it, and one line in :data:`SOURCE_KINDS`.
``tests/collector/test_sources.py`` fails when a source module is not registered, lacks a sample,
is registered under another name, or its sample does not load through its schema.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from archmon.config import Config, SourceTable, validation_problems
from archmon.errors import ConfigError
from collector._mqtt_client import default_client_id, default_status_topic
from collector.decode_steps import line_decoder, modbus_decoder, mqtt_decoder
from collector.modbus import ModbusSource, bus_devices
from collector.modbus_config import ModbusSourceConfig
from collector.mqtt import MqttSource
from collector.mqtt_config import MqttSourceConfig
from collector.serial_line import SerialLineSource
from collector.serial_line_config import LineSourceConfig
from collector.source import DecoderFactory, DeviceKey, PlacedSensor, Source, SourceConfig, SourceContext
from collector.spool import open_spool

if TYPE_CHECKING:
    from collector.routing import Router

__all__ = [
    "SOURCE_KINDS",
    "SourceCheck",
    "SourceKind",
    "TypedSource",
    "build_sources",
    "check_sources",
    "configs_of",
    "instance_subscriptions",
    "sample_path",
    "source_configs",
    "source_problems",
]

SourceFactory = Callable[[Any, SourceContext], Source]
"""Builds a running source from its validated config (never touching the network or a port)."""

_T = TypeVar("_T", bound=SourceConfig)


class _OlderLineKeys(BaseModel):
    """Line keys an older ``[[serial]]`` table accepted whatever its protocol, with the types it gave them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line_pattern: str | None = None
    line_units: dict[str, str] = Field(default_factory=dict)
    line_scale: dict[str, float] = Field(default_factory=dict)
    line_encoding: str = "ascii"
    device_tz: str | None = None
    reconnect_max_s: float = Field(default=30.0, gt=0)


class _OlderModbusKeys(BaseModel):
    """Modbus keys an older ``[[serial]]`` table accepted whatever its protocol, with their old types."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0, le=30)


@dataclass(frozen=True)
class SourceKind:
    """One kind of source.

    Attributes:
        schema: the kind's config schema; its ``kind`` field's default is the kind's name.
        module: the module implementing it; its sample config is ``<module>.sample.toml`` beside it.
        build: makes the running source; None for a kind without one (readings imported from files).
        decoder: makes the decode step of one source of this kind (``collector.source.DecodeStep``), which
            the pipeline runs on its messages; None for a kind whose messages never reach the pipeline.
        gauges: names in its sources' ``stats()`` that are states (persisted as they are), not counters
            (summed as deltas); ``connected`` is one for every kind.
        redelivers: the origin keeps what was not acknowledged and sends it again (an MQTT broker), so
            a stopping service may leave messages unacknowledged instead of storing them.
        legacy_ignored: the keys an older ``[[serial]]`` table of this kind may carry that it does not
            use, as a schema with the types the older table gave them: they are checked with those types
            and reported as unused (a warning), never silently accepted.
    """

    schema: type[SourceConfig]
    module: str
    build: SourceFactory | None
    decoder: DecoderFactory | None = None
    gauges: frozenset[str] = field(default=frozenset())
    redelivers: bool = False
    legacy_ignored: type[BaseModel] | None = None

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
    config, topics = instance_subscriptions(config, context.config, context.router)
    return MqttSource(config, batch_handler=context.sink, max_chunk=context.max_chunk, site=context.config.site.name,
                      topics=topics, where=context.where)


def instance_subscriptions(config: MqttSourceConfig, core: Config,
                           router: Router) -> tuple[MqttSourceConfig, list[str]]:
    """An MQTT source as this instance runs it (``archmon.partition``).

    With ``[service] partition`` K/N its client id and status topic end in ``-KofN`` (each instance has its own
    broker session), and only instance 1 subscribes to the source's extra ``subscriptions`` (devices not yet
    adopted are listed once, not N times). With ``share_group`` every filter is ``$share/<group>/<filter>`` and
    the extra subscriptions are left out: a message matching two shared filters would go to two members.

    Returns:
        The source's config and the topic filters of its sensors (with the extras it keeps), as subscribed.
    """
    part = core.service.instance
    extras = part.index == 1 and not config.share_group
    topics = router.mqtt_topics(config.id, extras=extras)
    update: dict[str, object] = {} if extras else {"subscriptions": []}
    if part.split:
        update["client_id"] = (config.client_id or default_client_id(core.site.name, config.id)) + part.suffix
        update["status_topic"] = (config.status_topic or default_status_topic(core.site.name, config.id)) + part.suffix
    if config.share_group:
        topics = [f"$share/{config.share_group}/{t}" for t in topics]
    return (config.model_copy(update=update) if update else config), topics


def _modbus(config: ModbusSourceConfig, context: SourceContext) -> ModbusSource:
    return ModbusSource(config, bus_devices(context.config, config.id), context.sink, max_chunk=context.max_chunk,
                        spool=open_spool(context.spool_dir, config.id, config.spool_max_bytes))


def _line(config: LineSourceConfig, context: SourceContext) -> SerialLineSource:
    return SerialLineSource(config, context.sink, max_chunk=context.max_chunk,
                            spool=open_spool(context.spool_dir, config.id, config.spool_max_bytes))


_SERIAL_GAUGES = frozenset({"connected", "buffered", "spool_rows", "spool_bytes", "spool_oldest_ms",
                            "spool_max_bytes", "spool_warning"})

SOURCE_KINDS: dict[str, SourceKind] = {
    "mqtt": SourceKind(MqttSourceConfig, "collector.mqtt", _mqtt, mqtt_decoder,
                       gauges=frozenset({"connected", "pending"}), redelivers=True),
    "modbus": SourceKind(ModbusSourceConfig, "collector.modbus", _modbus, modbus_decoder, gauges=_SERIAL_GAUGES,
                         legacy_ignored=_OlderLineKeys),
    "line": SourceKind(LineSourceConfig, "collector.serial_line", _line, line_decoder, gauges=_SERIAL_GAUGES,
                       legacy_ignored=_OlderModbusKeys),
}


def sample_path(kind: str) -> Path:
    """The commented sample config of a source kind (every option, defaults commented out)."""
    return SOURCE_KINDS[kind].sample


class TypedSource(NamedTuple):
    """A source table and its config validated with its kind's schema."""

    table: SourceTable
    config: SourceConfig


class SourceCheck(NamedTuple):
    """Every source table validated once with its kind's schema.

    Attributes:
        typed: the tables that validated, in file order, with their typed configs.
        problems: one line per problem (``FILE: sources[2] (bus1).baudrate: ...``).
        warnings: one line per key an older ``[[serial]]`` table carries that its kind does not use.
    """

    typed: list[TypedSource]
    problems: list[str]
    warnings: list[str]

    @property
    def configs(self) -> list[SourceConfig]:
        """The typed configs, in file order."""
        return [typed.config for typed in self.typed]

    def valid(self) -> SourceCheck:
        """This check, if there are no problems.

        Raises:
            ConfigError: one line per problem.
        """
        if self.problems:
            raise ConfigError(self.problems)
        return self


def check_sources(config: Config, kinds: Mapping[str, SourceKind] = SOURCE_KINDS) -> SourceCheck:
    """Validate every source table with its kind's schema, once; the typed configs and every problem."""
    typed: list[TypedSource] = []
    problems: list[str] = []
    warnings: list[str] = []
    label = config.label
    context = {"base_dir": config.path.parent if config.path else None}
    for table in config.sources:
        kind = kinds.get(table.kind)
        if kind is None:
            problems.append(f"{label}: {table.where}.kind: unknown source kind {table.kind!r}; known: {sorted(kinds)}")
            continue
        options = table.options
        older = kind.legacy_ignored
        if table.form == "serial" and older is not None:
            unused = {k: v for k, v in options.items() if k in older.model_fields}
            options = {k: v for k, v in options.items() if k not in unused}
            try:
                older.model_validate(unused)
            except pydantic.ValidationError as exc:
                problems += validation_problems(exc, unused, source=label, prefix=table.where)
            warnings += [f"{label}: {table.where}.{key}: ignored: a {table.kind} source does not use it (an older "
                         f"[[serial]] table accepted it whatever the protocol); remove it" for key in unused]
        data = {"kind": table.kind, "id": table.id, **options}
        try:
            typed.append(TypedSource(table, kind.schema.model_validate(data, context=context)))
        except pydantic.ValidationError as exc:
            problems += validation_problems(exc, data, source=label, prefix=table.where)
    return SourceCheck(typed, problems, warnings)


def source_configs(config: Config, kinds: Mapping[str, SourceKind] = SOURCE_KINDS) -> list[SourceConfig]:
    """Every source table validated with its kind's schema, in file order.

    Raises:
        ConfigError: one line per problem of any source table (``FILE: sources[2] (bus1).baudrate: ...``).
    """
    return check_sources(config, kinds).valid().configs


def configs_of(config: Config, schema: type[_T], kinds: Mapping[str, SourceKind] = SOURCE_KINDS) -> list[_T]:
    """The validated configs of one kind, e.g. ``configs_of(config, MqttSourceConfig)``.

    Raises:
        ConfigError: as :func:`source_configs`.
    """
    return [typed for typed in source_configs(config, kinds) if isinstance(typed, schema)]


def source_problems(config: Config, kinds: Mapping[str, SourceKind] = SOURCE_KINDS, *,
                    checked: SourceCheck | None = None) -> list[str]:
    """Every problem of the source tables and of what their sensors say, one line each with the file name.

    Covers the kinds' schemas (unknown kinds and options, bad values), what each kind needs of its
    sensors (an MQTT topic and format, a Modbus address and preset...), and two enabled sensors
    claiming one device.

    Args:
        config: the configuration.
        kinds: the registry.
        checked: the tables already validated (:func:`check_sources`), so they are not validated again.
    """
    checked = check_sources(config, kinds) if checked is None else checked
    problems = list(checked.problems)
    label = config.label
    placed: dict[str, list[PlacedSensor]] = defaultdict(list)
    for i, sensor in enumerate(config.sensors):
        placed[sensor.source].append(PlacedSensor(f"sensors[{i}] ({sensor.id})", sensor))
    for table, typed in checked.typed:
        sensors = placed.get(table.id, [])
        problems += [f"{label}: {p}" for p in typed.problems(table.where, sensors, config)]
        claimed: dict[DeviceKey, str] = {}
        for where, sensor in sensors:
            key = typed.device_key(sensor)
            if key is None or not sensor.enabled:
                continue
            other = claimed.setdefault(key, sensor.id)
            if other != sensor.id:
                problems.append(f"{label}: {where}: same device as sensor {other!r} (source {table.id!r}, "
                                f"{key.label} {key.value!r}); one of them would never receive data")
    return problems


def build_sources(config: Config, context: SourceContext, kinds: Mapping[str, SourceKind] = SOURCE_KINDS, *,
                  checked: SourceCheck | None = None) -> dict[str, Source]:
    """The running sources of every table whose kind has one, by id (built, not started).

    Args:
        config: the configuration.
        context: what every kind's ``build`` gets (each gets it with ``where`` set to its table).
        kinds: the registry.
        checked: the tables already validated (:func:`check_sources`), so they are not validated again.

    Raises:
        ConfigError: a source table is invalid (run :func:`source_problems` first for every problem).
    """
    checked = (check_sources(config, kinds) if checked is None else checked).valid()
    sources: dict[str, Source] = {}
    for table, typed in checked.typed:
        build = kinds[table.kind].build
        if build is not None:
            sources[table.id] = build(typed, replace(context, where=table.where))
    return sources
