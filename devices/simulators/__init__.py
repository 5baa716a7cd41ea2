"""Simulators of every device kind archmon talks to (MQTT sensors, Modbus slaves, serial lines)."""

# Serial simulators (pty pairs, Modbus RTU slave, ASCII line sensor). Other engineers add the
# imports of their own simulator modules (MQTT sensors, broker, climate, GSM modem) below this block.
from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.modbus_slave import (
    ModbusSlaveSimulator,
    SimDevice,
    encode_int16_x10,
    encode_kincony_x10,
    encode_uint16_x10,
)
from devices.simulators.pty_pair import PtyPair

__all__ = [
    "LineSensorSimulator",
    "ModbusSlaveSimulator",
    "PtyPair",
    "SimDevice",
    "encode_int16_x10",
    "encode_kincony_x10",
    "encode_uint16_x10",
]
