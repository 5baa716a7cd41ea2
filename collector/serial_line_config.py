"""Config schema of the serial line source (``kind = "line"``); every option is in ``serial_line.sample.toml``.

A sensor on a line source needs nothing more than ``source = "<id>"``. Several sensors can share one
line only if ``line_pattern`` has a ``(?P<sensor>...)`` group naming the sensor on each line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator, model_validator

from archmon.config import Config, check_zone
from archmon.errors import ConfigError
from collector._serial_port import SerialPortConfig
from collector.source import PlacedSensor
from devices.line import LineFormat

__all__ = ["LineSourceConfig"]


class LineSourceConfig(SerialPortConfig):
    """An ASCII sensor or logger printing one reading per line, matched against ``line_pattern``."""

    kind: Literal["line"] = "line"
    line_pattern: str = Field(min_length=1)
    line_units: dict[str, str] = Field(default_factory=dict)
    line_scale: dict[str, float] = Field(default_factory=dict)
    line_encoding: str = "ascii"
    device_tz: str | None = None
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @field_validator("device_tz")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return value if value is None else check_zone(value)

    @model_validator(mode="after")
    def _usable_pattern(self) -> LineSourceConfig:
        try:
            self.line_format("UTC")
        except ConfigError as exc:
            raise ValueError("; ".join(exc.problems)) from None
        return self

    def line_format(self, site_tz: str) -> LineFormat:
        """The decoder of this source's lines (``device_tz``, else the site's zone, for ``ts`` groups).

        Raises:
            ConfigError: the pattern or an option is unusable.
        """
        return LineFormat(self.line_pattern, units=self.line_units, scale=self.line_scale,
                          encoding=self.line_encoding, device_tz=self.device_tz or site_tz)

    def problems(self, where: str, sensors: Sequence[PlacedSensor], config: Config) -> list[str]:
        """Several enabled sensors on one line need a ``(?P<sensor>...)`` group telling them apart; the spool."""
        out = super().problems(where, sensors, config)
        on_port = [placed.sensor.id for placed in sensors if placed.sensor.enabled]
        if len(on_port) > 1 and "(?P<sensor>" not in self.line_pattern:
            out.append(f"{where}.line_pattern: {len(on_port)} sensors {on_port} share this port, so the pattern "
                       "needs a (?P<sensor>...) group naming the sensor")
        return out
