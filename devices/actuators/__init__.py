"""Actuators as data: how to switch a plug, relay or coil and how to read back the state it reports.

``SWITCH_KINDS`` is the registry of switch kinds an actuator's ``kind`` names: the four MQTT ecosystems
(:mod:`devices.actuators.mqtt_switches`) and Modbus coils (:mod:`devices.actuators.modbus_coil`). Sending
the messages and confirming them is ``alerts.control``'s job; nothing here touches the network.
"""

from __future__ import annotations

from devices.actuators._types import AutoOff, Availability, Publish, SwitchReport, parse_on_off
from devices.actuators.modbus_coil import COIL_OFF, COIL_ON, CoilWrite, ModbusCoil
from devices.actuators.mqtt_switches import (
    EsphomeSwitch,
    MqttSwitch,
    ShellySwitch,
    TasmotaSwitch,
    Zigbee2MqttSwitch,
    pulse_time,
)

__all__ = [
    "COIL_OFF",
    "COIL_ON",
    "MQTT_SWITCHES",
    "SWITCH_KINDS",
    "AutoOff",
    "Availability",
    "CoilWrite",
    "EsphomeSwitch",
    "ModbusCoil",
    "MqttSwitch",
    "Publish",
    "ShellySwitch",
    "SwitchReport",
    "TasmotaSwitch",
    "Zigbee2MqttSwitch",
    "parse_on_off",
    "pulse_time",
]

MQTT_SWITCHES: dict[str, type[MqttSwitch]] = {
    "zigbee2mqtt": Zigbee2MqttSwitch,
    "tasmota": TasmotaSwitch,
    "shelly": ShellySwitch,
    "esphome": EsphomeSwitch,
}

SWITCH_KINDS: tuple[str, ...] = (*MQTT_SWITCHES, "modbus")
"""Every ``kind`` an actuator may have."""
