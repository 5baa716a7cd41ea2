"""Config schema of the Modbus RTU source (``kind = "modbus"``); every option is in ``modbus.sample.toml``.

A sensor on a Modbus bus needs its device ``address`` (1-247) and a register ``preset`` (or the id of
a ``[modbus_maps]`` table); a digital-input module's sensor also says which input (``channel``). One
address is one device, so all sensors at one address use the same preset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from archmon.config import Config, SensorConfig
from collector._serial_port import SerialPortConfig
from collector.source import DeviceKey, PlacedSensor
from devices.modbus import get_register_map

__all__ = ["ModbusSourceConfig"]


class ModbusSourceConfig(SerialPortConfig):
    """An RS-485 bus of Modbus RTU devices, polled one after another every ``poll_interval_s``."""

    kind: Literal["modbus"] = "modbus"
    poll_interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0, le=30)

    def problems(self, where: str, sensors: Sequence[PlacedSensor], config: Config) -> list[str]:
        """Sensors without address or preset, unknown presets and channels, two presets at one address; the spool."""
        out = super().problems(where, sensors, config)
        presets: dict[int, str] = {}
        for placed in sensors:
            key, sensor = placed
            if sensor.address is None:
                out.append(f"{key}.address: required for a sensor on Modbus bus {self.id!r}")
            if not sensor.preset:
                out.append(f"{key}.preset: required for a sensor on Modbus bus {self.id!r}")
                continue
            try:
                regmap = get_register_map(sensor.preset, config.modbus_maps)
            except KeyError as exc:
                out.append(f"{key}.preset: {exc.args[0] if exc.args else exc}")
            else:
                inputs = [r.quantity for r in regmap.registers if r.quantity.startswith("input")]
                if inputs and sensor.channel is None:
                    out.append(f"{key}.channel: preset {sensor.preset!r} is a digital-input module; "
                               f"say which input ({inputs[0]}..{inputs[-1]}) with channel = N")
                elif sensor.channel is not None and f"input{sensor.channel}" not in inputs:
                    out.append(f"{key}.channel: preset {sensor.preset!r} has no input {sensor.channel}")
            if sensor.address is not None:
                other = presets.setdefault(sensor.address, sensor.preset)
                if other != sensor.preset:
                    out.append(f"{key}.preset: address {sensor.address} on {self.id!r} already uses preset "
                               f"{other!r}; one device has one register map")
        return out

    def device_key(self, sensor: SensorConfig) -> DeviceKey | None:
        """``address/channel`` (None without an address: that is reported as missing)."""
        if sensor.address is None:
            return None
        return DeviceKey("address/channel", f"{sensor.address}/{sensor.channel}")
