"""The rule engine: pure and clock-injected. ``feed(reading)`` and ``advance(now_ms)`` return transitions.

Lifecycle of one ``rule:key`` (the *phase*, persisted in ``alert_conditions``)::

    normal --violated--> pending --delay elapsed--> active --fine past margin--> clearing
       ^                    |                         ^                            |
       |     fine (cancel)  |                         +--------violated/hold-------+
       +--------------------+<--------------------------- clear delay elapsed -----+

The alert row (``alert_alerts``) moves pending → active → acknowledged → cleared → closed; a cleared
alert not yet acknowledged stays open, so re-firing reuses it instead of creating a duplicate. Time only
moves through ``advance`` (readings advance it to their timestamp first), so replay and tests run in
simulated time and the live service drives ``advance`` from a scheduler tick.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from alerts.messages import title
from alerts.model import Condition, RuleContext, Transition
from alerts.rules import RULES, Rule
from alerts.site import load_settings, room_profiles, sensor_infos
from alerts.store import AlertStore
from archmon.config import Config
from archmon.domain import Reading
from archmon.timeutil import to_iso

__all__ = ["AlertEngine"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _KeyState:
    ident: str
    phase: str = "normal"  # normal | pending | active | clearing
    since_ms: int = 0
    wait_ms: int = 0  # delay (pending) or clear delay (clearing) in force
    alert_id: int | None = None
    held_until: int | None = None  # a violation silenced by a maintenance window until then
    last: Condition | None = None


class AlertEngine:
    """Evaluates readings against the rules and runs every alert's lifecycle.

    Args:
        config: the site configuration (rooms, sensors, ``[alerts]``).
        store: where alerts, lifecycle state and the audit log live; state found there is resumed.

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
        self._timers: list[tuple[int, int, str, str]] = []
        self._seq = 0
        self._states: dict[str, _KeyState] = {}
        self._clock: int | None = None
        self._started_ms: int | None = None
        self._load_states()

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
        sensor = self.sensors.get(reading.sensor)
        if sensor is None:
            return out
        for rule in self.rules:
            for cond in rule.on_reading(reading, sensor):
                out.extend(self._apply(cond))
        return out

    def feed_many(self, readings: Iterable[Reading]) -> list[Transition]:
        """Feed readings in the order given."""
        out: list[Transition] = []
        for reading in readings:
            out.extend(self.feed(reading))
        return out

    def availability(self, sensor_id: str, state: str, ts_ms: int) -> list[Transition]:
        """An availability message (``online``/``offline``) for a configured sensor."""
        out = self.advance(ts_ms)
        sensor = self.sensors.get(sensor_id)
        if sensor is None:
            return out
        for rule in self.rules:
            for cond in rule.on_availability(sensor, state, ts_ms):
                out.extend(self._apply(cond))
        return out

    def advance(self, now_ms: int) -> list[Transition]:
        """Run every timer and time-driven rule due at or before ``now_ms``, in time order."""
        if self._clock is None:
            self._clock = self._started_ms = now_ms
            for rule in self.rules:
                rule.start(now_ms)
            self._schedule_notifications()
        out: list[Transition] = []
        while True:
            due, source = self._next_due()
            if source is None or due > now_ms:
                break
            self._clock = max(self._clock, due)
            if isinstance(source, Rule):
                for cond in source.on_due(due):
                    out.extend(self._apply(cond))
            else:
                out.extend(self._fire_timer())
        self._clock = max(self._clock, now_ms)
        out.extend(self._sync_manual_clears())
        return out

    def acknowledge(self, alert_id: int, by: str, comment: str, now_ms: int | None = None) -> list[Transition]:
        """Acknowledge an alert: active → acknowledged, cleared → closed; the comment is appended.

        Raises:
            KeyError: unknown alert id.
            ValueError: the alert is closed or was cancelled.
        """
        ts = self._now(now_ms)
        return acknowledge(self.store, alert_id, by, comment, ts)

    def clear(self, alert_id: int, by: str, comment: str, now_ms: int | None = None) -> list[Transition]:
        """Clear an alert by hand. If its condition still holds it is raised again (after its delay).

        Raises:
            KeyError: unknown alert id.
            ValueError: the alert is not active or acknowledged.
        """
        ts = self._now(now_ms)
        out = clear_by_hand(self.store, alert_id, by, comment, ts)
        out.extend(self._sync_manual_clears())
        return out

    def maintenance(self, room: str, until_ms: int, reason: str, by: str, start_ms: int | None = None) -> int:
        """Open a maintenance window for a room (silences its non-critical rules); returns its id."""
        ts = self._now(start_ms)
        return self.store.add_maintenance(room, ts, until_ms, reason, by, ts)

    def checkpoint(self) -> None:
        """Persist the rules' memory (windows, last-seen times) so a restart resumes them."""
        self.store.save_rule_states({rule.name: rule.snapshot() for rule in self.rules}, self._clock or 0)

    # -- lifecycle -------------------------------------------------------------------------------
    def _now(self, ts: int | None) -> int:
        if ts is not None:
            return ts
        if self._clock is None:
            raise RuntimeError("engine time unknown: pass now_ms")
        return self._clock

    def _push(self, due: int, kind: str, ref: str) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (due, self._seq, kind, ref))

    def _next_due(self) -> tuple[int, Any]:
        best: tuple[int, Any] = (0, None)
        if self._timers:
            best = (self._timers[0][0], "timer")
        for rule in self.rules:
            due = rule.next_due()
            if due is not None and (best[1] is None or due < best[0]):
                best = (due, rule)
        return best

    def _save(self, ks: _KeyState) -> None:
        self.store.save_condition(ks.ident, ks.phase, ks.since_ms, ks.wait_ms, ks.alert_id, ks.held_until, ks.last)

    def _apply(self, cond: Condition) -> list[Transition]:
        ts = max(cond.ts_ms, self._clock or cond.ts_ms)
        ks = self._states.get(cond.ident)
        if ks is None:
            if not cond.state:
                return []
            ks = self._states[cond.ident] = _KeyState(cond.ident)
        if cond.state is None:
            if ks.phase == "clearing":
                ks.phase = "active"
                self._save(ks)
            return []
        ks.last = cond
        if cond.state:
            if ks.phase == "normal":
                return self._start(ks, cond, ts)
            if ks.phase == "clearing":
                ks.phase = "active"
                self._save(ks)
            return []
        if ks.held_until is not None:
            ks.held_until = None
            self._save(ks)
        if ks.phase == "pending":
            return self._cancel(ks, ts)
        if ks.phase == "active":
            ks.phase, ks.since_ms, ks.wait_ms = "clearing", ts, int(cond.clear_delay_s * 1000)
            if ks.wait_ms == 0:
                return self._clear(ks, ts)
            self._save(ks)
            self._push(ts + ks.wait_ms, "clear", ks.ident)
        return []

    def _start(self, ks: _KeyState, cond: Condition, ts: int) -> list[Transition]:
        if cond.severity != "critical":
            until = self.store.maintenance_until(cond.room, ts)
            if until is not None:
                if ks.held_until != until:
                    ks.held_until = until
                    self._save(ks)
                    self._push(until, "hold", ks.ident)
                    log.info("%s violated during maintenance of room %s: silenced until %s",
                             ks.ident, cond.room, to_iso(until))
                return []
        ks.held_until = None
        delay = int(cond.delay_s * 1000)
        existing = self.store.open_alert(cond.ident)
        out: list[Transition] = []
        if existing is not None and existing["state"] in ("active", "acknowledged"):
            ks.phase, ks.alert_id = "active", existing["id"]  # lifecycle row lost: resume the open alert
            self._save(ks)
            return out
        if existing is not None:
            first = self.store.set_state(existing["id"], "pending", ts, value=cond.value, limit=cond.limit,
                                         note="re-fired")
        else:
            first = self.store.create_alert(cond, ts, "pending", title(cond, self.language))
        ks.alert_id = first.alert
        if delay > 0:  # with no delay the alert goes straight to active: pending is not reported
            out.append(first)
        ks.phase, ks.since_ms, ks.wait_ms = "pending", ts, delay
        if delay == 0:
            out.extend(self._activate(ks, ts))
            return out
        self._save(ks)
        self._push(ts + delay, "delay", ks.ident)
        return out

    def _activate(self, ks: _KeyState, ts: int) -> list[Transition]:
        assert ks.alert_id is not None and ks.last is not None
        ks.phase = "active"
        self._save(ks)
        transition = self.store.set_state(ks.alert_id, "active", ts, value=ks.last.value, limit=ks.last.limit)
        self._notify(transition, "fired", 0)
        self._schedule_alert(ks.alert_id, ts, transition.severity, 0)
        return [transition]

    def _cancel(self, ks: _KeyState, ts: int) -> list[Transition]:
        assert ks.alert_id is not None and ks.last is not None
        alert = self.store.alert(ks.alert_id)
        back = "cleared" if alert and alert["fire_count"] > 0 else "cancelled"
        ks.phase = "normal"
        self._save(ks)
        return [self.store.set_state(ks.alert_id, back, ts, value=ks.last.value, limit=ks.last.limit,
                                     note="condition ended before the delay")]

    def _clear(self, ks: _KeyState, ts: int) -> list[Transition]:
        assert ks.alert_id is not None and ks.last is not None
        ks.phase = "normal"
        self._save(ks)
        alert = self.store.alert(ks.alert_id)
        out = [self.store.set_state(ks.alert_id, "cleared", ts, value=ks.last.value, limit=ks.last.limit)]
        if alert is not None and alert["state"] == "acknowledged":
            out.append(self.store.set_state(ks.alert_id, "closed", ts, note="cleared after acknowledgement"))
        self._notify(out[0], "recovered", 0)
        return out

    def _fire_timer(self) -> list[Transition]:
        due, _, kind, ref = heapq.heappop(self._timers)
        if kind in ("repeat", "escalate"):
            self._fire_notification_timer(due, kind, ref)
            return []
        ks = self._states.get(ref)
        if ks is None:
            return []
        if kind == "delay" and ks.phase == "pending" and ks.since_ms + ks.wait_ms == due:
            return self._activate(ks, due)
        if kind == "clear" and ks.phase == "clearing" and ks.since_ms + ks.wait_ms == due:
            return self._clear(ks, due)
        if kind == "hold" and ks.held_until == due:
            ks.held_until = None
            self._save(ks)
            if ks.last is not None and ks.last.state and ks.phase == "normal":
                log.info("maintenance ended for %s with the condition still violated", ks.ident)
                return self._start(ks, ks.last, due)
        return []

    def _sync_manual_clears(self) -> list[Transition]:
        out: list[Transition] = []
        for alert in self.store.manual_clears():
            self.store.set_manual_clear(alert["id"], False)
            ks = self._states.get(alert["ident"])
            if ks is None or ks.alert_id != alert["id"] or ks.phase not in ("active", "clearing"):
                continue
            ks.phase = "normal"
            self._save(ks)
            if ks.last is not None and ks.last.state:
                log.warning("alert %s cleared by hand while %s still holds: raising it again", alert["id"], ks.ident)
                now = self._clock or alert["cleared_ms"]
                out.extend(self._start(ks, dataclasses.replace(ks.last, ts_ms=now), now))
        return out

    # -- notifications ---------------------------------------------------------------------------
    def _notify(self, transition: Transition, kind: str, level: int) -> None:
        if transition.severity != "critical":
            until = self.store.maintenance_until(transition.room, transition.ts_ms)
            if until is not None:
                log.info("alert %s %s: no notification, room %s in maintenance until %s",
                         transition.alert, kind, transition.room, to_iso(until))
                return
        payload = json.loads(transition.to_json(self.tz))
        route = f"{transition.severity}/{transition.room}"
        request = self.store.enqueue_notification(transition.alert, kind, transition.severity, route, level,
                                                  transition.ts_ms, payload)
        self.store.mark_notified(transition.alert, transition.ts_ms, level=level if kind == "escalate" else None)
        log.info("notification request %d: alert %d %s level %d (%s) %s", request, transition.alert, kind, level,
                 transition.severity, transition.title)

    def _schedule_alert(self, alert_id: int, active_ms: int, severity: str, level: int,
                        notified_ms: int | None = None) -> None:
        repeat = self.settings.notify.repeat_s.get(severity, 0.0)  # type: ignore[call-overload]
        if repeat > 0:
            self._push((notified_ms or active_ms) + int(repeat * 1000), "repeat", str(alert_id))
        steps = self.settings.notify.escalation_after_s
        if level < len(steps) and severity in self.settings.notify.escalate:
            self._push(active_ms + int(steps[level] * 1000), "escalate", f"{alert_id}:{level + 1}")

    def _schedule_notifications(self) -> None:
        for alert in self.store.alerts(active_only=True):
            if alert["state"] == "active" and alert["active_ms"] is not None:
                self._schedule_alert(alert["id"], alert["active_ms"], alert["severity"], alert["escalation_level"],
                                     alert["notified_ms"])

    def _fire_notification_timer(self, due: int, kind: str, ref: str) -> None:
        alert_id, _, level_text = ref.partition(":")
        alert = self.store.alert(int(alert_id))
        if alert is None or alert["state"] != "active":
            return  # acknowledged, cleared or closed: timers stop
        transition = Transition(
            ts_ms=due, alert=alert["id"], rule=alert["rule"], severity=alert["severity"], room=alert["room"],
            sensor=alert["sensor"], quantity=alert["quantity"], state="active", value=alert["value"],
            limit=alert["limit_value"], detail=alert["detail"], title=alert["title_zh"],
        )
        if kind == "repeat":
            repeat_ms = int(self.settings.notify.repeat_s.get(alert["severity"], 0.0) * 1000)  # type: ignore[call-overload]
            if alert["notified_ms"] is not None and alert["notified_ms"] + repeat_ms > due:
                return  # superseded by a later notification
            if self._started_ms is not None and due >= self._started_ms:  # not a backlog of the downtime
                self._notify(transition, "repeat", alert["escalation_level"])
            else:
                self.store.mark_notified(alert["id"], due)
            self._push(due + repeat_ms, "repeat", alert_id)
            return
        level = int(level_text)
        if alert["escalation_level"] >= level:
            return
        self._notify(transition, "escalate", level)
        self._schedule_alert(alert["id"], alert["active_ms"], alert["severity"], level, due)

    # -- restart ---------------------------------------------------------------------------------
    def _load_states(self) -> None:
        for row in self.store.conditions():
            last = Condition(**json.loads(row["last"])) if row["last"] else None
            ks = _KeyState(row["ident"], row["phase"], row["since_ms"], row["wait_ms"], row["alert_id"],
                           row["held_until"], last)
            self._states[ks.ident] = ks
            if ks.phase == "pending":
                self._push(ks.since_ms + ks.wait_ms, "delay", ks.ident)
            elif ks.phase == "clearing":
                self._push(ks.since_ms + ks.wait_ms, "clear", ks.ident)
            if ks.held_until is not None:
                self._push(ks.held_until, "hold", ks.ident)


