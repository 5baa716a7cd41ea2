"""Notification requests: what the engine asks the channels to send, and when to repeat or escalate.

A request (``fired``, ``repeat``, ``escalate``, ``recovered``) is a row of ``notification_queue`` with
status ``pending``; the channels drain it. Repeats and escalations are timers on the engine's queue that
stop by themselves once the alert is no longer active (acknowledged, cleared or closed), or once its sensor is
no longer configured (smoke, leak and critical alerts excepted: they remind until cleared by hand). Maintenance
windows silence every request of an alert that is not exempt (smoke, leak, critical); an escalation falling
due inside a window waits for its end instead of being used up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from zoneinfo import ZoneInfo

from alerts._timers import Timer, TimerQueue
from alerts.model import Transition, is_exempt
from alerts.settings import AlertSettings
from alerts.store import AlertStore
from archmon.timeutil import to_iso

__all__ = ["NotificationRequests"]

log = logging.getLogger(__name__)


class NotificationRequests:
    """Queues notification requests and runs the repeat and escalation timers.

    Args:
        store: the alert store (queue and alert rows).
        settings: the site's alert settings (``notify``).
        tz: the site's zone (for the payload's timestamps).
        timers: the engine's timer queue.
    """

    def __init__(self, store: AlertStore, settings: AlertSettings, tz: ZoneInfo, timers: TimerQueue,
                 sensors: Collection[str] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.tz = tz
        self.timers = timers
        self.sensors = sensors  # the configured sensors (None: any); reminders stop for a removed one's alerts
        self._told: set[int] = set()
        self.started_ms: int | None = None  # the engine's first time: repeats before it are downtime backlog

    def resume(self, now_ms: int) -> None:
        """At the engine's first notion of time, re-arm the timers of every active alert."""
        self.started_ms = now_ms
        for alert in self.store.alerts(active_only=True):
            if alert["state"] == "active" and alert["active_ms"] is not None:
                self.schedule(alert["id"], alert["active_ms"], alert["severity"], alert["escalation_level"],
                              alert["notified_ms"])

    def request(self, transition: Transition, kind: str, level: int = 0) -> None:
        """Queue one request for a transition (unless its room is in maintenance and it is not exempt)."""
        if not is_exempt(transition.rule, transition.severity):
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

    def fired(self, transition: Transition) -> None:
        """An alert became active: request ``fired`` and arm its repeat and first escalation."""
        self.request(transition, "fired")
        self.schedule(transition.alert, transition.ts_ms, transition.severity, 0)

    def schedule(self, alert_id: int, active_ms: int, severity: str, level: int,
                 notified_ms: int | None = None) -> None:
        """Arm the next repeat and the escalation to ``level + 1`` of an active alert."""
        repeat = self.settings.notify.repeat_s.get(severity, 0.0)  # type: ignore[call-overload]
        if repeat > 0:
            self.timers.push((notified_ms or active_ms) + int(repeat * 1000), "repeat", str(alert_id))
        steps = self.settings.notify.escalation_after_s
        if level < len(steps) and severity in self.settings.notify.escalate:
            self.timers.push(active_ms + int(steps[level] * 1000), "escalate", f"{alert_id}:{level + 1}")

    def _removed(self, alert: dict) -> bool:
        """An alert of a sensor the configuration no longer has gets no repeats or escalations (no reading can
        clear it: it waits for a clear by hand), except smoke, leak and critical ones, which go on reminding."""
        sensor = alert["sensor"]
        if self.sensors is None or not alert["room"] or sensor is None or sensor in self.sensors:
            return False
        if is_exempt(alert["rule"], alert["severity"]):
            return False
        if alert["id"] not in self._told:
            self._told.add(alert["id"])
            log.warning("alert %s (%s of %s): the sensor is no longer configured; no more repeats or escalations "
                        "(clear it by hand: archmon alerts clear %s)", alert["id"], alert["rule"], sensor, alert["id"])
        return True

    def window_ended(self, room: str, end_ms: int) -> None:
        """A maintenance window of ``room`` was ended early at ``end_ms``: escalations it held back (waiting
        for its original end) fall due now."""
        steps = self.settings.notify.escalation_after_s
        for alert in self.store.alerts(active_only=True):
            if alert["state"] != "active" or alert["room"] != room or alert["active_ms"] is None:
                continue
            level = alert["escalation_level"]
            if level >= len(steps) or alert["severity"] not in self.settings.notify.escalate:
                continue
            if alert["active_ms"] + int(steps[level] * 1000) <= end_ms:
                self.timers.push(end_ms, "escalate", f"{alert['id']}:{level + 1}")

    def on_timer(self, timer: Timer) -> None:
        """A ``repeat`` or ``escalate`` timer fell due."""
        due, kind, ref = timer
        alert_id, _, level_text = ref.partition(":")
        alert = self.store.alert(int(alert_id))
        if alert is None or alert["state"] != "active":
            return  # acknowledged, cleared or closed: timers stop
        if self._removed(alert):
            return
        transition = Transition(
            ts_ms=due, alert=alert["id"], rule=alert["rule"], severity=alert["severity"], room=alert["room"],
            sensor=alert["sensor"], quantity=alert["quantity"], state="active", value=alert["value"],
            limit=alert["limit_value"], detail=alert["detail"], title=alert["title_zh"],
        )
        if kind == "repeat":
            repeat_ms = int(self.settings.notify.repeat_s.get(alert["severity"], 0.0) * 1000)  # type: ignore[call-overload]
            if alert["notified_ms"] is not None and alert["notified_ms"] + repeat_ms > due:
                return  # superseded by a later notification
            if self.started_ms is not None and due >= self.started_ms:  # not a backlog of the downtime
                self.request(transition, "repeat", alert["escalation_level"])
            else:
                self.store.mark_notified(alert["id"], due)
            self.timers.push(due + repeat_ms, "repeat", alert_id)
            return
        level = int(level_text)
        if alert["escalation_level"] >= level:
            return
        steps = self.settings.notify.escalation_after_s
        if level <= len(steps) and due < alert["active_ms"] + int(steps[level - 1] * 1000):
            return  # armed by an earlier firing: the alert fired again since, its own timer counts from then
        if not is_exempt(alert["rule"], alert["severity"]):
            until = self.store.maintenance_until(alert["room"], due)
            if until is not None:  # silenced: the level is not used up, it falls due when the window ends
                self.timers.push(until, "escalate", ref)
                return
        self.request(transition, "escalate", level)
        self.schedule(alert["id"], alert["active_ms"], alert["severity"], level, due)
