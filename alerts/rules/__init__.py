"""Rule kinds, one module each, and the registry the engine builds them from (name → class)."""

from __future__ import annotations

from alerts.rules.actuator import ActuatorRule
from alerts.rules.band import BandRule
from alerts.rules.base import Rule
from alerts.rules.battery import BatteryRule
from alerts.rules.calibration_due import CalibrationDueRule
from alerts.rules.channel import ChannelRule
from alerts.rules.door_hours import DoorAfterHoursRule
from alerts.rules.door_open import DoorOpenRule
from alerts.rules.forwarding import ForwardingRule
from alerts.rules.leak import LeakRule
from alerts.rules.mould import MouldRule
from alerts.rules.rate import RateOfChangeRule
from alerts.rules.smoke import SmokeRule
from alerts.rules.stability import StabilityRule
from alerts.rules.stability_rolling import RollingStabilityRule
from alerts.rules.stale import StaleRule
from alerts.rules.stuck import StuckRule
from alerts.rules.unregistered_entry import UnregisteredEntryRule

__all__ = ["RULES", "Rule"]

RULES: dict[str, type[Rule]] = {
    "band": BandRule,
    "stability": StabilityRule,
    "stability_24h": RollingStabilityRule,
    "rate": RateOfChangeRule,
    "mould": MouldRule,
    "stale": StaleRule,
    "battery": BatteryRule,
    "stuck": StuckRule,
    "smoke": SmokeRule,
    "leak": LeakRule,
    "door_open": DoorOpenRule,
    "door_hours": DoorAfterHoursRule,
    "unregistered_entry": UnregisteredEntryRule,
    "channel": ChannelRule,
    "forwarding": ForwardingRule,
    "calibration_due": CalibrationDueRule,
    "actuator": ActuatorRule,
}
