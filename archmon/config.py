"""The archmon configuration: one TOML file validated once, at start, into typed objects.

Every error names the file, the key path and the bad value. See ``docs/archmon.sample.toml`` for a
commented example of every option.

Sources are plugins: the core only knows that ``[[sources]]`` tables have a ``kind`` and an ``id``
(:class:`SourceTable`, ``archmon/source_tables.py``); each kind's own schema, in the collector's source registry
(``collector/sources.py``), validates the rest. The older ``[[mqtt]]`` and ``[[serial]]`` tables
(``protocol = "modbus"`` or ``"line"``) are read into the same form on load and keep working.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from archmon.city_config import CentralConfig, CityLinkConfig
from archmon.config_problems import validation_problems
from archmon.errors import ConfigError
from archmon.forward_config import ForwardConfig, InfluxForwardConfig
from archmon.http_config import HttpConfig
from archmon.partition import split_config
from archmon.quantities import QUANTITIES
from archmon.service_config import ServiceConfig, StorageConfig
from archmon.source_tables import ID_PATTERN, SOURCE_SECTIONS, SourceTable, read_source_tables

__all__ = [
    "ID_PATTERN",
    "IMPORT_SOURCE",
    "Calibration",
    "Config",
    "ForwardConfig",
    "HttpConfig",
    "InfluxForwardConfig",
    "RegisterSpec",
    "RoomConfig",
    "SensorConfig",
    "ServiceConfig",
    "SiteConfig",
    "SourceTable",
    "StorageConfig",
    "check_option_keys",
    "check_zone",
    "load_config",
    "parse_config",
    "read_secret",
    "reference_problems",
    "validation_problems",
]

_ID = ID_PATTERN
IMPORT_SOURCE = "import"
"""``source = "import"`` in ``[[sensors]]``: a logger whose readings come only from files (``archmon import``).
It needs no ``[[sources]]`` table, topic or address, is never polled or subscribed, and is not expected to
report live (no stale alert); no source table may take this id."""
DECODE_OPTION_KEYS = frozenset({
    "device_tz", "temperature_unit", "fields", "scale", "units", "ts_field",  # DecodeOptions fields
    "base_topic", "block", "instance",  # format-specific extras (zigbee2mqtt/shelly-gen1, tasmota, shelly-gen2)
    "invert",  # digital-input channels: input 1 means the opposite state
})


def check_zone(value: str) -> str:
    """Pydantic validator of an IANA time zone name.

    Raises:
        ValueError: the zone is unknown.
    """
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Model):
    """The site: its name and the time zone used for days, working hours and display."""

    name: str = "archmon"
    timezone: str = "Asia/Shanghai"
    language: Literal["zh", "en"] = "zh"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @property
    def tz(self) -> ZoneInfo:
        """The site's zone as a ZoneInfo."""
        return ZoneInfo(self.timezone)


class RoomConfig(_Model):
    """A room (库房) and the standard profile it is judged against."""

    id: str = Field(pattern=_ID)
    name_zh: str = ""
    name_en: str = ""
    profile: str = "paper"
    overrides: dict[str, Any] = Field(default_factory=dict)


def check_option_keys(options: dict[str, Any]) -> dict[str, Any]:
    """Pydantic validator of a decoder ``options`` table: every key must be a known decoder option.

    Raises:
        ValueError: naming the unknown keys and the known ones.
    """
    unknown = sorted(set(options) - DECODE_OPTION_KEYS)
    if unknown:
        raise ValueError(f"unknown decoder option(s) {unknown}; known: {sorted(DECODE_OPTION_KEYS)}")
    return options


def read_secret(env_name: str | None, file: Path | None, what: str) -> str | None:
    """A secret from an environment variable or the first line of a file (never from the config itself).

    Args:
        env_name: the variable to read, if set.
        file: the file to read otherwise, if set.
        what: what the secret is for, e.g. ``sources[0] (broker).password``, named in errors.

    Returns:
        The secret, or None when neither is given.

    Raises:
        ConfigError: the variable is not set or the file cannot be read.
    """
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(f"{what}: environment variable {env_name} is not set")
        return value
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from exc
    return None



