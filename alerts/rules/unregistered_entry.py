"""Unregistered entry: a store's door opened while no access session was open (三不查阅).

A door opening (0 → 1) is judged against the access register at the reading's own timestamp, so a
late or out-of-order reading is judged by the sessions open when the door actually opened. Closing the
door clears the alert (it stays to be acknowledged). The rule needs the register
(:func:`alerts.access.attach_register`); without one it judges nothing, so a replay of old data or a
rule test without a register raises no such alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from archmon.domain import Reading

__all__ = ["SessionLookup", "UnregisteredEntryRule"]

log = logging.getLogger(__name__)

SessionLookup = Callable[[str, int], bool]
"""``(room, ts_ms) -> bool``: whether an access session was open in the room at that time."""


class UnregisteredEntryRule(Rule):
    """Fires when a door opens with no open access session in its room; the door closing clears it."""

    name = "unregistered_entry"
    default_severity = "major"
    quantities = frozenset({"door"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: dict[str, bool] = {}
        self.sessions: SessionLookup | None = None

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "door" or self.sessions is None:
            return []
        is_open = reading.value >= 1.0
        was_open = self._open.get(sensor.id, False)
        self._open[sensor.id] = is_open
        if not is_open:
            state: bool | None = False
        elif was_open:
            return []
        else:
            state = not self._registered(sensor.room, reading.ts_ms)
        if self.quiet(sensor.id, state):
            return []
        return [self.condition(sensor, sensor.id, state, reading.ts_ms, quantity="door", value=reading.value,
                               detail="unregistered")]

    def _registered(self, room: str, ts_ms: int) -> bool:
        lookup = self.sessions
        assert lookup is not None
        try:
            return lookup(room, ts_ms)
        except Exception:  # the register could not be read: say so rather than stay silent about an entry
            log.exception("unregistered_entry: cannot read the access register for room %s; judging the door "
                          "opening as unregistered", room)
            return False

    def snapshot(self) -> dict[str, Any]:
        return {"open": self._open}

    def restore(self, data: dict[str, Any]) -> None:
        self._open = dict(data.get("open", {}))
