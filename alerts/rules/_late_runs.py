"""Late readings of rules with a delay (band, door open too long): what they prove about the past.

Such a rule fires when a violation lasts its delay. A reading that arrives after newer ones of its series (a
device's own clock, a redelivered backlog) may change how long a violation lasted: a late violating reading
may join a run of violations long enough to have fired, a late fine one may split a run. The store has the
series' readings around it (the collector stored the late reading before the engine saw it), so the rule
works out the runs of violation with the late reading and without it, by time:

- a run is a violating reading (the first after a fine one) and every reading up to the next clearly fine
  one (a reading within the clear margin holds a run, as it holds a pending delay live);
- a run **proven** by the late reading (it ended, lasted at least the delay, and neither it nor a run it
  overlaps did without the late reading) is raised and cleared at once under its own key (``<key>/late``),
  as a late smoke alarm is: the transitions are stamped now, the detail names the run's start
  (``late <time>``). A proven run that overlaps one raised already (:class:`LateRaised`) or the violation
  whose alert is on now is the same excursion: nothing is raised again, whatever the arrival order (a
  buffer uploaded newest first raises one alert for one opening, not one per reading);
- a run still going on at the series' newest reading whose start the late reading moves (earlier, or later
  when a late fine reading splits it) restarts the pending delay from the new start
  (``Condition.since_ms``); one a late fine reading ends (every newer reading within the clear margin)
  ends there: a pending delay is cancelled, an alert clears after its clear delay from that reading.

Cost (the engine lock is held meanwhile): only the readings next to the late one decide (the last decisive
reading before it, the first violating and the first fine one after it), so the rule reads the stored
readings of a series once per step of the engine (:class:`alerts._lookups.LateLookups`: the window plus the
delay, cached for the step and indexed once per subject), and each look-up is counted in work units that
the engine charges to the step's budget (:mod:`alerts._steps`): a step full of late readings ends early
instead of holding the lock. A late reading within the clear margin changes no run and reads nothing.

What a late reading cannot do: take back an alert that fired (a late fine reading splitting a run that
already fired live), nor raise anything without the stored readings (an engine without a readings store:
replay without one, tests; counted as ``late_readings`` as before).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable
from typing import NamedTuple

from alerts.model import HistoryRef
from archmon.domain import Reading

__all__ = ["AlarmRun", "LateRaised", "LateVerdict", "Point", "Run", "Split", "alarm_run", "judge_late", "runs"]

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
    """What a late reading changes: ended runs it proves (to raise and clear), the new start of the run going
    on at the newest reading (None: unchanged, or no such run), when the run believed on at the newest
    reading ended (a late fine reading after its last violation, the newer ones all within the margin; else
    None), the part a late fine reading split off the run going on now, when that part lasted the delay
    (``split_off``: a past excursion unless the alert on now is about it, see the rules), and an ended run
    that lasted the delay split by a late fine reading (``split``: see :meth:`LateRaised.split`)."""

    proven: list[Run]
    current_start: int | None
    ended_ms: int | None
    split_off: Run | None = None
    split: Split | None = None


class Split(NamedTuple):
    """An ended run that lasted the delay (raised once, late or live), split by a late fine reading: the whole,
    and those of its two parts that still last the delay (oldest first)."""

    whole: Run
    parts: tuple[Run, ...]


NOTHING = LateVerdict([], None, None)


def runs(points: list[Point]) -> list[Run]:
    """The runs of violation over ``points`` (oldest first): the definition the look-ups below implement."""
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


def judge_late(history: HistoryRef, reading: Reading, newest_ms: int, delay_ms: int,
               state_of: Callable[[float], bool | None], subject: Hashable | None = None) -> LateVerdict | None:
    """Work out what a late ``reading`` (older than its series' newest, ``newest_ms``) proves (see the module
    docstring), from the stored readings of its series up to the newest; None: no readings store.

    ``subject`` names what ``state_of`` judges (a band's side), so the index of a series' readings is built
    once per step for each; runs older than the 24 h window plus the delay start, as far as this knows, at
    the oldest reading read.
    """
    if history.source is None:
        return None
    state = state_of(reading.value)
    if state is None:
        return NOTHING  # a reading within the margin ends no run and starts none
    lookups = history.lookups
    start = min(reading.ts_ms, newest_ms - DAY_MS) - max(2 * delay_ms, HOUR_MS)
    rows = lookups.rows(history, reading.sensor, reading.quantity, start, newest_ms + 1)
    index = lookups.index(rows, (reading.quantity, subject), state_of)
    times, n = rows.times, len(rows.times)
    before = bisect.bisect_left(times, reading.ts_ms) - 1  # (a stored reading at its time is itself)
    after = bisect.bisect_right(times, reading.ts_ms)
    run_on = index.run_start[before] if before >= 0 else None  # the run the late reading falls in
    end = index.next_false[after] if after < n else None  # the first fine reading after it
    first_violation = index.next_true[after] if after < n else None
    next_start = first_violation if first_violation is not None and (end is None or first_violation < end) else None
    ts = reading.ts_ms
    if state:
        if run_on is not None:
            return NOTHING  # inside a run already
        if end is None:
            return LateVerdict([], ts, None)  # the run on now began at this reading
        if end - ts >= delay_ms and not (next_start is not None and end - next_start >= delay_ms):
            return LateVerdict([Run(ts, end)], None, None)
        return NOTHING
    if run_on is None:
        return NOTHING  # a fine reading between fine ones
    if end is None:  # it ends the run believed on now; the violations after it (if any) are the run now
        split_off = Run(run_on, ts) if ts - run_on >= delay_ms else None
        return LateVerdict([], next_start, ts if next_start is None else None, split_off)
    if end - run_on < delay_ms:
        return NOTHING  # it splits an ended run too short to have been raised: its parts are shorter still
    parts = [Run(run_on, ts)] if ts - run_on >= delay_ms else []
    if next_start is not None and end - next_start >= delay_ms:
        parts.append(Run(next_start, end))
    return LateVerdict([], None, None, split=Split(Run(run_on, end), tuple(parts)))


class AlarmRun(NamedTuple):
    """Where a detector's late alarm reading stands among the stored readings next to it: whether the alarm
    goes on after it (the next stored reading within reach is a 1), and when it began (the first of the
    1s just before it, within reach)."""

    continues: bool
    began_ms: int


def alarm_run(history: HistoryRef, reading: Reading, reach_ms: int = HOUR_MS) -> AlarmRun | None:
    """The stored readings of a detector around its late alarm ``reading`` (see :class:`AlarmRun`), within
    ``reach_ms`` each side; None: no readings store."""
    if history.source is None:
        return None
    rows = history.lookups.query(history, reading.sensor, reading.quantity, reading.ts_ms - reach_ms,
                                 reading.ts_ms + reach_ms + 1)
    at = bisect.bisect_left(rows, (reading.ts_ms,))
    after = next((value for ts, value in rows[at:] if ts > reading.ts_ms), None)
    began = reading.ts_ms
    for ts, value in reversed(rows[:at]):
        if value < 1.0:
            break
        began = ts
    return AlarmRun(after is not None and after >= 1.0, began)


class LateRaised:
    """The late runs a rule raised already, by subject, as intervals (bounded: the oldest subjects are
    forgotten): a proven run overlapping one of them is the same excursion, whose interval widens."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._seen: dict[str, list[Run]] = {}

    def split(self, key: str, split: Split) -> list[Run]:
        """A raised run (``split.whole``, raised once, by this or live) was split by a late fine reading: the
        parts to raise now (every part lasting the delay but the first, which keeps the whole's alert); the
        raised interval of the whole becomes the first part's."""
        known = self._seen.get(key)
        if known:
            start, stop = split.whole
            keep = split.parts[0] if split.parts else Run(start, start)
            self._seen[key] = [keep if start <= (end or begin) and begin <= (stop or start) else Run(begin, end)
                               for begin, end in known]
        return list(split.parts[1:])

    def first(self, key: str, run: Run) -> bool:
        """Whether ``run`` of ``key`` is raised for the first time (remembered; an overlapping one widens)."""
        end = run.end_ms if run.end_ms is not None else run.start_ms
        known = self._seen.get(key)
        if known is None:
            known = self._seen[key] = []
            if len(self._seen) > self.LIMIT:
                del self._seen[next(iter(self._seen))]
        for i, (start, stop) in enumerate(known):
            if run.start_ms <= (stop or start) and start <= end:
                known[i] = Run(min(start, run.start_ms), max(stop or start, end))
                return False
        known.append(Run(run.start_ms, end))
        if len(known) > 64:
            del known[0]
        return True
