"""Actuator not responding / no effect: a switched device that does not do what it is told raises an alert.

Climate control (``alerts.control``) keeps each device's health and attaches itself to this rule
(:meth:`ActuatorRule.attach`), the way the notifier attaches to the channel rule: every few seconds the
rule reads the health and reports, per device and problem, violated while it holds and clearly fine once
it is gone (the polled-health shape of :mod:`alerts.rules._polled`). Problems: ``not_responding`` (a command
or state query went unconfirmed through every repeat, or the device said it is offline) and ``no_effect``
(it runs and the room does not respond). Only changes are reported; a device removed from the configuration
while its alert was open is reported fine. The alert belongs to the device's room (its routes and
maintenance windows apply), with the device's id as the sensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from alerts.rules._polled import Look, PolledHealthRule

__all__ = ["ActuatorHealthSource", "ActuatorRule"]


class _Health(Protocol):
    actuator: str
    room: str
    problem: str
    state: str
    detail: str

    @property
    def down(self) -> bool: ...


class ActuatorHealthSource(Protocol):
    """What the rule reads (``alerts.control.ClimateController``)."""

    def actuator_health(self) -> Sequence[_Health]: ...


class ActuatorRule(PolledHealthRule[ActuatorHealthSource]):
    """One alert per device and problem while it holds."""

    name = "actuator"
    default_severity = "major"

    def looks(self, source: ActuatorHealthSource) -> Iterable[Look]:
        for health in source.actuator_health():
            if health.state != "unknown":
                yield Look(f"{health.actuator}/{health.problem}", health.room, health.actuator, health.down,
                           health.problem)

    def gone_detail(self, key: str) -> str:
        return key.split("/", 1)[1]