class RegisterSpec(_Model):
    """One value in a custom Modbus register map."""

    quantity: str
    function: Literal[1, 2, 3, 4]
    address: int = Field(ge=0, le=65535)
    scale: float = 1.0
    encoding: Literal["int16", "uint16", "kincony", "bit"] = "int16"


class Calibration(_Model):
    """Correction applied to a raw value: ``value * scale + offset``."""

    offset: float = 0.0
    scale: float = 1.0
    calibrated_on: str | None = None
    certificate: str | None = None


SensorKind = Literal["temperature_humidity", "temperature", "humidity", "smoke", "door", "leak", "light", "multi"]


class SensorConfig(_Model):
    """A configured sensor: where it reports and how its values are corrected."""

    id: str = Field(pattern=_ID)
    room: str
    kind: SensorKind = "temperature_humidity"
    source: str
    name: str = ""
    topic: str | None = None
    format: str | None = None
    address: int | None = Field(default=None, ge=1, le=247)
    preset: str | None = None
    channel: int | None = Field(default=None, ge=0, le=63)
    timeout_s: float | None = Field(default=None, gt=0, le=30)
    expected_interval_s: float = Field(default=300.0, gt=0)
    calibration: dict[str, Calibration] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    _options = field_validator("options")(check_option_keys)

    @field_validator("room", "source", "format", "preset")
    @classmethod
    def _shared(cls, value: str | None) -> str | None:
        # one string object per distinct room, source and format, not one per sensor (10,000 sensors share
        # a few: about 1.7 MB of the service's resident memory)
        return sys.intern(value) if value is not None else None

    @property
    def live(self) -> bool:
        """Whether readings are expected live (False for ``source = "import"``: only from imported files, so
        silence is never staleness)."""
        return self.source != IMPORT_SOURCE

    @model_validator(mode="after")
    def _calibrated_quantities(self) -> SensorConfig:
        fields = self.options.get("fields") or {}
        known = set(QUANTITIES) | (set(fields) if isinstance(fields, dict) else set())
        unknown = sorted(set(self.calibration) - known)
        if unknown:
            raise ValueError(f"calibration for unknown quantity {unknown}; known: {sorted(known)}")
        return self


