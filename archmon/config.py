"""The archmon configuration: one TOML file validated once, at start, into typed objects.

Every error names the file, the key path and the bad value. See ``docs/archmon.sample.toml`` for a
commented example of every option.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from archmon.errors import ConfigError
from archmon.quantities import QUANTITIES

__all__ = [
    "Calibration",
    "Config",
    "MqttSourceConfig",
    "MqttSubscription",
    "RegisterSpec",
    "RoomConfig",
    "SensorConfig",
    "SerialSourceConfig",
    "ServiceConfig",
    "SiteConfig",
    "StorageConfig",
    "TlsConfig",
    "load_config",
    "parse_config",
    "reference_problems",
]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
MIN_RAW_RETENTION_DAYS = 8
DECODE_OPTION_KEYS = frozenset({
    "device_tz", "temperature_unit", "fields", "scale", "units", "ts_field",  # DecodeOptions fields
    "base_topic", "block", "instance",  # format-specific extras (zigbee2mqtt/shelly-gen1, tasmota, shelly-gen2)
    "invert",  # digital-input channels: input 1 means the opposite state
})


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
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The site's zone as a ZoneInfo."""
        return ZoneInfo(self.timezone)


class StorageConfig(_Model):
    """Where and how readings are stored."""

    sqlite_path: Path = Path("archmon.db")
    raw_retention_days: int = Field(default=0, ge=0, description="0 keeps raw readings forever")
    quarantine_retention_days: int = Field(default=90, ge=0)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    flush_interval_ms: int = Field(default=200, ge=1, le=60_000)

    @field_validator("raw_retention_days")
    @classmethod
    def _retention_beyond_redelivery(cls, value: int) -> int:
        # A reading may arrive up to 7 days late (device time, broker backlog); deleting raw data sooner
        # would let a late duplicate be stored again and counted twice in the rollups.
        if 0 < value < MIN_RAW_RETENTION_DAYS:
            raise ValueError(f"must be 0 (keep forever) or at least {MIN_RAW_RETENTION_DAYS} days")
        return value


class ServiceConfig(_Model):
    """How ``archmon run`` behaves as a service.

    Attributes:
        stop_timeout_s: on SIGTERM/SIGINT, everything (final flush, acknowledgements, alert state) is
            finished or given up within this bound; a systemd unit's ``TimeoutStopSec`` should be a little
            above it (see ``docs/archmon.service``).
    """

    stop_timeout_s: float = Field(default=30.0, ge=1, le=600)


class RoomConfig(_Model):
    """A room (库房) and the standard profile it is judged against."""

    id: str = Field(pattern=_ID)
    name_zh: str = ""
    name_en: str = ""
    profile: str = "paper"
    overrides: dict[str, Any] = Field(default_factory=dict)


