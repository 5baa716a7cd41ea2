"""Collecting and storing readings: MQTT, Modbus RTU and serial-line sources, the ingest pipeline,
the SQLite store and its buffered writer, and export. See docs/collector.md."""

from collector.export import export
from collector.modbus import ModbusDevice, ModbusSource
from collector.mqtt import MqttSource
from collector.pipeline import Pipeline
from collector.records import Batch, QuarantineRecord, UnassignedRecord, WriteResult
from collector.serial_line import SerialLineSource
from collector.store import SqliteStore
from collector.writer import StoreWriter

__all__ = [
    "Batch",
    "ModbusDevice",
    "ModbusSource",
    "MqttSource",
    "Pipeline",
    "QuarantineRecord",
    "SerialLineSource",
    "SqliteStore",
    "StoreWriter",
    "UnassignedRecord",
    "WriteResult",
    "export",
]