class Config(_Model):
    """The whole validated configuration."""

    site: SiteConfig = SiteConfig()
    storage: StorageConfig = StorageConfig()
    service: ServiceConfig = ServiceConfig()
    rooms: list[RoomConfig] = Field(default_factory=list)
    sources: list[SourceTable] = Field(default_factory=list)
    sensors: list[SensorConfig] = Field(default_factory=list)
    modbus_maps: dict[str, list[RegisterSpec]] = Field(default_factory=dict)
    alerts: dict[str, Any] = Field(default_factory=dict)
    http: HttpConfig = HttpConfig()
    notify: dict[str, Any] = Field(default_factory=dict)
    forward: ForwardConfig = ForwardConfig()
    reports: dict[str, Any] = Field(default_factory=dict)  # validated by dashboards.reports.settings
    actuators: list[dict[str, Any]] = Field(default_factory=list)  # checked by alerts.control (climate control)
    city: CityLinkConfig | None = None
    central: CentralConfig | None = None
    path: Path | None = Field(default=None, exclude=True)
    _label: str = PrivateAttr(default="<config>")
    _foreign: tuple[SensorConfig, ...] = PrivateAttr(default=())
    _whole: Config | None = PrivateAttr(default=None)

    @property
    def foreign_sensors(self) -> tuple[SensorConfig, ...]:
        """Sensors of the file that other instances own (``[service] partition``): their messages are not
        this instance's, nor unknown devices."""
        return self._foreign

    @property
    def whole(self) -> Config:
        """The file before ``[service] partition`` kept this instance's share of it (itself for 1/1)."""
        return self._whole or self

    @property
    def label(self) -> str:
        """The file as it was named to :func:`load_config` (``<config>`` for a parsed dict): what every
        problem line starts with, core and source kinds alike."""
        return self._label

    def room(self, room_id: str) -> RoomConfig:
        """The room with this id (KeyError if none)."""
        for room in self.rooms:
            if room.id == room_id:
                return room
        raise KeyError(room_id)

    def source(self, source_id: str) -> SourceTable:
        """The source table with this id (KeyError if none)."""
        for table in self.sources:
            if table.id == source_id:
                return table
        raise KeyError(source_id)

    def resolve(self, path: Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        if path.is_absolute() or self.path is None:
            return path
        return self.path.parent / path


def reference_problems(config: Config) -> list[str]:
    """Problems between sections: unknown rooms and sources, duplicate ids.

    What a sensor must say for its source (an MQTT topic, a Modbus address...) is the source kind's
    business: ``collector.sources.source_problems`` checks it with the kind's schema.
    """
    problems: list[str] = []
    _unique(problems, "rooms", [r.id for r in config.rooms])
    _unique(problems, "sensors", [s.id for s in config.sensors])
    first: dict[str, SourceTable] = {}
    for table in config.sources:
        other = first.setdefault(table.id, table)
        if other is not table:
            problems.append(f"{table.where}.id: duplicate source id {table.id!r} (also {other.where})")
        if table.id == IMPORT_SOURCE:
            problems.append(f"{table.where}.id: {IMPORT_SOURCE!r} is reserved for sensors whose readings come only "
                            "from imported files; give the source another id")
    rooms = {r.id for r in config.rooms}
    for i, sensor in enumerate(config.sensors):
        where = f"sensors[{i}] ({sensor.id})"
        if sensor.room not in rooms:
            problems.append(f"{where}.room: unknown room {sensor.room!r}; known: {sorted(rooms)}")
        if sensor.source not in first and sensor.source != IMPORT_SOURCE:
            problems.append(f"{where}.source: unknown source {sensor.source!r}; known: {sorted(first)} (or "
                            f"{IMPORT_SOURCE!r}: readings only from imported files)")
    return problems


def _unique(problems: list[str], what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            problems.append(f"{what}: duplicate id {ident!r}")
        seen.add(ident)


def parse_config(data: dict[str, Any], source: str = "<config>", path: Path | None = None, *,
                 references: bool = True) -> Config:
    """Validate a parsed TOML document into a Config.

    Source tables are checked for their ``kind`` and ``id`` only; the collector's source registry
    validates the rest with each kind's schema (``archmon check-config`` and the service do both).

    Args:
        data: the parsed document.
        source: the file name problems start with (also ``Config.label``).
        path: the file's absolute path (relative paths in it are relative to its folder).
        references: also check references between sections (:func:`reference_problems`); False lets
            ``archmon check-config`` report those together with the source kinds' problems.

    Raises:
        ConfigError: one line per problem: ``FILE: key.path: message (got VALUE)``.
    """
    tables, problems = read_source_tables(data, source)
    problems = list(problems)
    core = {key: value for key, value in data.items() if key not in SOURCE_SECTIONS}
    try:
        config = Config.model_validate({**core, "sources": tables, "path": path})
    except pydantic.ValidationError as exc:
        problems += validation_problems(exc, data, source=source)
    if problems:
        raise ConfigError(problems)
    problems = reference_problems(config) if references else []
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    config._label = source
    return split_config(config if path is None else _absolute_paths(config, path.parent))


def _absolute_paths(config: Config, base: Path) -> Config:
    """Paths in the file are relative to the file's folder, not to the working directory.

    Paths inside source tables are the kinds' business: the registry resolves them with ``config.path``.
    """

    def fix(value: Path | None) -> Path | None:
        return value if value is None or value.is_absolute() else base / value

    storage = config.storage.model_copy(update={"sqlite_path": fix(config.storage.sqlite_path)})
    return config.model_copy(update={"storage": storage})


def load_config(path: str | os.PathLike[str], *, references: bool = True) -> Config:
    """Read and validate an ``archmon.toml`` file.

    Args:
        path: the file; problems start with it as given here.
        references: as for :func:`parse_config`.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or breaks the schema.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read configuration: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(file), path=file.resolve(), references=references)
