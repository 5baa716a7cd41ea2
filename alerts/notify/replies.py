"""Acknowledging alerts by replying to the SMS: what a reply means, who may acknowledge what, the answer.

A reply from a known contact's number acknowledges alerts, with the comment "acknowledged by SMS from
<name>" (audited by the alert store like any acknowledgement), which stops their repeats:

- ``1``, ``确认``, ``ACK``, ``OK`` or ``收到`` alone: the alerts of the newest alert SMS sent to that number
  (all of a grouped message);
- ``确认 1234``, ``ACK 1234``, ``1 1234``, ``ack #1234, 1235``: those alerts — each only if an alarm or
  reminder of it was sent to that contact (on any channel); any other id is refused by name;
- the id alone (``1234``): the same, except that a bare number that is no alert sent to that contact is read
  as unreadable and answered with the help text (a double-tapped ``11`` must not acknowledge alert #11).

Who: the sender must be a phone number. A sender *name* (an alphanumeric originating address, which any
bulk-SMS service lets anyone set, ``13800000001`` included) never acknowledges anything and gets no answer.

Full-width characters are read as their ASCII forms (``１２３４``, ``ＡＣＫ``). A reply from an unknown number
or one that says nothing of the above is logged and answered with a short help text, at most once per
number per ``help_reply_interval_s`` and at most ``help_replies_per_hour`` in all (so an operator's automatic
notices, or a flood from many numbers, cannot start an SMS loop). Answers are in the contact's language.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from alerts.notify.channels import IncomingSms
from alerts.notify.outbox import Outbox
from alerts.notify.settings import ContactConfig, NotifyPlan, normalise_phone

__all__ = ["HELP_TEXT", "UNKNOWN_TEXT", "Acknowledge", "Reply", "ReplyHandler", "parse_reply"]

log = logging.getLogger(__name__)

Acknowledge = Callable[[int, str, str], Any]
"""``acknowledge(alert_id, by, comment)``; raises KeyError (unknown) or ValueError (closed)."""

_WORDS = ("确认", "ack", "ok", "收到", "1")
_KEYWORD = r"(?:确认|ack|ok|收到)\s*[#:：,，]?\s*|1[\s#:：,，]+"
_IDS = re.compile(rf"^({_KEYWORD})?((?:#?\d+[\s,，、]*)+)$")
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{2,23}")

HELP_TEXT = {
    "zh": "archmon：回复 1 确认最近的告警，或“确认 告警号”（如 确认 1234）。",
    "en": "archmon: reply 1 to acknowledge the latest alert, or \"ACK <id>\" (e.g. ACK 1234).",
}
UNKNOWN_TEXT = {
    "zh": "archmon：本号码未登记为值班联系人，无法确认告警。",
    "en": "archmon: this number is not a registered contact; it cannot acknowledge alerts.",
}
_PROBLEM = {"not_sent": ("未发给您，不能确认", "was not sent to you"), "unknown": ("无此告警", "no such alert"),
            "closed": ("已关闭", "is closed"), "cancelled": ("已取消", "was cancelled"),
            "other": ("无法确认", "cannot be acknowledged")}
HOUR_MS = 3_600_000


class _Refused(NamedTuple):
    alert_id: int
    why: str  # a key of _PROBLEM


@dataclass(frozen=True, slots=True)
class Reply:
    """What a reply asks: ``ack_last`` (the newest alert SMS), ``ack`` (``ids``) or ``unknown``; ``bare``: the
    ids came without a keyword (``1234`` alone)."""

    kind: Literal["ack_last", "ack", "unknown"]
    ids: tuple[int, ...] = ()
    bare: bool = False


def parse_reply(text: str) -> Reply:
    """Read a reply SMS."""
    normal = unicodedata.normalize("NFKC", text).strip().lower().rstrip("。.!！")
    if normal in _WORDS:
        return Reply("ack_last")
    match = _IDS.match(normal)
    if match:
        ids = tuple(int(n) for n in re.findall(r"\d+", match.group(2)))
        return Reply("ack", ids, bare=match.group(1) is None)
    return Reply("unknown")


class ReplyHandler:
    """Acts on received SMS (see the module docstring).

    Args:
        plan: the ``[notify]`` table in force (contacts; the help-reply limits).
        outbox: where the answers are queued and the received SMS kept.
        acknowledge: how a reply acknowledges (None: replies are only logged and answered).
        language: the site's default language (answers to unknown numbers).
    """

    def __init__(self, plan: NotifyPlan, outbox: Outbox, acknowledge: Acknowledge | None, language: str) -> None:
        self.plan = plan
        self.outbox = outbox
        self.acknowledge = acknowledge
        self.language = language
        self._capped_warned_ms = 0

    def handle(self, channel: str, sms: IncomingSms, now_ms: int) -> str:
        """Act on one received SMS; returns the action taken (``ack``, ``ack_failed``, ``help``, ``ignored``)."""
        if sms.number_type == "alphanumeric" or not _PHONE.fullmatch(sms.number.strip()):
            log.warning("SMS on %s from the sender name %r: not a phone number, so it acknowledges nothing: %r",
                        channel, sms.number, sms.text[:160])
            self._record(channel, sms, None, now_ms, "ignored", "sender is a name, not a phone number")
            return "ignored"
        wanted = normalise_phone(sms.number)
        contact = next((c for c in self.plan.config.contacts if c.phone and normalise_phone(c.phone) == wanted), None)
        language = (contact.language if contact else None) or self.language
        reply = parse_reply(sms.text)
        if contact is None:
            return self._help(channel, sms, None, "unknown sender", language, now_ms)
        if reply.kind == "unknown":
            return self._help(channel, sms, contact, "unreadable reply", language, now_ms)
        if reply.kind == "ack_last":
            ids = self.outbox.last_alerts_sent_to(channel, [contact.phone or sms.number, sms.number])
            allowed = set(ids)
        else:
            ids = list(dict.fromkeys(reply.ids))
            allowed = self.outbox.alerts_sent_to(contact.name, [contact.phone or "", *contact.chat.values()], ids)
            if reply.bare and not allowed:
                return self._help(channel, sms, contact, f"bare number(s) {ids}: no alert sent to this contact",
                                  language, now_ms)
        done: list[int] = []
        problems: list[_Refused] = []
        for alert_id in ids:
            problem = "not_sent" if alert_id not in allowed else self._ack(alert_id, contact)
            if problem is None:
                done.append(alert_id)
            else:
                problems.append(_Refused(alert_id, problem))
        text = self._answer(done, problems, bool(ids), contact, language == "zh")
        refused = [f"#{p.alert_id} {p.why}" for p in problems]
        log.info("SMS from %s (%s): acknowledged %s; refused %s", contact.name, sms.number, done, refused)
        self.outbox.add_direct(kind="reply", channel=channel, recipient=contact.phone or sms.number,
                               contact=contact.name, language=language, payload={"text": text}, now_ms=now_ms)
        self._record(channel, sms, contact, now_ms, "ack" if done else "ack_failed",
                     f"acknowledged {done}; refused {refused}")
        return "ack" if done else "ack_failed"

    def _ack(self, alert_id: int, contact: ContactConfig) -> str | None:
        """Acknowledge one alert; the problem's key when it could not be."""
        try:
            if self.acknowledge is None:
                raise ValueError("acknowledging by SMS is not wired in this process")
            self.acknowledge(alert_id, contact.label, f"acknowledged by SMS from {contact.label}")
        except KeyError:
            return "unknown"
        except ValueError as exc:
            text = str(exc)
            return "closed" if "closed" in text else "cancelled" if "cancelled" in text else "other"
        return None

    @staticmethod
    def _answer(done: list[int], problems: list[_Refused], any_ids: bool, contact: ContactConfig,
                zh: bool) -> str:
        refused = ("；" if zh else "; ").join(
            f"#{p.alert_id}{'' if zh else ' '}{_PROBLEM[p.why][0 if zh else 1]}" for p in problems)
        if done:
            text = (f"已确认告警 {'、'.join(f'#{i}' for i in done)}（{contact.label}），停止重复通知。" if zh
                    else f"Acknowledged alert {', '.join(f'#{i}' for i in done)} ({contact.label}); repeats stop.")
            return text + ((f"另：{refused}。" if zh else f" Not acknowledged: {refused}.") if problems else "")
        if not any_ids:
            return ("archmon：最近没有发给您的告警可确认。" if zh
                    else "archmon: no recent alert sent to you to acknowledge.")
        return (f"archmon：未能确认：{refused}。" if zh else f"archmon: could not acknowledge: {refused}.")

    def _help(self, channel: str, sms: IncomingSms, contact: ContactConfig | None, why: str, language: str,
              now_ms: int) -> str:
        log.warning("SMS from %s (%s) on %s: %s: %r", sms.number, contact.name if contact else "?", channel, why,
                    sms.text[:160])
        config = self.plan.config
        last = self.outbox.last_help_reply_ms(sms.number)
        if last is not None and now_ms - last < config.help_reply_interval_s * 1000:
            self._record(channel, sms, contact, now_ms, "ignored", f"{why}; help sent recently")
            return "ignored"
        if self.outbox.help_replies_since(now_ms - HOUR_MS) >= config.help_replies_per_hour:
            if now_ms - self._capped_warned_ms >= HOUR_MS:
                self._capped_warned_ms = now_ms
                log.warning("SMS help replies: %d in the last hour, the most allowed (help_replies_per_hour); "
                            "more texts from unknown numbers are only logged", config.help_replies_per_hour)
            self._record(channel, sms, contact, now_ms, "ignored", f"{why}; help reply limit reached")
            return "ignored"
        text = (UNKNOWN_TEXT if contact is None else HELP_TEXT)[language]
        self.outbox.add_direct(kind="reply", channel=channel, recipient=sms.number,
                               contact=contact.name if contact else None, language=language,
                               payload={"text": text}, now_ms=now_ms)
        self._record(channel, sms, contact, now_ms, "help", why)
        return "help"

    def _record(self, channel: str, sms: IncomingSms, contact: ContactConfig | None, now_ms: int, action: str,
                result: str) -> None:
        self.outbox.record_inbox(channel, sms.number, contact.name if contact else None, sms.text, sms.received,
                                 now_ms, action, result)
