"""The rule engine: pure and clock-injected. ``feed(reading)`` and ``advance(now_ms)`` return transitions.

Rules turn readings and time into conditions; :class:`~alerts._lifecycle.Lifecycle` moves each condition
through its phases and each alert through pending → active → acknowledged → cleared → closed;
:class:`~alerts._requests.NotificationRequests` queues what the channels send. Time only moves through
``advance`` (readings advance it to their timestamp first), so replay and tests run in simulated time and
the live service drives ``advance`` from a scheduler tick. Every timer (delays, clear delays, maintenance
holds, close times, repeats, escalations) sits on one queue and fires in time order, stamped with its own
due time.

Judging a reading is in-memory work: rules skip conditions that would change nothing (a key that is normal
and clearly fine, see ``Rule.quiet``) and only transitions touch the store. ``feed_many`` judges a batch
with one look for alerts cleared by hand, not one per reading; ``feed_part`` does the same within a work
budget (:mod:`alerts._steps`), the live service's one hold of the engine lock. Delays run in the readings'
own time (see :mod:`alerts._lifecycle`).

Every reading first goes through the engine's series table (:mod:`alerts._series`), which decides its order
against the newest reading of its series and puts it into the shared windows of its own time; the engine
then hands it to the rules that take readings of that order (``Rule.late``). Rules keep no checkpoint: at
start :meth:`AlertEngine.rebuild` rebuilds windows and rule memory from the readings store
(:mod:`alerts.rebuild`), then judges what the store holds beyond each series' judged-through watermark
(:meth:`AlertEngine.catch_up`, :mod:`alerts.catchup`), and :meth:`AlertEngine.take_over` hands them to the
engine of a reloaded configuration.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from alerts._engine_actions import PeopleActions
from alerts._engine_start import StartUp
from alerts._lifecycle import KINDS as LIFECYCLE_TIMERS
from alerts._lifecycle import Lifecycle
from alerts._requests import NotificationRequests
from alerts._series import IN_ORDER, LATE, NEVER, TOO_OLD, Order, SeriesTable, WindowNeeds
from alerts._steps import Budget, Due, FedPart
from alerts._timers import TimerQueue
from alerts.catchup import Unjudged, save_first_judged, save_judged
from alerts.counters import EngineCounters
from alerts.model import HistoryRef, RuleContext, SensorInfo, Transition
from alerts.rules import RULES, Rule
from alerts.site import load_settings, room_profiles, sensor_infos
from alerts.store import AlertStore
from archmon.config import Config
from archmon.domain import Reading

__all__ = ["AlertEngine", "EngineCounters", "FedPart"]  # EngineCounters: from alerts.counters

log = logging.getLogger(__name__)

_TAKES: dict[int, tuple[str, ...]] = {IN_ORDER: ("skip", "window", "always"), LATE: ("window", "always"),
                                        TOO_OLD: ("always",)}


class RuleChoice(NamedTuple):
    """What decides which rules judge a reading: its quantity, its order, and whether it is a stored reading
    judged again (see :meth:`AlertEngine.judge_stored`)."""

    quantity: str
    order: Order
    stored: bool


class AlertEngine(PeopleActions, StartUp):
    """Evaluates readings against the rules and runs every alert's lifecycle.

    Args:
        config: the site configuration (rooms, sensors, ``[alerts]``).
        store: where alerts, lifecycle state and the audit log live; state found there is resumed
            (pending delays, clear delays, maintenance holds, cleared alerts' close times).
        series: the series table (newest readings, windows) to judge with: a new one, or the one of the
            engine a reload replaces (then call :meth:`take_over`).

    Raises:
        ConfigError: bad ``[alerts]`` settings or room profiles.
    """

    def __init__(self, config: Config, store: AlertStore, *, series: SeriesTable | None = None) -> None:
        self.config = config
        self.store = store
        self.settings = load_settings(config)
        self.tz = config.site.tz
        self.language = self.settings.language or config.site.language
        profiles = room_profiles(config, self.settings)
        self.sensors = sensor_infos(config, profiles)
        self.series = series if series is not None else SeriesTable()
        self.history = HistoryRef()
        """The stored readings rules may look up (late readings' neighbours): set ``history.source``."""
        ctx = RuleContext(settings=self.settings, sensors=self.sensors, tz=self.tz, series=self.series,
                          history=self.history)
        self.rules: list[Rule] = [
            cls(ctx, self.settings.rule(name).severity)
            for name, cls in RULES.items()
            if self.settings.rule(name).enabled
        ]
        markers = store.rule_states()
        for rule in self.rules:
            if rule.name in markers:
                rule.restore(markers[rule.name])
        self._markers: dict[str, dict[str, Any] | None] = {rule.name: rule.marker() for rule in self.rules}
        self.counters = EngineCounters()
        self.timers = TimerQueue()
        self.requests = NotificationRequests(store, self.settings, self.tz, self.timers, self.sensors)
        room_names = {room.id: (room.name_zh, room.name_en) for room in config.rooms}
        self.lifecycle = Lifecycle(store, self.settings, self.language, self.timers, self.requests, room_names,
                                   tz=self.tz)
        for rule in self.rules:
            rule.watched = self.lifecycle.watched(rule.name)
            rule.firing = self.lifecycle.firing(rule.name)
        # rules with deadlines of their own, in registry order (ties go to the first)
        self._timed_rules = [rule for rule in self.rules if type(rule).next_due is not Rule.next_due]
        self._rules_for: dict[RuleChoice, list[Rule]] = {}  # the rules judging a quantity, by order
        self._needs: dict[tuple[str, str], WindowNeeds] = {}  # (room, quantity): profiles are per room
        self._clock: int | None = None
        self.unjudged: list[Unjudged] = []  # found by rebuild(), judged by catch_up()
        self.catching_up = False
        """A :class:`~alerts.catchup.CatchUp` is under way: no timer runs at the clock (smoke and leak are judged
        without running timers; the live tick waits)."""
        self._marks = array("q")  # the watermarks at start, by slot (judge_backlog)
        self.refill: list[int] = []  # slots whose window rows take_over() gave anew: to fill from the store
        self._first_judged: set[int] = set()  # slots judged for the first time, their watermark not written yet
        self.lifecycle.load()

    # -- public API ------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int | None:
        """The engine's simulated time (None before the first reading or advance)."""
        return self._clock

    def feed(self, reading: Reading) -> list[Transition]:
        """Judge one reading (advancing time to its timestamp first).

        Readings of sensors not in the configuration are ignored (they are the collector's
        "unassigned" devices).
        """
        out = self.advance(reading.ts_ms)
        self.history.lookups.forget()
        out.extend(self._judge(reading))
        self.save_first_judged()
        return out

    def feed_many(
        self, readings: Iterable[Reading], *, on_error: Callable[[Reading, Exception], None] | None = None
    ) -> list[Transition]:
        """Feed a batch of readings in the order given.

        The same as :meth:`feed` for each, except that alerts cleared by hand (possibly by another process)
        are taken once, after the timers due at the first reading, instead of before every reading. After
        each reading, a notification request it queued is committed at once (see ``AlertStore.batch``).

        Args:
            readings: the batch, in time order.
            on_error: called with a reading whose judgement raised, and the exception; the batch goes on
                (None: the exception propagates).

        Returns:
            The transitions of the batch, in order.
        """
        return self._feed(list(readings), Budget(None), True, on_error).transitions

    def feed_part(self, readings: Sequence[Reading], *, budget: int, wait_for_due: bool = True,
                  on_error: Callable[[Reading, Exception], None] | None = None) -> FedPart:
        """Feed readings as :meth:`feed_many` does, for at most ``budget`` work units (see :mod:`alerts._steps`):
        the live service's step, after which it releases the engine lock and hands the rest to the next one.

        Args:
            readings: in time order.
            budget: work units of this step (timers and deadlines falling due, the transitions made).
            wait_for_due: a reading waits until every timer due at its time has run (the order of a live
                feed); False for smoke and leak, judged at once even while a mass of timers is still due
                (those go on at the next step: each re-checks its subject when it runs).
            on_error: as for :meth:`feed_many`.

        Returns:
            The transitions and how many of ``readings`` were judged (at least one, unless timers due
            before the first took the whole budget).
        """
        return self._feed(readings, Budget(budget), wait_for_due, on_error)

    def _feed(self, readings: Sequence[Reading], budget: Budget, wait_for_due: bool,
              on_error: Callable[[Reading, Exception], None] | None) -> FedPart:
        out: list[Transition] = []
        judged = 0
        lookups = self.history.lookups
        for reading in readings:
            try:
                if wait_for_due or not self.catching_up:
                    out.extend(self._run_due(reading.ts_ms, budget))
                if wait_for_due and budget.spent and self.due(reading.ts_ms):
                    break
                if not judged:
                    out.extend(self._take_changes())
                lookups.judging(reading)
                out.extend(budget.transitions(self._judge(reading)))
                budget.spend(lookups.take_units())  # stored readings a late reading needed
                self.store.flush_requests()
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(reading, exc)
            judged += 1
            if budget.spent:
                break
        self.save_first_judged()
        return FedPart(out, judged)

    def availability(self, sensor_id: str, state: str, ts_ms: int, *, budget: int | None = None) -> list[Transition]:
        """An availability message (``online``/``offline``) for a configured sensor, judged after the timers due
        at its time (at most ``budget`` units of them: the rest run at the next step)."""
        out = self._run_due(ts_ms, Budget(budget))
        out.extend(self._take_changes())
        sensor = self.sensors.get(sensor_id)
        if sensor is None:
            return out
        for rule in self.rules:
            for cond in rule.on_availability(sensor, state, ts_ms):
                out.extend(self.lifecycle.apply(cond, self._clock))
        return out

    def advance(self, now_ms: int, *, budget: int | None = None) -> list[Transition]:
        """Run every timer and time-driven rule due at or before ``now_ms``, in time order, then take alerts
        cleared by hand.

        Args:
            now_ms: the time to advance to.
            budget: at most so many timers or rule deadlines (None: all); the live tick uses it so one
                call never holds the engine long, and calls again while :meth:`due`.
        """
        out = self._run_due(now_ms, Budget(budget))
        out.extend(self._take_changes())
        return out

    def _judge(self, reading: Reading, stored: Order | None = None) -> list[Transition]:
        """Place one reading in its series (order and windows), then judge it by the rules that take
        readings of its order, at the engine's clock (already advanced to it).

        ``stored``: the reading is in the windows and rule memory already (rebuilt from the store, see
        :mod:`alerts.catchup`): it is not placed again, and is judged as a reading of that order by the rules
        that judge stored readings (``Rule.stored``).
        """
        sensor = self.sensors.get(reading.sensor)
        if sensor is None:
            return []
        quantity = reading.quantity
        series = self.series
        slot = series.index.get((reading.sensor, quantity))
        if slot is None:
            slot = series.add(sensor.id, quantity, self.window_needs(sensor, quantity))
        series.hint(sensor.id, quantity, slot)
        order = series.place(slot, reading.ts_ms, reading.value) if stored is None else stored
        counters = self.counters
        counters.readings += 1
        if order:
            if order == LATE:
                counters.late_readings += 1
                if series.beyond_fine(slot, reading.ts_ms):
                    counters.late_for_rate += 1
            else:
                counters.late_for_alerts += 1
            if quantity in ("smoke", "leak") and reading.value >= 1.0:
                counters.late_alarms += 1
        choice = RuleChoice(quantity, order, stored is not None)
        rules = self._rules_for.get(choice)
        if rules is None:
            rules = self._rules_for[choice] = [
                rule for rule in self.rules
                if (rule.quantities is None or quantity in rule.quantities) and rule.late in _TAKES[order]
                and (stored is None or rule.stored)
            ]
        writes = self.store.writes
        out: list[Transition] = []
        for rule in rules:
            for cond in rule.on_reading(reading, sensor):
                out.extend(self.lifecycle.apply(cond, self._clock))
        if self.store.writes != writes:
            save_judged(series, self.store, slot)  # with what it wrote: never judged again after a restart
        elif series.judged_saved[slot] == NEVER:
            self._first_judged.add(slot)  # a series met for the first time: written with the step
        return out

    def run_due(self, now_ms: int, budget: Budget) -> list[Transition]:
        """Run the timers and rule deadlines due at or before ``now_ms`` within ``budget`` (the catch-up's
        timers in device-time order; :meth:`due` tells whether more wait)."""
        return self._run_due(now_ms, budget)

    def judge_stored(self, reading: Reading, order: Order) -> list[Transition]:
        """Judge a stored reading whose data the windows and rule memory hold already (the catch-up, a last
        run's backlog) as a reading of ``order``, at the engine's clock."""
        return self._judge(reading, stored=order)

    def save_first_judged(self) -> None:
        """Write the watermarks of the series first judged since the last call (one statement, at the end of a
        step, inside its transaction)."""
        if self._first_judged:
            slots, self._first_judged = self._first_judged, set()
            save_first_judged(self.series, self.store, slots)

    def window_needs(self, sensor: SensorInfo, quantity: str) -> WindowNeeds:
        """The shared windows the enabled rules read for a series of ``sensor``."""
        subject = (sensor.room, quantity)
        needs = self._needs.get(subject)
        if needs is None:
            hours, fine = False, None
            for rule in self.rules:
                wanted = rule.window_needs(sensor, quantity)
                hours = hours or wanted.hours
                fine = fine if fine is not None else wanted.fine_window_ms
            needs = self._needs[subject] = WindowNeeds(hours, fine)
        return needs

    def due(self, now_ms: int) -> bool:
        """Whether a timer or a rule's deadline is due at or before ``now_ms``."""
        due = self._next_due().ts_ms
        return due is not None and due <= now_ms

    def begin(self, now_ms: int) -> None:
        """Start the engine's time at ``now_ms`` (once: rules start, pending requests resume), without running
        what is due (the next advance or reading does)."""
        if self._clock is None:
            self._clock = now_ms
            for rule in self.rules:
                rule.start(now_ms)
            self.requests.resume(now_ms)

    def _run_due(self, now_ms: int, budget: Budget) -> list[Transition]:
        """Run every timer and time-driven rule due at or before ``now_ms``, in time order, until ``budget`` is
        spent (the clock then stays at the last one run, and :meth:`due` tells whether more wait)."""
        self.begin(now_ms)
        assert self._clock is not None
        out: list[Transition] = []
        while True:
            due, source = self._next_due()
            if due is None or due > now_ms:
                break
            if budget.spent:
                return out
            self._clock = max(self._clock, due)
            if isinstance(source, Rule):
                conditions = source.on_due(due)
                budget.spend(1 + len(conditions))
                for cond in conditions:
                    out.extend(budget.transitions(self.lifecycle.apply(cond, self._clock)))
                self._save_marker(source)
                continue
            budget.spend(1)
            timer = self.timers.pop()
            if timer.kind in LIFECYCLE_TIMERS:
                out.extend(budget.transitions(self.lifecycle.on_timer(timer, self._clock)))
            else:
                self.requests.on_timer(timer)
        self._clock = max(self._clock, now_ms)
        return out

    def take_over(self, previous: AlertEngine) -> None:
        """Continue where ``previous`` (the engine of the configuration being replaced) stopped: its clock,
        counters, series table and windows (built with ``series=previous.series``) and each rule's memory;
        a rule the new configuration enables afresh starts now. No reading is judged again. Series given new
        window rows (a rate window of another length, a 24 h window) are listed in :attr:`refill`, for the
        caller to fill from the readings store (``alerts.rebuild.refill_windows``)."""
        if self.series is not previous.series:
            raise ValueError("take_over needs the engine built with series=previous.series")
        now = previous._clock
        self.counters = previous.counters
        self.history.source = previous.history.source
        self._marks = previous._marks
        for slot, (sensor_id, quantity) in enumerate(self.series.keys):
            sensor = self.sensors.get(sensor_id)
            if sensor is not None and self.series.adopt_needs(slot, self.window_needs(sensor, quantity)):
                self.refill.append(slot)
        if now is None:
            return
        self._clock = now
        old = {rule.name: rule for rule in previous.rules}
        for rule in self.rules:
            if rule.name in old:
                rule.adopt(old[rule.name], now)
            else:
                rule.start(now)
        self.requests.resume(now)

    def _save_marker(self, rule: Rule) -> None:
        """Persist a rule's small marker when a time-driven judgement changed it."""
        marker = rule.marker()
        if marker is not None and marker != self._markers.get(rule.name):
            self.store.save_rule_state(rule.name, marker, self._clock or 0)
            self._markers[rule.name] = marker

    # -- time ------------------------------------------------------------------------------------
    def _next_due(self) -> Due:
        """The earliest deadline: a queued timer (``rule`` None) or a rule's own; timers first at a tie."""
        best, source = self.timers.next_due(), None
        for rule in self._timed_rules:
            due = rule.next_due()
            if due is not None and (best is None or due < best):
                best, source = due, rule
        return Due(best, source)