def acknowledge(store: AlertStore, alert_id: int, by: str, comment: str, ts_ms: int) -> list[Transition]:
    """Acknowledge an alert in the store (usable without a running engine, e.g. from the CLI).

    Active → acknowledged; cleared → closed; pending or already acknowledged: the comment is appended.

    Raises:
        KeyError: unknown alert id.
        ValueError: empty name, or the alert is closed or cancelled.
    """
    if not by.strip():
        raise ValueError("an acknowledgement needs the name of who acknowledges (--by)")
    with store.tx():
        alert = store.alert(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        if alert["state"] in ("closed", "cancelled"):
            raise ValueError(f"alert {alert_id} is {alert['state']}; nothing to acknowledge")
        out: list[Transition] = []
        if alert["state"] == "active":
            out.append(store.set_state(alert_id, "acknowledged", ts_ms, by=by, note=comment))
        elif alert["state"] == "cleared":
            out.append(store.set_state(alert_id, "closed", ts_ms, by=by, note=comment))
        store.add_comment(alert_id, ts_ms, by, comment)
        store.audit(ts_ms, "ack", by, f"alert:{alert_id}", {"state": alert["state"], "comment": comment})
    return out


def clear_by_hand(store: AlertStore, alert_id: int, by: str, comment: str, ts_ms: int) -> list[Transition]:
    """Clear an active or acknowledged alert by hand; the engine re-checks its condition.

    Raises:
        KeyError: unknown alert id.
        ValueError: the alert is not active or acknowledged.
    """
    with store.tx():
        alert = store.alert(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        if alert["state"] not in ("active", "acknowledged"):
            raise ValueError(f"alert {alert_id} is {alert['state']}; only active alerts can be cleared by hand")
        out = [store.set_state(alert_id, "cleared", ts_ms, by=by, note=f"cleared by hand: {comment}")]
        if alert["state"] == "acknowledged":
            out.append(store.set_state(alert_id, "closed", ts_ms, by=by, note="cleared by hand after acknowledgement"))
        store.add_comment(alert_id, ts_ms, by, comment)
        store.set_manual_clear(alert_id, True)
    return out
