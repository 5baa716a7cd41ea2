"""Messages people read, in Chinese or English: one alert, a group of alerts, a recovery.

A message says what (the alert's title), where (site, room, sensor), the value against the limit, since
when (the site's zone, with its offset), the severity, the alert id and how to acknowledge. Titles and the
subject are one line each, whatever an alert's detail holds (a provider's multi-line error page in a
"channel down" alert): an e-mail subject with a line break cannot even be built. A group lists each alert
once (the newest delivery of it) and counts alerts, not deliveries. The SMS form is kept within
``sms_max_parts`` parts when it can be, the possible-duplicate mark included: a group lists the alerts that
fit and counts the rest; a single alert drops the site line, then shortens its title.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from alerts.messages import UNITS, title
from alerts.model import Condition
from alerts.notify.channels import OutgoingMessage
from alerts.notify.outbox import Delivery
from archmon.sms_pdu import split_text

__all__ = ["AlertFacts", "Renderer", "local_time", "one_line"]

SEVERITY_NAMES = {"critical": ("紧急", "CRITICAL"), "major": ("严重", "MAJOR"), "minor": ("一般", "MINOR"),
                  "warning": ("提示", "WARNING")}
_KIND = {
    "fired": ("【告警·{sev}】", "[ALERT {sev}]"),
    "repeat": ("【告警·{sev}·未确认】", "[ALERT {sev}, not acknowledged]"),
    "escalate": ("【告警升级·{sev}】", "[ESCALATED {sev}]"),
    "recovered": ("【已恢复】", "[RECOVERED]"),
}
_NUMERIC = frozenset({"temperature", "humidity", "light", "uv", "battery"})
_PLURAL = {"stale": ("{n} 个传感器离线", "{n} sensors offline")}


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (line breaks included) as one space."""
    return " ".join(text.split())


