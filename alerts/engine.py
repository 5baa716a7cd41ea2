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
with one look for alerts cleared by hand, not one per reading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from alerts._lifecycle import KINDS as LIFECYCLE_TIMERS
from alerts._lifecycle import Lifecycle
from alerts._requests import NotificationRequests
from alerts._timers import TimerQueue
from alerts.actions import acknowledge, clear_by_hand
from alerts.model import RuleContext, Transition
from alerts.rules import RULES, Rule
from alerts.site import load_settings, room_profiles, sensor_infos
from alerts.store import AlertStore
from archmon.config import Config
from archmon.domain import Reading

__all__ = ["AlertEngine"]

log = logging.getLogger(__name__)


class AlertEngine:
    """Evaluates readings against the rules and runs every alert's lifecycle.

    Args:
        config: the site configuration (rooms, sensors, ``[alerts]``).
        store: where alerts, lifecycle state and the audit log live; state found there is resumed
            (pending delays, clear delays, maintenance holds, cleared alerts' close times).

    Raises:
        ConfigError: bad ``[alerts]`` settings or room profiles.
    """

    def __init__(self, config: Config, store: AlertStore) -> None:
        self.config = config
        self.store = store
        self.settings = load_settings(config)
        self.tz = config.site.tz
        self.language = self.settings.language or config.site.language
        profiles = room_profiles(config, self.settings)
        self.sensors = sensor_infos(config, profiles)
        ctx = RuleContext(settings=self.settings, sensors=self.sensors, tz=self.tz)
        self.rules: list[Rule] = [
            cls(ctx, self.settings.rule(name).severity)
            for name, cls in RULES.items()
            if self.settings.rule(name).enabled
        ]
        snapshots = store.rule_states()
        for rule in self.rules:
            if rule.name in snapshots:
                rule.restore(snapshots[rule.name])
        self.timers = TimerQueue()
        self.requests = NotificationRequests(store, self.settings, self.tz, self.timers)
        room_names = {room.id: (room.name_zh, room.name_en) for room in config.rooms}
        self.lifecycle = Lifecycle(store, self.settings, self.language, self.timers, self.requests, room_names)
        for rule in self.rules:
            rule.watched = self.lifecycle.watched(rule.name)
        # rules with deadlines of their own, in registry order (ties go to the first)
        self._timed_rules = [rule for rule in self.rules if type(rule).next_due is not Rule.next_due]
        self._rules_for: dict[str, list[Rule]] = {}  # quantity -> the rules judging it, in registry order
        self._clock: int | None = None
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
        out.extend(self._judge(reading))
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
        out: list[Transition] = []
        first = True
        for reading in readings:
            try:
                out.extend(self._run_due(reading.ts_ms))
                if first:
                    first = False
                    out.extend(self.lifecycle.sync_changes(self._clock))
                out.extend(self._judge(reading))
                self.store.flush_requests()
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(reading, exc)
        return out

    def availability(self, sensor_id: str, state: str, ts_ms: int) -> list[Transition]:
        """An availability message (``online``/``offline``) for a configured sensor."""
        out = self.advance(ts_ms)
        sensor = self.sensors.get(sensor_id)
        if sensor is None:
            return out
        for rule in self.rules:
            for cond in rule.on_availability(sensor, state, ts_ms):
                out.extend(self.lifecycle.apply(cond, self._clock))
        return out

    def advance(self, now_ms: int) -> list[Transition]:
        """Run every timer and time-driven rule due at or before ``now_ms``, in time order, then take alerts
        cleared by hand."""
        out = self._run_due(now_ms)
        out.extend(self.lifecycle.sync_changes(self._clock))
        return out

    def _judge(self, reading: Reading) -> list[Transition]:
        """Judge one reading at the engine's clock (already advanced to it)."""
        sensor = self.sensors.get(reading.sensor)
        if sensor is None:
            return []
        rules = self._rules_for.get(reading.quantity)
        if rules is None:
            rules = self._rules_for[reading.quantity] = [
                rule for rule in self.rules if rule.quantities is None or reading.quantity in rule.quantities
            ]
        out: list[Transition] = []
        for rule in rules:
            for cond in rule.on_reading(reading, sensor):
                out.extend(self.lifecycle.apply(cond, self._clock))
        return out

    def _run_due(self, now_ms: int) -> list[Transition]:
        """Run every timer and time-driven rule due at or before ``now_ms``, in time order."""
        if self._clock is None:
            self._clock = now_ms
            for rule in self.rules:
                rule.start(now_ms)
            self.requests.resume(now_ms)
        out: list[Transition] = []
        while True:
            due, rule = self._next_due()
            if due is None or due > now_ms:
                break
            self._clock = max(self._clock, due)
            if rule is not None:
                for cond in rule.on_due(due):
                    out.extend(self.lifecycle.apply(cond, self._clock))
                continue
            timer = self.timers.pop()
            if timer.kind in LIFECYCLE_TIMERS:
                out.extend(self.lifecycle.on_timer(timer))
            else:
                self.requests.on_timer(timer)
        self._clock = max(self._clock, now_ms)
        return out

    def acknowledge(self, alert_id: int, by: str, comment: str, now_ms: int | None = None) -> list[Transition]:
        """Acknowledge an alert: active → acknowledged, cleared → closed; the comment is appended.

        Raises:
            KeyError: unknown alert id.
            ValueError: the alert is closed or was cancelled.
        """
        return acknowledge(self.store, alert_id, by, comment, self._now(now_ms))

    def clear(self, alert_id: int, by: str, comment: str, now_ms: int | None = None) -> list[Transition]:
        """Clear an alert by hand at ``now_ms`` (timers due until then run first). If its condition still
        holds it is raised again at once (its delay was served already).

        Raises:
            KeyError: unknown alert id.
            ValueError: the alert is not active or acknowledged.
        """
        ts = self._now(now_ms)
        out = self.advance(ts)  # the clock moves to the clear first: a re-raise is stamped with it, not before
        out.extend(clear_by_hand(self.store, alert_id, by, comment, ts))
        out.extend(self.lifecycle.sync_changes(self._clock))
        return out

    def maintenance(self, room: str, until_ms: int, reason: str, by: str, start_ms: int | None = None) -> int:
        """Open a maintenance window for a room (silences its non-critical rules); returns its id."""
        ts = self._now(start_ms)
        return self.store.add_maintenance(room, ts, until_ms, reason, by, ts)

    def end_maintenance(self, window_id: int, by: str, comment: str = "",
                        now_ms: int | None = None) -> list[Transition]:
        """End a maintenance window now (audited): conditions it silenced and still violated are judged as
        when a window expires, and escalations it held back are sent.

        Raises:
            KeyError: unknown window.
            ValueError: no name, or the window is over already.
        """
        ts = self._now(now_ms)
        self.store.end_maintenance(window_id, by, comment, ts)
        out = self.advance(max(ts, self._clock or ts))
        out.extend(self._run_due(self._clock or ts))  # the keys it released, at its end
        return out

    def checkpoint(self) -> None:
        """Persist the rules' memory (windows, last-seen times) so a restart resumes them."""
        self.store.save_rule_states({rule.name: rule.snapshot() for rule in self.rules}, self._clock or 0)

    # -- time ------------------------------------------------------------------------------------
    def _now(self, ts: int | None) -> int:
        if ts is not None:
            return ts
        if self._clock is None:
            raise RuntimeError("engine time unknown: pass now_ms")
        return self._clock

    def _next_due(self) -> tuple[int | None, Rule | None]:
        """The earliest deadline: a queued timer (``rule`` None) or a rule's own; timers first at a tie."""
        best, source = self.timers.next_due(), None
        for rule in self._timed_rules:
            due = rule.next_due()
            if due is not None and (best is None or due < best):
                best, source = due, rule
        return best, source
