"""Unregistered entry: a store's door opened while no access session was open (三不查阅).

An **opening** is a door reading "open" whose previous reading *by timestamp* is "closed" (or unknown), so
readings are judged in their own time order, whatever order they arrive in (``late = "always"``): an
opening that arrives after newer readings is judged, a late "closed" that splits an open stretch makes
the reading after it an opening, and a late "open" inside an open stretch is no opening.

Each opening is judged once its grace has passed (``[alerts.access] grace_s``, default 60 s): it is
registered when an access session of the room was open at some moment from the opening to the end of the
grace (the keeper opens the door, then registers at the terminal inside). An unregistered opening raises
the alert at the opening's time; the door closing clears it (if the door closed already, the alert is raised
and cleared at once, so the entry is notified and recovered).

Memory, rebuilt at start from the store (:meth:`rebuild`): the last readings of every door (up to
:data:`MEMORY`, from the last 24 h) and the newest opening judged per door (the marker the engine persists
after judgements), so a door left open across a restart or a reload is not a new entry, and an opening
whose judgement the restart interrupted is judged after it. A reload's engine takes all of it over, the
register included (:meth:`adopt`).

The rule needs the register (:func:`alerts.access.attach_register`); without one it judges nothing, so a
replay of old data or a rule test without a register raises no such alerts.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from alerts.model import Condition, SensorInfo
from alerts.rules.base import LateReadings, Rule
from archmon.domain import Reading

__all__ = ["MEMORY", "DoorReading", "SessionLookup", "UnregisteredEntryRule"]

log = logging.getLogger(__name__)

SessionLookup = Callable[[str, int, int], bool]
"""``(room, start_ms, end_ms) -> bool``: whether an access session of the room was open at some moment of
``[start_ms, end_ms]``."""

MEMORY = 128
"""Door readings kept per door; an opening older than all of them is judged as an opening."""
DAY_MS = 86_400_000


class DoorReading(NamedTuple):
    """One door reading: when, and whether it said open."""

    ts_ms: int
    open: bool


class UnregisteredEntryRule(Rule):
    """Fires when a door opens with no access session in its room within the grace; closing clears it."""

    name = "unregistered_entry"
    default_severity = "major"
    quantities = frozenset({"door"})
    late: ClassVar[LateReadings] = "always"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._doors: dict[str, list[DoorReading]] = {}
        self._waiting: set[tuple[str, int]] = set()  # (door, opening ts) to judge once its grace is over
        self._judged: dict[str, int] = {}  # door -> newest opening judged (persisted as the marker)
        self.sessions: SessionLookup | None = None

    @property
    def grace_ms(self) -> int:
        """How long after an opening a session may still be opened for it."""
        return int(self.ctx.settings.access.grace_s * 1000)

    # -- readings --------------------------------------------------------------------------------
    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "door":
            return []
        ts, is_open = reading.ts_ms, reading.value >= 1.0
        door = self._doors.setdefault(sensor.id, [])
        i = bisect.bisect_left(door, (ts,))
        if i < len(door) and door[i].ts_ms == ts:
            if door[i].open == is_open:
                return []  # the same reading again
            door[i] = DoorReading(ts, is_open)
        else:
            door.insert(i, DoorReading(ts, is_open))
        before = door[i - 1] if i > 0 else None
        after = door[i + 1] if i + 1 < len(door) else None
        if len(door) > MEMORY:
            del door[0]
        if self.sessions is None:
            return []
        if is_open:
            if before is None or not before.open:
                self._waiting.add((sensor.id, ts))
                if after is not None and after.open:
                    self._waiting.discard((sensor.id, after.ts_ms))  # no opening any more: open since ts
            return []
        if before is not None and before.open and after is not None and after.open:
            self._waiting.add((sensor.id, after.ts_ms))  # a late "closed": the reading after it is an opening
        if after is not None or self.quiet(sensor.id, False):
            return []
        return [self.condition(sensor, sensor.id, False, ts, quantity="door", value=reading.value,
                               detail="unregistered")]

    # -- judgements after the grace --------------------------------------------------------------
    def next_due(self) -> int | None:
        if not self._waiting or self.sessions is None:
            return None
        return min(ts for _, ts in self._waiting) + self.grace_ms

    def on_due(self, now_ms: int) -> list[Condition]:
        grace = self.grace_ms
        due = sorted((ts, door) for door, ts in self._waiting if ts + grace <= now_ms)
        out: list[Condition] = []
        for ts, door in due:
            self._waiting.discard((door, ts))
            sensor = self.ctx.sensors.get(door)
            if sensor is None:
                continue
            self._judged[door] = max(ts, self._judged.get(door, ts))
            if self._registered(sensor.room, ts, ts + grace):
                continue
            out.append(self.condition(sensor, door, True, ts, quantity="door", value=1.0, detail="unregistered"))
            closing = next((r for r in self._doors.get(door, ()) if r.ts_ms > ts and not r.open), None)
            if closing is not None:
                out.append(self.condition(sensor, door, False, closing.ts_ms, quantity="door", value=0.0,
                                          detail="unregistered"))
        return out

    def _registered(self, room: str, start_ms: int, end_ms: int) -> bool:
        lookup = self.sessions
        assert lookup is not None
        try:
            return lookup(room, start_ms, end_ms)
        except Exception:  # the register could not be read: say so rather than stay silent about an entry
            log.exception("unregistered_entry: cannot read the access register for room %s; judging the door "
                          "opening as unregistered", room)
            return False

    # -- restart and reload ----------------------------------------------------------------------
    def rebuild(self, sensor: SensorInfo, history: Any) -> None:
        """The door's readings of the last 24 h (at most :data:`MEMORY`); with a register attached, openings
        not judged before the restart wait for their judgement again: those after the door's marker, or
        without one, the opening of a door open now (judging it again changes nothing if it was judged)."""
        if history.quantity != "door" or history.newest is None:
            return
        newest_ts = history.newest.ts_ms
        rows = history.readings(max(0, newest_ts - DAY_MS), newest_ts + 1)[-MEMORY:] or [history.newest]
        door = self._doors[sensor.id] = [DoorReading(int(ts), value >= 1.0) for ts, value in rows]
        if self.sessions is None:
            return
        openings = [b.ts_ms for a, b in itertools.pairwise(door) if b.open and not a.open]
        mark = self._judged.get(sensor.id)
        if mark is not None:
            self._waiting.update((sensor.id, ts) for ts in openings if ts > mark)
        elif door[-1].open and openings:
            self._waiting.add((sensor.id, openings[-1]))

    def adopt(self, previous: Rule, now_ms: int) -> None:
        if isinstance(previous, UnregisteredEntryRule):
            sensors = self.ctx.sensors
            self.sessions = previous.sessions
            self._doors = {door: rows for door, rows in previous._doors.items() if door in sensors}
            self._waiting = {item for item in previous._waiting if item[0] in sensors}
            self._judged = {door: ts for door, ts in previous._judged.items() if door in sensors}

    def marker(self) -> dict[str, Any] | None:
        return {"judged": dict(self._judged)} if self._judged else None

    def restore(self, data: dict[str, Any]) -> None:
        judged = data.get("judged")
        if isinstance(judged, dict):
            self._judged = {str(door): int(ts) for door, ts in judged.items()}

    def snapshot(self) -> dict[str, Any]:
        return {"open": sorted(door for door, rows in self._doors.items() if rows and rows[-1].open),
                "waiting": sorted(self._waiting), "judged": dict(self._judged)}
