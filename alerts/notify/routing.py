"""From a notification request to deliveries: which routes take it, which contacts, which channels, when.

- A route takes a request when its severities, rooms and rules include the request's (empty: all) and the
  request's time falls in the route's ``when`` and ``hours``. Every route that takes it sends; a
  (channel, recipient) reached through two routes gets one delivery.
- Levels: ``fired`` goes to level 0; ``escalate`` to level N only (the new people); ``repeat`` to levels
  0..N (everyone responsible so far is reminded); ``recovered`` only to whoever was told of the alert (an
  alarm or reminder went out, or is going out, to them), on channels and for contacts still configured —
  a recovery of an alarm nobody received would be news of something they never heard of. A level past a
  route's last uses its last.
- Quiet hours hold requests until the end of the quiet hours, except critical ones and smoke and leak
  alerts (whatever their configured severity), which never wait.
- Grouping: requests of one route within ``group_window_s`` share one message per recipient, except
  severities in ``group_exempt`` and smoke and leak alerts, which go at once.
- A "notification channel down" alert is not sent through the channel it is about.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from alerts.model import EXEMPT_RULES, is_exempt
from alerts.notify.channels import CHANNELS
from alerts.notify.outbox import NewDelivery
from alerts.notify.settings import ContactConfig, NotifyPlan, RouteConfig, TimeRange
from alerts.settings import WorkingHours

__all__ = ["Expansion", "Router"]


@dataclass(frozen=True, slots=True)
class Expansion:
    """The deliveries of one request and the request's new status (``queued`` or ``unrouted``)."""

    deliveries: list[NewDelivery]
    status: str
    routes: tuple[str, ...]


class Router:
    """Expands requests by the ``[notify]`` routes.

    Args:
        plan: the validated ``[notify]`` table.
        tz: the site's zone (time of day, quiet hours).
        working_hours: the site's working hours (routes with ``when``).
        language: the site's default message language.
        previous: alert id → rows (channel, recipient, contact, mentions, language, route) already sent.
    """

    def __init__(self, plan: NotifyPlan, tz: ZoneInfo, working_hours: WorkingHours, language: str,
                 previous: Callable[[int], list[Any]]) -> None:
        self.plan = plan
        self.tz = tz
        self.working_hours = working_hours
        self.language = plan.config.language or language
        self.previous = previous
        self.contacts = {c.name: c for c in plan.config.contacts}

    def routes_for(self, severity: str, room: str, rule: str, moment: dt.datetime) -> list[RouteConfig]:
        """The routes that take a request."""
        out = []
        for route in self.plan.config.routes:
            if severity not in route.severities or (route.rooms and room not in route.rooms):
                continue
            if route.rules and rule not in route.rules:
                continue
            working = self.working_hours.is_working_time(moment)
            if (route.when == "working_hours" and not working) or (route.when == "off_hours" and working):
                continue
            if route.hours and not TimeRange.parse(route.hours).contains(moment):
                continue
            out.append(route)
        return out

    def expand(self, request: dict[str, Any], now_ms: int) -> Expansion:
        """The deliveries of one ``notification_queue`` row."""
        payload = json.loads(request["payload"])
        severity, kind, level = request["severity"], request["transition"], int(request["level"])
        rule, room = str(payload.get("rule", "")), str(payload.get("room", ""))
        moment = dt.datetime.fromtimestamp(now_ms / 1000, self.tz)
        routes = self.routes_for(severity, room, rule, moment)
        window_ms = int(self.plan.config.group_window_s * 1000)
        grouped = window_ms > 0 and severity not in self.plan.config.group_exempt and rule not in EXEMPT_RULES
        skip_channel = payload.get("sensor") if rule == "channel" else None
        out: dict[tuple[str, str], NewDelivery] = {}
        if kind == "recovered":
            deliveries = self._told(request, skip_channel, grouped, now_ms, window_ms)
            return Expansion(deliveries, "queued" if deliveries else "unrouted", tuple(r.name for r in routes))
        for route in routes:
            due = now_ms
            if route.quiet_hours and not is_exempt(rule, severity):
                quiet = TimeRange.parse(route.quiet_hours)
                if quiet.contains(moment):
                    due = int(quiet.end_after(moment).timestamp() * 1000)
            group_key = f"{route.name}:alert" if grouped else None
            for target in self._targets(route, kind, level):
                if target.channel == skip_channel:
                    continue
                delivery = self._delivery(route, target, group_key, due, window_ms)
                if delivery is not None:
                    out.setdefault((delivery.channel, delivery.recipient), delivery)
        deliveries = list(out.values())
        return Expansion(deliveries, "queued" if deliveries else "unrouted", tuple(r.name for r in routes))

    def _told(self, request: dict[str, Any], skip_channel: str | None, grouped: bool, now_ms: int,
              window_ms: int) -> list[NewDelivery]:
        """The recovery's deliveries: whoever was told of the alert, whatever the routes say now."""
        if request["alert_id"] is None:
            return []
        out = []
        for row in self.previous(int(request["alert_id"])):
            if row["channel"] not in self.plan.channel_types or row["channel"] == skip_channel:
                continue
            if row["contact"] is not None and row["contact"] not in self.contacts:
                continue  # removed from the configuration since
            group_key = f"{row['route']}:recovered" if grouped else None
            out.append(NewDelivery(row["channel"], row["recipient"], row["contact"], tuple(json.loads(row["mentions"])),
                                   row["language"], row["route"], group_key, now_ms, window_ms))
        return out

    def _targets(self, route: RouteConfig, kind: str, level: int) -> list[_Target]:
        last = len(route.levels) - 1
        if kind == "escalate":
            levels = [route.levels[min(level, last)]]
        elif kind == "repeat":
            levels = route.levels[: min(level, last) + 1]
        else:
            levels = [route.levels[0]]
        targets: list[_Target] = []
        for lvl in levels:
            contacts = tuple(self.contacts[name] for name in lvl.contacts if name in self.contacts)
            for channel in lvl.channels:
                kind_cls = CHANNELS.get(self.plan.channel_types.get(channel, ""))
                if kind_cls is None:
                    continue
                if kind_cls.address_field is None:
                    targets.append(_Target(channel, None, contacts))  # a group robot: once, mentioning them
                else:
                    targets += [_Target(channel, c) for c in contacts]
        return targets

    def _delivery(self, route: RouteConfig, target: _Target, group_key: str | None, due: int,
                  window_ms: int) -> NewDelivery | None:
        channel, contact = target.channel, target.contact
        kind_cls = CHANNELS[self.plan.channel_types[channel]]
        if contact is None:
            field = getattr(kind_cls, "mention_by", "phone")
            found = (c.chat.get(field) if field not in ("phone", "email") else getattr(c, field)
                     for c in target.mention)
            return NewDelivery(channel, channel, None, tuple(m for m in found if m), self.language, route.name,
                               group_key, due, window_ms)
        address = getattr(contact, kind_cls.address_field or "", None)
        if not address:
            return None
        return NewDelivery(channel, address, contact.name, (), contact.language or self.language, route.name,
                           group_key, due, window_ms)


@dataclass(frozen=True, slots=True)
class _Target:
    """One channel of a level and a contact on it (None for a group robot, which mentions ``mention``)."""

    channel: str
    contact: ContactConfig | None
    mention: tuple[ContactConfig, ...] = ()
