"""The notifier's work, one step at a time and clock-injected: expand requests, send what is due, take replies.

:class:`Dispatcher` does no threading: the live :class:`~alerts.notify.notifier.Notifier` calls
:meth:`Dispatcher.expand_pending` from its dispatch thread and :meth:`Dispatcher.send_due` /
:meth:`Dispatcher.poll` from each channel's worker thread; tests call them with simulated time.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from alerts.notify.channels import Channel, IncomingSms, Recipient, SendResult
from alerts.notify.health import HealthBoard
from alerts.notify.outbox import Delivery, Outbox
from alerts.notify.render import Renderer
from alerts.notify.replies import HELP_TEXT, UNKNOWN_TEXT, parse_reply
from alerts.notify.routing import Router
from alerts.notify.settings import NotifyPlan, normalise_phone
from archmon.hub import EventHub

__all__ = ["Acknowledge", "Dispatcher"]

log = logging.getLogger(__name__)

Acknowledge = Callable[[int, str, str], Any]
"""``acknowledge(alert_id, by, comment)``; raises KeyError (unknown) or ValueError (closed)."""

_PROBLEM_KINDS = ("fired", "repeat", "escalate")


class Dispatcher:
    """Expands, sends and records; see the module docstring.

    Args:
        plan: the validated ``[notify]`` table.
        channels: channel name → channel.
        outbox: the durable outbox.
        router: expands requests; renderer: builds messages.
        health: channel health board.
        acknowledge: how a reply acknowledges an alert (None: replies are only logged).
        hub: where delivery results are published as ``notification`` events.
        clock: UTC epoch ms.
        language: the site's default language (help texts to unknown numbers).
    """

    def __init__(self, plan: NotifyPlan, channels: dict[str, Channel], outbox: Outbox, router: Router,
                 renderer: Renderer, health: HealthBoard, *, acknowledge: Acknowledge | None = None,
                 hub: EventHub | None = None, clock: Callable[[], int] | None = None, language: str = "zh") -> None:
        self.plan = plan
        self.channels = channels
        self.outbox = outbox
        self.router = router
        self.renderer = renderer
        self.health = health
        self.acknowledge = acknowledge
        self.hub = hub
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.language = plan.config.language or language
        self.counters: dict[str, int] = {"expanded": 0, "unrouted": 0, "expired": 0, "sent": 0, "failed": 0,
                                         "cancelled": 0, "replies": 0}
        self._recent: dict[str, deque[int]] = {name: deque() for name in channels}
        self._hold_until: dict[str, int] = {}  # a channel that just failed is left alone for the first backoff
        self._warned: set[str] = set()

    # -- requests --------------------------------------------------------------------------------
    def expand_pending(self, now_ms: int | None = None) -> int:
        """Expand every pending request into deliveries; returns how many requests were taken."""
        now = self.clock() if now_ms is None else now_ms
        taken = 0
        expire_ms = int(self.plan.config.expire_after_s * 1000)
        for request in self.outbox.pending_requests():
            if expire_ms and now - int(request["created_ms"]) > expire_ms:
                self.outbox.expand(request, [], now, "expired")
                self.counters["expired"] += 1
                log.warning("notification request %d (alert %s %s) is older than %g s: not sent", request["id"],
                            request["alert_id"], request["transition"], self.plan.config.expire_after_s)
                continue
            expansion = self.router.expand(request, now)
            if not expansion.deliveries:
                key = f"{request['severity']}/{request['route']}"
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("notification request %d (%s): no route takes it, nobody is told", request["id"], key)
                self.counters["unrouted"] += 1
            made = self.outbox.expand(request, expansion.deliveries, now, expansion.status)
            self.counters["expanded"] += 1
            taken += 1
            log.info("notification request %d: alert %s %s level %s → %d deliveries via %s", request["id"],
                     request["alert_id"], request["transition"], request["level"], made, list(expansion.routes))
        return taken

    # -- sending ---------------------------------------------------------------------------------
    def rate_wait_ms(self, channel: Channel, now_ms: int) -> int:
        """How long the channel must wait before its next message (0: it may send now)."""
        hold = self._hold_until.get(channel.name, 0) - now_ms
        if hold > 0:
            return hold
        limit = channel.rate_per_min
        if not limit:
            return 0
        recent = self._recent[channel.name]
        while recent and recent[0] <= now_ms - 60_000:
            recent.popleft()
        return 0 if len(recent) < limit else recent[0] + 60_000 - now_ms

    def send_due(self, name: str, now_ms: int | None = None) -> int:
        """Send every message of one channel that is due (within its rate limit); returns messages sent."""
        channel = self.channels[name]
        now = self.clock() if now_ms is None else now_ms
        if now < self._hold_until.get(name, 0):
            return 0
        sent = 0
        for batch in self.outbox.due(name, now):
            if self.rate_wait_ms(channel, now) > 0:
                break  # they stay queued: a rate limit delays, it never drops
            batch = self._drop_acknowledged(batch)
            if not batch:
                continue
            result = self._send(channel, batch, now)
            sent += 1
            now = max(now, self.clock() if now_ms is None else now_ms)
            if result.outcome == "failed":
                # one failure says the channel is in trouble: the rest wait for the first backoff instead of
                # each waiting out its own timeout now (a dead modem costs send_timeout_s per message)
                self._hold_until[name] = now + int(self.plan.config.retry.delay_s(1) * 1000)
                break
        return sent

    def _drop_acknowledged(self, batch: list[Delivery]) -> list[Delivery]:
        keep, drop = [], []
        for d in batch:
            row = self.outbox.alert_row(d.alert_id) if d.alert_id is not None and d.kind in _PROBLEM_KINDS else None
            if row is not None and row.get("acked_ms") is not None and row.get("state") in ("acknowledged", "closed"):
                drop.append(d)
            else:
                keep.append(d)
        if drop:
            self.outbox.cancel(drop, "alert acknowledged before this went out")
            self.counters["cancelled"] += len(drop)
        return keep

    def _send(self, channel: Channel, batch: list[Delivery], now: int) -> SendResult:
        first = batch[0]
        message = self.renderer.render(batch)
        recipient = Recipient(first.recipient, first.contact, first.mentions)
        self.outbox.start(batch, now)
        self._recent[channel.name].append(now)
        try:
            result = channel.send(message, recipient)
        except Exception as exc:  # a channel bug must not stop the outbox
            log.exception("channel %s: send raised", channel.name)
            result = SendResult("failed", f"{type(exc).__name__}: {exc}")
        end = max(now, self.clock())
        failures = max(d.failures for d in batch) + (1 if result.outcome == "failed" else 0)
        next_ms = self._next_try(result, failures, end)
        self.outbox.finish(batch, outcome=result.outcome, answer=result.answer, now_ms=end, next_ms=next_ms)
        health = self.health.record_send(channel.name, result.outcome, result.answer, end)
        self._save_health(channel, end)
        key = "sent" if result.accepted else "failed"
        self.counters[key] += 1
        level = logging.INFO if result.accepted else logging.WARNING
        log.log(level, "channel %s → %s: %s %s (alerts %s, %d deliveries)%s", channel.name,
                first.contact or first.recipient if channel.address_field != "email" else first.contact,
                result.outcome, result.answer[:200], list(message.alert_ids), len(batch),
                f"; next try {next_ms}" if next_ms else ("; gave up" if not result.accepted else ""))
        if self.hub is not None:
            self.hub.publish("notification", {
                "channel": channel.name, "contact": first.contact, "alert_ids": list(message.alert_ids),
                "deliveries": [d.id for d in batch], "outcome": result.outcome, "answer": result.answer,
                "next_ms": next_ms, "possible_duplicate": any(d.possible_duplicate for d in batch),
                "channel_state": health.state})
        return result

    def _next_try(self, result: SendResult, failures: int, now: int) -> int | None:
        if result.outcome == "accepted" or result.outcome == "rejected":
            return None
        if result.outcome == "rate_limited":
            return now + int((result.retry_after_s or 60.0) * 1000)
        retry = self.plan.config.retry
        if retry.max_attempts and failures >= retry.max_attempts:
            return None
        return now + int(retry.delay_s(failures) * 1000)

    def _save_health(self, channel: Channel, now: int) -> None:
        h = self.health.get(channel.name)
        try:
            self.outbox.save_channel_state(channel.name, channel.type, h.state, h.failures, h.last_success_ms,
                                           h.last_failure_ms, h.last_error, dict(h.details), now)
        except Exception:
            log.exception("channel %s: saving its state failed", channel.name)

    # -- polling and replies ---------------------------------------------------------------------
    def poll(self, name: str, now_ms: int | None = None) -> list[IncomingSms]:
        """Let a channel check its link and read replies; handle each reply. Returns the replies."""
        channel = self.channels[name]
        try:
            incoming = channel.poll()
        except Exception:
            log.exception("channel %s: poll raised", name)
            incoming = []
        now = self.clock() if now_ms is None else now_ms
        before = self.health.get(name)
        after = self.health.record_check(name, channel.healthy(), channel.details().get("error"), channel.details(),
                                         now)
        if after != before:
            self._save_health(channel, now)
        for sms in incoming:
            self.handle_reply(name, sms, now)
        return incoming

    def handle_reply(self, channel: str, sms: IncomingSms, now_ms: int) -> str:
        """Act on one received SMS; returns the action taken (``ack``, ``help``, ``ignored``...)."""
        self.counters["replies"] += 1
        wanted = normalise_phone(sms.number)
        contact = next((c for c in self.plan.config.contacts if c.phone and normalise_phone(c.phone) == wanted), None)
        language = (contact.language if contact else None) or self.language
        reply = parse_reply(sms.text)
        if contact is None or reply.kind == "unknown":
            why = "unknown sender" if contact is None else "unreadable reply"
            log.warning("SMS from %s (%s) on %s: %s: %r", sms.number, contact.name if contact else "?", channel, why,
                        sms.text[:160])
            last = self.outbox.last_help_reply_ms(sms.number)
            if last is not None and now_ms - last < self.plan.config.help_reply_interval_s * 1000:
                self.outbox.record_inbox(channel, sms.number, contact.name if contact else None, sms.text, sms.received,
                                         now_ms, "ignored", f"{why}; help sent recently")
                return "ignored"
            text = (UNKNOWN_TEXT if contact is None else HELP_TEXT)[language]
            self.outbox.add_direct(kind="reply", channel=channel, recipient=sms.number,
                                   contact=contact.name if contact else None, language=language,
                                   payload={"text": text}, now_ms=now_ms)
            self.outbox.record_inbox(channel, sms.number, contact.name if contact else None, sms.text, sms.received,
                                     now_ms, "help", why)
            return "help"
        ids = list(reply.ids) or self.outbox.last_alerts_sent_to(channel, [contact.phone or sms.number, sms.number])
        done, problems = [], []
        for alert_id in ids:
            try:
                if self.acknowledge is None:
                    raise ValueError("acknowledging by SMS is not wired in this process")
                self.acknowledge(alert_id, contact.label, f"acknowledged by SMS from {contact.label}")
                done.append(alert_id)
            except (KeyError, ValueError) as exc:
                why = exc.args[0] if exc.args and isinstance(exc, ValueError) else "unknown"
                problems.append(f"#{alert_id}: {why}")
        zh = language == "zh"
        if done:
            text = (f"已确认告警 {'、'.join(f'#{i}' for i in done)}（{contact.label}），停止重复通知。" if zh
                    else f"Acknowledged alert {', '.join(f'#{i}' for i in done)} ({contact.label}); repeats stop.")
        elif not ids:
            text = ("archmon：最近没有发给您的告警可确认。" if zh
                    else "archmon: no recent alert sent to you to acknowledge.")
        else:
            text = ("archmon：未能确认 " if zh else "archmon: could not acknowledge ") + "; ".join(problems)
        log.info("SMS from %s (%s): acknowledged %s; problems %s", contact.name, sms.number, done, problems)
        self.outbox.add_direct(kind="reply", channel=channel, recipient=contact.phone or sms.number,
                               contact=contact.name, language=language, payload={"text": text}, now_ms=now_ms)
        self.outbox.record_inbox(channel, sms.number, contact.name, sms.text, sms.received, now_ms,
                                 "ack" if done else "ack_failed", f"acknowledged {done}; {problems}")
        return "ack" if done else "ack_failed"
