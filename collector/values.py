"""What a decoded value becomes before it is stored: validated, a digital input as a switch.

Pure functions of a sensor's configuration and one value, used by the pipeline for configured sensors
and (validation only) for unassigned devices. The correction (configured or recorded calibration) is
:mod:`collector.calibration`'s: it depends on the reading's time.
"""

from __future__ import annotations

from collections.abc import Sequence

from archmon.config import SensorConfig
from archmon.quantities import check_value
from collector.records import Batch
from devices.decoded import DecodedValue

__all__ = ["HUMIDITY_OVERSHOOT", "SWITCH_KINDS", "channel_values", "checked_value"]

HUMIDITY_OVERSHOOT = 105.0
"""Condensing hygrometers report a little over 100 %RH: up to this is saturation (stored as 100, ``clamped``)."""
SWITCH_KINDS = {"door", "smoke", "leak"}


def checked_value(quantity: str, value: float, batch: Batch) -> float:
    """``value`` validated for ``quantity`` (humidity up to 105 % saturates at 100, counted ``clamped``).

    Raises:
        ValueError: naming the quantity and the bad value (not a number, not finite, out of range).
    """
    if quantity == "humidity" and isinstance(value, int | float) and 100.0 < value <= HUMIDITY_OVERSHOOT:
        batch.count("clamped")
        return 100.0
    return check_value(quantity, value)


def _switch_value(kind: str, active: float, invert: bool) -> float:
    """A digital input as door/smoke/leak. A door contact is closed (input 1) while the door is closed, so
    door = 1 - input; a detector's relay closes (input 1) on alarm. ``invert`` is for the opposite wiring."""
    value = 1.0 - active if kind == "door" else active
    return 1.0 - value if invert else value


def channel_values(sensor: SensorConfig, values: Sequence[DecodedValue]) -> list[DecodedValue]:
    """For a digital-input module, the sensor's channel as its own quantity (door/smoke/leak)."""
    if sensor.channel is None:
        return list(values)
    wanted = f"input{sensor.channel}"
    quantity = sensor.kind if sensor.kind in SWITCH_KINDS else wanted
    invert = bool(sensor.options.get("invert", False))
    out = []
    for item in values:
        if item.quantity == wanted:
            value = _switch_value(quantity, item.value, invert) if item.value in (0.0, 1.0) else item.value
            out.append(DecodedValue(quantity, value, "", item.ts_ms))
    return out
