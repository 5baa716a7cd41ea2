"""The registry of source kinds: name → class and the sample config documenting its options."""

from __future__ import annotations

from pathlib import Path

from collector.modbus import ModbusSource
from collector.mqtt import MqttSource
from collector.serial_line import SerialLineSource

__all__ = ["SOURCES", "sample_path"]

SOURCES: dict[str, type] = {
    "mqtt": MqttSource,
    "modbus": ModbusSource,
    "line": SerialLineSource,
}

_SAMPLES = {"mqtt": "mqtt.sample.toml", "modbus": "modbus.sample.toml", "line": "serial_line.sample.toml"}


def sample_path(kind: str) -> Path:
    """The commented sample config of a source kind (every option, defaults commented out)."""
    return Path(__file__).with_name(_SAMPLES[kind])