class TlsConfig(_Model):
    """TLS for an MQTT connection."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


def _known_option_keys(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - DECODE_OPTION_KEYS)
    if unknown:
        raise ValueError(f"unknown decoder option(s) {unknown}; known: {sorted(DECODE_OPTION_KEYS)}")
    return options


class MqttSubscription(_Model):
    """A topic filter and the payload format of what arrives on it."""

    filter: str
    format: str
    options: dict[str, Any] = Field(default_factory=dict)

    _options = field_validator("options")(_known_option_keys)


def _secret(env_name: str | None, file: Path | None, what: str) -> str | None:
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


class MqttSourceConfig(_Model):
    """An MQTT broker archmon subscribes to."""

    id: str = Field(pattern=_ID)
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = ""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: TlsConfig = TlsConfig()
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    qos: Literal[0, 1, 2] = 1
    session_expiry_s: int = Field(default=7 * 86400, ge=0)
    status_topic: str = ""
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    device_tz: str | None = None
    subscriptions: list[MqttSubscription] = Field(default_factory=list)

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttSourceConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s ({self.reconnect_min_s}) is above reconnect_max_s ({self.reconnect_max_s})"
            )
        return self

    def password(self) -> str | None:
        """The broker password from the environment or a file (never from the config file itself)."""
        return _secret(self.password_env, self.password_file, f"mqtt[{self.id}].password")


class SerialSourceConfig(_Model):
    """A serial port: an RS-485 Modbus RTU bus or an ASCII line sensor."""

    id: str = Field(pattern=_ID)
    device: str
    protocol: Literal["modbus", "line"]
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    poll_interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    line_pattern: str | None = None
    line_units: dict[str, str] = Field(default_factory=dict)
    line_scale: dict[str, float] = Field(default_factory=dict)
    line_encoding: str = "ascii"
    device_tz: str | None = None

    @model_validator(mode="after")
    def _line_needs_pattern(self) -> SerialSourceConfig:
        if self.protocol == "line":
            if not self.line_pattern:
                raise ValueError("protocol 'line' needs line_pattern (a regex with named groups)")
            try:
                compiled = re.compile(self.line_pattern)
            except re.error as exc:
                raise ValueError(f"line_pattern {self.line_pattern!r} is not a valid regex: {exc}") from exc
            if not compiled.groupindex:
                raise ValueError(f"line_pattern {self.line_pattern!r} has no named groups (?P<quantity>...)")
        return self


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

    _options = field_validator("options")(_known_option_keys)

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
    mqtt: list[MqttSourceConfig] = Field(default_factory=list)
    serial: list[SerialSourceConfig] = Field(default_factory=list)
    sensors: list[SensorConfig] = Field(default_factory=list)
    modbus_maps: dict[str, list[RegisterSpec]] = Field(default_factory=dict)
    alerts: dict[str, Any] = Field(default_factory=dict)
    path: Path | None = Field(default=None, exclude=True)

    def room(self, room_id: str) -> RoomConfig:
        """The room with this id (KeyError if none)."""
        for room in self.rooms:
            if room.id == room_id:
                return room
        raise KeyError(room_id)

    def resolve(self, path: Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        if path.is_absolute() or self.path is None:
            return path
        return self.path.parent / path


def reference_problems(config: Config) -> list[str]:
    """Problems between sections: unknown rooms and sources, missing topics/addresses, duplicates."""
    problems: list[str] = []
    _unique(problems, "rooms", [r.id for r in config.rooms])
    _unique(problems, "sensors", [s.id for s in config.sensors])
    sources = {s.id: s for s in [*config.mqtt, *config.serial]}
    _unique(problems, "mqtt/serial", [s.id for s in [*config.mqtt, *config.serial]])
    rooms = {r.id for r in config.rooms}
    claimed: dict[tuple[str, str], str] = {}
    for i, sensor in enumerate(config.sensors):
        where = f"sensors[{i}] ({sensor.id})"
        if sensor.room not in rooms:
            problems.append(f"{where}.room: unknown room {sensor.room!r}; known: {sorted(rooms)}")
        source = sources.get(sensor.source)
        if source is None:
            problems.append(f"{where}.source: unknown source {sensor.source!r}; known: {sorted(sources)}")
            continue
        if isinstance(source, MqttSourceConfig):
            if not sensor.topic:
                problems.append(f"{where}.topic: required for a sensor on MQTT source {source.id!r}")
            if not sensor.format:
                problems.append(f"{where}.format: required for a sensor on MQTT source {source.id!r}")
            key = (source.id, (sensor.topic or "").rstrip("/"))
        elif source.protocol == "modbus":
            if sensor.address is None:
                problems.append(f"{where}.address: required for a sensor on Modbus bus {source.id!r}")
            if not sensor.preset:
                problems.append(f"{where}.preset: required for a sensor on Modbus bus {source.id!r}")
            key = (source.id, f"{sensor.address}/{sensor.channel}")
        else:
            key = (source.id, f"line/{sensor.id}")
        if sensor.enabled and key in claimed:
            problems.append(f"{where}: same device as sensor {claimed[key]!r} (source {key[0]!r}, "
                            f"{'topic' if isinstance(source, MqttSourceConfig) else 'address/channel'} "
                            f"{key[1]!r}); one of them would never receive data")
        claimed.setdefault(key, sensor.id)
    return problems


def _unique(problems: list[str], what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            problems.append(f"{what}: duplicate id {ident!r}")
        seen.add(ident)


def _key_path(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and "id" in node:
                out += f" ({node['id']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def parse_config(data: dict[str, Any], source: str = "<config>", path: Path | None = None) -> Config:
    """Validate a parsed TOML document into a Config.

    Raises:
        ConfigError: one line per problem: ``FILE: key.path: message (got VALUE)``.
    """
    try:
        config = Config.model_validate({**data, "path": path})
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _key_path(err["loc"], data) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown option"
            got = "" if err["type"] in ("missing", "value_error") else f" (got {err['input']!r})"
            problems.append(f"{source}: {key}: {message}{got}")
        raise ConfigError(problems) from None
    problems = reference_problems(config)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return config if path is None else _absolute_paths(config, path.parent)


def _absolute_paths(config: Config, base: Path) -> Config:
    """Paths in the file are relative to the file's folder, not to the working directory."""

    def fix(value: Path | None) -> Path | None:
        return value if value is None or value.is_absolute() else base / value

    mqtt = [
        m.model_copy(update={
            "password_file": fix(m.password_file),
            "tls": m.tls.model_copy(update={"ca_file": fix(m.tls.ca_file), "cert_file": fix(m.tls.cert_file),
                                            "key_file": fix(m.tls.key_file)}),
        })
        for m in config.mqtt
    ]
    storage = config.storage.model_copy(update={"sqlite_path": fix(config.storage.sqlite_path)})
    return config.model_copy(update={"mqtt": mqtt, "storage": storage})


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate an ``archmon.toml`` file.

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
    return parse_config(data, source=str(file), path=file.resolve())
