"""Config schema of the MQTT source (``kind = "mqtt"``); every option is shown in ``mqtt.sample.toml``.

A sensor on an MQTT source needs a ``topic`` (its device topic; everything below it belongs to it)
and a ``format`` (the decoder of its payloads). Paths (password file, TLS files) are relative to the
config file's folder.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from archmon.config import Config, SensorConfig, check_option_keys, check_zone, read_secret
from archmon.errors import ConfigError
from collector.source import DeviceKey, PlacedSensor, SourceConfig
from devices.formats import DECODERS, make_options

__all__ = ["MqttSourceConfig", "MqttSubscription", "TlsConfig", "tls_problems"]


def _beside_config(value: Path | None, info: ValidationInfo) -> Path | None:
    """A relative path is relative to the config file's folder (``base_dir`` in the validation context)."""
    base = (info.context or {}).get("base_dir")
    if value is None or base is None or value.is_absolute():
        return value
    return Path(base) / value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    """TLS for an MQTT connection."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False

    _paths = field_validator("ca_file", "cert_file", "key_file")(_beside_config)


class MqttSubscription(_Model):
    """A topic filter and the payload format of what arrives on it."""

    filter: str
    format: str
    options: dict[str, Any] = Field(default_factory=dict)

    _options = field_validator("options")(check_option_keys)


class MqttSourceConfig(SourceConfig):
    """An MQTT broker archmon subscribes to."""

    kind: Literal["mqtt"] = "mqtt"
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
    share_group: str = Field(default="", pattern=r"^[^/+#$\s]*$")
    subscriptions: list[MqttSubscription] = Field(default_factory=list)

    _password_file = field_validator("password_file")(_beside_config)

    @field_validator("device_tz")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return value if value is None else check_zone(value)

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttSourceConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s ({self.reconnect_min_s}) is above reconnect_max_s ({self.reconnect_max_s})"
            )
        return self

    def password(self, where: str = "") -> str | None:
        """The broker password from the environment or a file (never from the config file itself).

        Args:
            where: the table's key path (``sources[0] (broker)``) for the error; default ``mqtt[<id>]``.

        Raises:
            ConfigError: the variable is not set or the file cannot be read, naming the key.
        """
        key = "password_env" if self.password_env else "password_file"
        return read_secret(self.password_env, self.password_file, f"{where or f'mqtt[{self.id}]'}.{key}")

    def problems(self, where: str, sensors: Sequence[PlacedSensor], config: Config) -> list[str]:
        """What ``archmon run`` would refuse: an unset password variable or unreadable password file, TLS
        files that cannot be loaded; unknown subscription formats and options; sensors without a topic
        or a known format."""
        out = []
        if self.share_group and not config.service.store_only:
            out.append(f"{where}.share_group: a shared subscription hands each message to one instance of the group, "
                       "so a sensor's readings would be judged in pieces: only for [service] store_only = true "
                       "(split judging instances by sensor with [service] partition) "
                       f"(got {self.share_group!r})")
        if self.share_group and self.protocol != "5":
            out.append(f"{where}.share_group: shared subscriptions are MQTT v5: set protocol = \"5\" "
                       f"(got protocol {self.protocol!r})")
        if not self.share_group and config.service.store_only and config.service.instance.split:
            out.append(f"{where}.share_group: store-only instances ([service] partition "
                       f"{config.service.partition!r}) share this broker's messages through a shared subscription; "
                       "without share_group every instance would store every message")
        try:
            self.password(where)
        except ConfigError as exc:
            out += exc.problems
        if self.tls.enabled:
            out += tls_problems(self.tls, f"{where}.tls")
        tz = self.device_tz or config.site.timezone
        for i, sub in enumerate(self.subscriptions):
            key = f"{where}.subscriptions[{i}]"
            if sub.format not in DECODERS:
                out.append(f"{key}.format: unknown format {sub.format!r}; known: {sorted(DECODERS)}")
            try:
                make_options({"device_tz": tz, **sub.options})
            except ConfigError as exc:
                out += [f"{key}.options: {p.removeprefix('decode options: ')}" for p in exc.problems]
        for placed in sensors:
            sensor = placed.sensor
            if not sensor.topic:
                out.append(f"{placed.where}.topic: required for a sensor on MQTT source {self.id!r}")
            if not sensor.format:
                out.append(f"{placed.where}.format: required for a sensor on MQTT source {self.id!r}")
            elif sensor.format not in DECODERS:
                out.append(f"{placed.where}.format: unknown format {sensor.format!r}; known: {sorted(DECODERS)}")
        return out

    def device_key(self, sensor: SensorConfig) -> DeviceKey | None:
        """The sensor's device topic (without a trailing ``/``); None without one (reported as missing)."""
        if not sensor.topic:
            return None
        return DeviceKey("topic", sensor.topic.rstrip("/"))


def tls_problems(tls: TlsConfig, where: str) -> list[str]:
    """Why the TLS files cannot be used, one line per key (``sources[0] (b).tls.ca_file: cannot load ...``),
    loaded as paho loads them; empty when they can."""
    if (tls.cert_file is None) != (tls.key_file is None):
        return [f"{where}.{'key_file' if tls.key_file is None else 'cert_file'}: cert_file and key_file go together"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.ca_file))
        except (OSError, ssl.SSLError) as exc:
            return [f"{where}.ca_file: cannot load certificates from {tls.ca_file}: {_reason(exc)}"]
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            return [f"{where}.cert_file: cannot load the certificate {tls.cert_file} with the key {tls.key_file}: "
                    f"{_reason(exc)}"]
    return []


def _reason(exc: OSError | ssl.SSLError) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) else str(exc)
