"""Late readings of rules with a delay (band, door open too long): what they prove about the past.

Such a rule fires when a violation lasts its delay. A reading that arrives after newer ones of its series (a
device's own clock, a redelivered backlog) may change how long a violation lasted: a late violating reading
may join a run of violations long enough to have fired, a late fine one may split a run. The store has the
series' readings around it (the collector stored the late reading before the engine saw it), so the rule
works out the runs of violation with the late reading and without it, by time:

- a run is a violating reading (the first after a fine one) and every reading up to the next clearly fine
  one (a reading within the clear margin holds a run, as it holds a pending delay live);
- a run **proven** by the late reading (it ended, lasted at least the delay, and did not without the late
  reading) is raised and cleared at once, as a late smoke alarm is: the transitions are stamped now, the
  detail names the run's start (``late <time>``); only while the subject is idle (nothing pending or
  active: a current violation keeps its alert, and a late run is not mixed into it);
- a run still going on at the series' newest reading whose start the late reading moves (earlier, or later
  when a late fine reading splits it) restarts the pending delay from the new start
  (``Condition.since_ms``); one a late fine reading ends (every newer reading within the clear margin)
  ends there: a pending delay is cancelled, an alert clears after its clear delay from that reading.

What a late reading cannot do: take back an alert that fired (a late fine reading splitting a run that
already fired live), nor raise anything without the stored readings (an engine without a readings store:
replay without one, tests; counted as ``late_readings`` as before).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from alerts.model import HistoryRef
from archmon.domain import Reading

__all__ = ["LateRaised", "LateVerdict", "Point", "Run", "judge_late", "runs"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class Point(NamedTuple):
    """One reading of a subject: its time and its state (True violated, False fine, None within the margin)."""

    ts_ms: int
    state: bool | None


class Run(NamedTuple):
    """A run of violation: its first violating reading, and the first fine reading after it (None: on at the
    newest reading)."""

    start_ms: int
    end_ms: int | None


class LateVerdict(NamedTuple):
    """What a late reading changes: runs it proves (to raise and clear), the new start of the run going on at
    the newest reading (None: unchanged, or no such run), and when the run believed on at the newest reading
    ended (a late fine reading after its last violation, the newer ones all within the margin; else None)."""

    proven: list[Run]
    current_start: int | None
    ended_ms: int | None


def runs(points: Sequence[Point]) -> list[Run]:
    """The runs of violation over ``points`` (oldest first)."""
    out: list[Run] = []
    start: int | None = None
    for ts, state in points:
        if state is True and start is None:
            start = ts
        elif state is False and start is not None:
            out.append(Run(start, ts))
            start = None
    if start is not None:
        out.append(Run(start, None))
    return out


def _proven(found: list[Run], delay_ms: int) -> set[Run]:
    return {run for run in found if run.end_ms is not None and run.end_ms - run.start_ms >= delay_ms}


def _current(found: list[Run]) -> int | None:
    return found[-1].start_ms if found and found[-1].end_ms is None else None


def judge_late(history: HistoryRef, reading: Reading, newest_ms: int, delay_ms: int,
               state_of: Callable[[float], bool | None]) -> LateVerdict | None:
    """Work out what a late ``reading`` (older than its series' newest, ``newest_ms``) proves (see the module
    docstring), from the stored readings of its series up to the newest; None: no readings store."""
    source = history.source
    if source is None:
        return None
    back = max(2 * delay_ms, HOUR_MS)
    while True:  # far enough back to hold the start of the run the late reading falls in
        start = reading.ts_ms - back
        rows = source.series(reading.sensor, reading.quantity, start, newest_ms + 1)
        points = [Point(ts, state_of(value)) for ts, value in rows if ts != reading.ts_ms]
        before = [p for p in points if p.ts_ms < reading.ts_ms]
        # runs ending before a fine reading that precedes the late one are the same with it and without it
        if back >= DAY_MS or not before or any(p.state is False for p in before):
            break
        back *= 4
    late = Point(reading.ts_ms, state_of(reading.value))
    at = len(before)
    without = runs(points)
    with_late = runs([*points[:at], late, *points[at:]])
    now, before_late = _current(with_late), _current(without)
    return LateVerdict(sorted(_proven(with_late, delay_ms) - _proven(without, delay_ms)),
                       now if now != before_late else None,
                       reading.ts_ms if now is None and before_late is not None else None)


class LateRaised:
    """The late runs a rule raised already, by subject and start (bounded: the oldest are forgotten), so two
    late readings of one run raise it once."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], None] = {}

    def first(self, key: str, start_ms: int) -> bool:
        """Whether the run of ``key`` starting at ``start_ms`` is raised for the first time (and remember it)."""
        if (key, start_ms) in self._seen:
            return False
        self._seen[(key, start_ms)] = None
        if len(self._seen) > self.LIMIT:
            del self._seen[next(iter(self._seen))]
        return True
