"""Simulators of every device kind archmon talks to: MQTT sensors and an embedded broker, Modbus RTU
slaves and ASCII line sensors on pseudo-terminals, and the room climate they report."""

from devices.simulators.broker import EmbeddedBroker
from devices.simulators.climate import (
    FILM_MASTER_STORE,
    PAPER_STORE,
    READING_ROOM,
    AlarmModel,
    DoorSchedule,
    RoomClimate,
    SimClock,
)
from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.modbus_slave import (
    ModbusSlaveSimulator,
    SimDevice,
    encode_int16_x10,
    encode_kincony_x10,
    encode_uint16_x10,
)
from devices.simulators.mqtt_sensors import (
    EsphomeNode,
    RoomModel,
    ShellyGen1HT,
    ShellyGen2HT,
    SimulatorFleet,
    TasmotaSensor,
    Zigbee2MqttSensor,
)
from devices.simulators.pty_pair import PtyPair

__all__ = [
    "FILM_MASTER_STORE",
    "PAPER_STORE",
    "READING_ROOM",
    "AlarmModel",
    "DoorSchedule",
    "EmbeddedBroker",
    "EsphomeNode",
    "LineSensorSimulator",
    "ModbusSlaveSimulator",
    "PtyPair",
    "RoomClimate",
    "RoomModel",
    "ShellyGen1HT",
    "ShellyGen2HT",
    "SimClock",
    "SimDevice",
    "SimulatorFleet",
    "TasmotaSensor",
    "Zigbee2MqttSensor",
    "encode_int16_x10",
    "encode_kincony_x10",
    "encode_uint16_x10",
]
