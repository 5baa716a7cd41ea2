"""Value objects shared by the switch formats: an outgoing MQTT message, a reported state, availability."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["AutoOff", "Availability", "Publish", "SwitchReport", "parse_on_off"]

AutoOff = Literal["per_command", "device_setting", "none"]
"""How a device can switch itself off when nobody renews its ON: ``per_command`` the ON command carries the
time (Zigbee ``on_time``, Shelly ``toggle_after``), ``device_setting`` a setting applies to every ON
(Tasmota ``PulseTime``), ``none`` the device cannot (ESPHome without a script, plain Modbus coils)."""


@dataclass(frozen=True, slots=True)
class Publish:
    """One MQTT message to send.

    Attributes:
        topic: where to publish.
        payload: the bytes to send (an empty payload is a query for Tasmota).
        retain: whether the broker keeps it (commands never are: a retained command would switch the
            device again at every reconnect).
    """

    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class SwitchReport:
    """The switch state a device reported.

    Attributes:
        on: True when the output is on.
        via: which message said so (``state``, ``stat/POWER``, ``RESULT``, ``NotifyStatus``...), for the
            audit log and debugging.
    """

    on: bool
    via: str


@dataclass(frozen=True, slots=True)
class Availability:
    """A device's own online/offline message (LWT, Zigbee2MQTT availability)."""

    online: bool
    via: str


def parse_on_off(text: str) -> bool | None:
    """``ON``/``OFF`` (any case; ``1``/``0``, ``true``/``false`` too) as a bool; None for anything else."""
    word = text.strip().lower()
    if word in ("on", "1", "true"):
        return True
    if word in ("off", "0", "false"):
        return False
    return None