def local_time(ts_ms: int, tz: ZoneInfo) -> str:
    """``2026-03-01 03:04 +08:00``: the site's zone, with its offset."""
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, tz)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What a message says about one alert."""

    id: int
    kind: str
    severity: str
    rule: str
    room: str
    sensor: str | None
    quantity: str | None
    value: float | None
    limit: float | None
    title_zh: str
    title_en: str
    since_ms: int
    ts_ms: int
    level: int

    def to_json(self, tz: ZoneInfo) -> dict[str, Any]:
        """The webhook form."""
        return {"id": self.id, "kind": self.kind, "severity": self.severity, "rule": self.rule, "room": self.room,
                "sensor": self.sensor, "quantity": self.quantity, "value": self.value, "limit": self.limit,
                "title_zh": self.title_zh, "title_en": self.title_en, "since": local_time(self.since_ms, tz),
                "ts": local_time(self.ts_ms, tz), "level": self.level}


class Renderer:
    """Builds the messages of deliveries.

    Args:
        site: the site's name; tz: its zone; room_names: room id → (name_zh, name_en).
        alert_row: alert id → the alert engine's row (for since when), or None.
        sms_max_parts: the SMS length goal.
    """

    def __init__(self, site: str, tz: ZoneInfo, room_names: Mapping[str, tuple[str, str]],
                 alert_row: Callable[[int], dict[str, Any] | None], sms_max_parts: int = 2) -> None:
        self.site = site
        self.tz = tz
        self.room_names = dict(room_names)
        self.alert_row = alert_row
        self.sms_max_parts = sms_max_parts

    def facts(self, delivery: Delivery) -> AlertFacts:
        """The facts of one delivery's alert (payload of the request, plus the alert row's start time)."""
        p = delivery.payload
        ts = _parse_ts(p.get("ts"))
        cond = Condition(rule=str(p.get("rule", "")), key="", room=str(p.get("room", "")), sensor=p.get("sensor"),
                         quantity=p.get("quantity"), state=True, ts_ms=ts, value=p.get("value"), limit=p.get("limit"),
                         detail=str(p.get("detail", "")))
        zh, en = _channel_titles(cond) if cond.rule == "channel" else title(cond, "zh", self.room_names)
        row = self.alert_row(delivery.alert_id) if delivery.alert_id is not None else None
        since = (row.get("active_ms") or row.get("opened_ms")) if row else None
        return AlertFacts(delivery.alert_id or 0, delivery.kind, delivery.severity, cond.rule, cond.room, cond.sensor,
                          cond.quantity, cond.value, cond.limit, one_line(zh), one_line(en), int(since or ts), ts,
                          delivery.level)

    def render(self, batch: list[Delivery]) -> OutgoingMessage:
        """The message carrying a batch (one delivery, or a group)."""
        if batch[0].kind in ("reply", "test"):
            text = str(batch[0].payload.get("text", ""))
            return OutgoingMessage(subject=one_line(str(batch[0].payload.get("subject", "archmon"))), text=text,
                                   short=text)
        zh = batch[0].language != "en"
        newest = {d.alert_id: d for d in sorted(batch, key=lambda d: d.id)}  # each alert once: its newest delivery
        facts = [self.facts(d) for d in sorted(newest.values(), key=lambda d: d.id)]
        duplicate = any(d.possible_duplicate for d in batch)
        mark = ("（可能重复发送）" if zh else " (possible duplicate)") if duplicate else ""
        if len(facts) == 1:
            subject, lines, footer = self._single(facts[0], zh)
            short = self._fit([one_line(subject + mark), *lines], footer, zh)
        else:
            subject, lines, footer = self._group(facts, zh)
            short = self._fit([one_line(subject + mark), *lines], footer, zh, counted=len(facts))
        subject = one_line(subject + mark)
        site_line = f"{'站点' if zh else 'Site'}: {self.site}"
        text = "\n".join([subject, *lines, site_line, *footer])
        ids = tuple(f.id for f in facts)
        return OutgoingMessage(
            subject=subject, text=text, short=short,
            html=self._html(subject, lines, site_line, footer),
            data={"site": self.site, "alerts": [f.to_json(self.tz) for f in facts], "possible_duplicate": duplicate,
                  "language": "zh" if zh else "en"},
            alert_ids=ids)

    # -- pieces ------------------------------------------------------------------------------------
    def _where(self, f: AlertFacts, zh: bool) -> str:
        name_zh, name_en = self.room_names.get(f.room, ("", ""))
        room = (name_zh if zh else name_en) or f.room
        return " ".join(x for x in (room, f.sensor or "") if x)

    def _value(self, f: AlertFacts, zh: bool) -> str | None:
        if f.value is None or f.quantity not in _NUMERIC:
            return None
        unit = UNITS.get(f.quantity or "", "")
        value = f"{f.value:g} {unit}".strip()
        if f.limit is None:
            return f"{'当前' if zh else 'Value'} {value}"
        limit = f"{f.limit:g} {unit}".strip()
        return f"当前 {value}（限值 {limit}）" if zh else f"Value {value} (limit {limit})"

    def _single(self, f: AlertFacts, zh: bool) -> tuple[str, list[str], list[str]]:
        sev = SEVERITY_NAMES.get(f.severity, (f.severity, f.severity.upper()))[0 if zh else 1]
        head = _KIND.get(f.kind, _KIND["fired"])[0 if zh else 1].format(sev=sev)
        name = f.title_zh if zh else f.title_en
        subject = f"{head}#{f.id} {name}" if zh else f"{head} #{f.id} {name}"
        lines = [x for x in [self._value(f, zh)] if x]
        if f.kind == "recovered":
            lines.append(f"{'恢复于' if zh else 'Recovered'} {local_time(f.ts_ms, self.tz)}")
            lines.append(f"{'开始于' if zh else 'Since'} {local_time(f.since_ms, self.tz)}")
            return subject, lines, []
        lines.append(f"{'开始于' if zh else 'Since'} {local_time(f.since_ms, self.tz)}")
        if f.kind == "escalate":
            lines.append(f"未确认，已升级至第 {f.level + 1} 级" if zh
                         else f"Not acknowledged: escalated to level {f.level + 1}")
        footer = [f"回复 1 或“确认 {f.id}”确认" if zh else f"Reply 1 or \"ACK {f.id}\" to acknowledge"]
        return subject, lines, footer

    def _group(self, facts: list[AlertFacts], zh: bool) -> tuple[str, list[str], list[str]]:
        rooms = {f.room for f in facts}
        rules = {f.rule for f in facts}
        recovered = all(f.kind == "recovered" for f in facts)
        n = len(facts)
        if len(rules) == 1 and next(iter(rules)) in _PLURAL and not recovered:
            what = _PLURAL[next(iter(rules))][0 if zh else 1].format(n=n)
        elif recovered:
            what = f"{n} 条告警已恢复" if zh else f"{n} alerts recovered"
        else:
            what = f"{n} 条告警" if zh else f"{n} alerts"
        where = f"，涉及 {len(rooms)} 个库房" if zh else f" in {len(rooms)} room{'s' if len(rooms) != 1 else ''}"
        order = list(SEVERITY_NAMES)
        worst = min((f.severity for f in facts), key=lambda s: order.index(s) if s in order else len(order))
        sev = SEVERITY_NAMES.get(worst, (worst, worst.upper()))[0 if zh else 1]
        head = "【已恢复】" if recovered else (f"【告警·{sev}】" if zh else f"[ALERT {sev}] ")
        subject = f"{head}{what}{where}" + ("：" if zh else ":")
        lines = [f"#{f.id} {f.title_zh if zh else f.title_en}" for f in facts]
        lines.append(f"{'最早' if zh else 'First'} {local_time(min(f.since_ms for f in facts), self.tz)}")
        footer = [] if recovered else ["回复 1 确认以上全部" if zh else "Reply 1 to acknowledge all of them"]
        return subject, lines, footer

    def _fit(self, lines: list[str], footer: list[str], zh: bool, counted: int = 0) -> str:
        """The SMS text: all lines if they fit ``sms_max_parts``, else fewer (a group says how many it left out)."""
        def parts(text: str) -> int:
            return len(split_text(text).parts)

        text = "\n".join([*lines, *footer])
        if parts(text) <= self.sms_max_parts:
            return text
        body = list(lines)
        if counted:
            listed = body[1:-1]
            while listed:
                listed.pop()
                rest = counted - len(listed)
                more = f"…等另 {rest} 条" if zh else f"…and {rest} more"
                text = "\n".join([body[0], *listed, more, *footer])
                if parts(text) <= self.sms_max_parts:
                    return text
            body = [body[0], f"…共 {counted} 条" if zh else f"…{counted} in all"]
        text = "\n".join([*body, *footer])
        while parts(text) > self.sms_max_parts and len(body[0]) > 10:
            body[0] = body[0][: max(10, len(body[0]) - 10)] + "…"
            text = "\n".join([*body, *footer])
        return text

    @staticmethod
    def _html(subject: str, lines: list[str], site: str, footer: list[str]) -> str:
        items = "".join(f"<li>{html.escape(x)}</li>" for x in lines)
        rest = "".join(f"<p>{html.escape(x)}</p>" for x in [site, *footer])
        return f"<html><body><h2>{html.escape(subject)}</h2><ul>{items}</ul>{rest}</body></html>"


def _parse_ts(text: Any) -> int:
    if isinstance(text, str):
        try:
            return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    return 0


def _channel_titles(cond: Condition) -> tuple[str, str]:
    name = cond.sensor or ""
    zh = f"通知通道 {name} 故障：{cond.detail}".strip("：")
    return zh, f"notification channel {name} down: {cond.detail}".strip(": ")
