"""The notifier's work, one step at a time and clock-injected: expand requests, send what is due, take replies.

:class:`Dispatcher` does no threading: the live :class:`~alerts.notify.notifier.Notifier` calls
:meth:`Dispatcher.expand_pending` from its dispatch thread and :meth:`Dispatcher.send_due` /
:meth:`Dispatcher.poll` from each channel's worker thread; tests call them with simulated time.

Order: a channel sends its most severe due message first, and asks the outbox again after every message,
so a smoke alarm expanded while a backlog of forty reminders is going out is the next message sent, not
the forty-first; between messages it polls its channel (the modem reads replies), so an acknowledgement
is not kept waiting by a backlog either. Just before a message goes out, deliveries that are no longer
true are dropped: alarms and reminders of an alert acknowledged, cleared or closed meanwhile, and a
recovery to someone who was never told of the alarm.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from alerts.notify.channels import Channel, IncomingSms, Recipient, SendResult
from alerts.notify.health import HealthBoard
from alerts.notify.outbox import PROBLEM_KINDS, Delivery, Outbox
from alerts.notify.render import Renderer
from alerts.notify.replies import Acknowledge, ReplyHandler
from alerts.notify.routing import Router
from alerts.notify.settings import NotifyPlan
from archmon.hub import EventHub

__all__ = ["Acknowledge", "Dispatcher"]

log = logging.getLogger(__name__)

_SETTLED_STATES = {"acknowledged": "acknowledged", "cleared": "cleared", "closed": "closed",
                   "cancelled": "cancelled"}


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
        self.outbox = outbox
        self.health = health
        self.acknowledge = acknowledge
        self.hub = hub
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.counters: dict[str, int] = {"expanded": 0, "unrouted": 0, "expired": 0, "sent": 0, "failed": 0,
                                         "cancelled": 0, "replies": 0}
        self._recent: dict[str, deque[int]] = {}  # send times of rate-limited channels, at most the limit each
        self._hold_until: dict[str, int] = {}  # a channel that just failed is left alone for the first backoff
        self._warned: set[str] = set()
        self.configure(plan, channels, router, renderer, language)

    def configure(self, plan: NotifyPlan, channels: dict[str, Channel], router: Router, renderer: Renderer,
                  language: str) -> None:
        """Run from a new plan from now on (a reload); a channel object that was replaced starts afresh."""
        old = getattr(self, "channels", {})
        for name in list(self._recent) + list(self._hold_until):
            if old.get(name) is not channels.get(name):
                self._recent.pop(name, None)
                self._hold_until.pop(name, None)
        self.plan = plan
        self.channels = channels
        self.router = router
        self.renderer = renderer
        self.language = plan.config.language or language
        self.replies = ReplyHandler(plan, self.outbox, self.acknowledge, self.language)

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
            if not expansion.deliveries and request["transition"] == "recovered":
                log.info("notification request %d: alert %s recovered; nobody was told of it, so no recovery "
                         "message", request["id"], request["alert_id"])
            elif not expansion.deliveries:
                key = f"{request['severity']}/{request['route']}"
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("notification request %d (%s): no route takes it, nobody is told", request["id"], key)
                self.counters["unrouted"] += 1
            made, cancelled = self.outbox.expand(request, expansion.deliveries, now, expansion.status)
            self.counters["expanded"] += 1
            self.counters["cancelled"] += cancelled
            taken += 1
            log.info("notification request %d: alert %s %s level %s → %d deliveries via %s%s", request["id"],
                     request["alert_id"], request["transition"], request["level"], made, list(expansion.routes),
                     f"; {cancelled} queued older one(s) cancelled" if cancelled else "")
        return taken

    # -- sending ---------------------------------------------------------------------------------
    def rate_wait_ms(self, channel: Channel, now_ms: int) -> int:
        """How long the channel must wait before its next message (0: it may send now)."""
        hold = self._hold_until.get(channel.name, 0) - now_ms
        if hold > 0:
            return hold
        limit = channel.rate_per_min
        recent = self._recent.get(channel.name)
        if not limit or recent is None:
            return 0
        while recent and recent[0] <= now_ms - 60_000:
            recent.popleft()
        return 0 if len(recent) < limit else recent[0] + 60_000 - now_ms

    def send_due(self, name: str, now_ms: int | None = None, *, stop: threading.Event | None = None) -> int:
        """Send the messages of one channel that are due, most severe first, asking the outbox again after each
        one and polling the channel in between (within its rate limit), until nothing is due or ``stop`` is
        set; returns messages sent."""
        channel = self.channels.get(name)
        sent = 0
        while channel is not None and self.channels.get(name) is channel and not (stop and stop.is_set()):
            now = self.clock() if now_ms is None else now_ms
            if now < self._hold_until.get(name, 0) or self.rate_wait_ms(channel, now) > 0:
                break  # they stay queued: a rate limit or a failing channel delays, it never drops
            batch = self.outbox.next_batch(name, now)
            if not batch:
                break
            batch = self._drop_stale(batch)
            if not batch:
                continue
            result = self._send(channel, batch, now)
            sent += 1
            if result.outcome == "failed" and result.channel_fault:
                # one failure says the channel is in trouble: the rest wait for the first backoff instead of
                # each waiting out its own timeout now (a dead modem costs send_timeout_s per message)
                end = max(now, self.clock() if now_ms is None else now_ms)
                self._hold_until[name] = end + int(self.plan.config.retry.delay_s(1) * 1000)
                break
            self.poll(name, now_ms)
        return sent

    def _drop_stale(self, batch: list[Delivery]) -> list[Delivery]:
        """The deliveries of a message that are still true; the others are cancelled (see the module)."""
        keep: list[Delivery] = []
        drop: dict[str, list[Delivery]] = {}
        for d in batch:
            why = None
            if d.alert_id is not None and d.kind in PROBLEM_KINDS:
                row = self.outbox.alert_row(d.alert_id)
                state = _SETTLED_STATES.get(str(row.get("state"))) if row else None
                if state is not None:
                    why = f"alert {state} before this went out"
            elif d.alert_id is not None and d.kind == "recovered" and \
                    not self.outbox.told(d.alert_id, d.channel, d.recipient):
                why = "no alarm of this alert reached this recipient: no recovery message"
            if why is None:
                keep.append(d)
            else:
                drop.setdefault(why, []).append(d)
        for why, deliveries in drop.items():
            self.outbox.cancel(deliveries, why)
            self.counters["cancelled"] += len(deliveries)
        return keep

    def _send(self, channel: Channel, batch: list[Delivery], now: int) -> SendResult:
        first = batch[0]
        self.outbox.start(batch, now)
        try:
            message = self.renderer.render(batch)
        except Exception as exc:  # a message that cannot be built must not block the queue or blame the channel
            log.exception("channel %s: the message of deliveries %s cannot be built", channel.name,
                          [d.id for d in batch])
            result = SendResult("rejected", f"the message cannot be built: {type(exc).__name__}: {exc}",
                                channel_fault=False)
            self._record(channel, batch, result, None, max(now, self.clock()), ())
            return result
        resume = first.resume if all(d.resume == first.resume for d in batch) else None
        if resume:
            message = dataclasses.replace(message, resume=resume)
        recipient = Recipient(first.recipient, first.contact, first.mentions)
        if channel.rate_per_min:
            self._recent.setdefault(channel.name, deque(maxlen=channel.rate_per_min)).append(now)
        try:
            result = channel.send(message, recipient)
        except Exception as exc:  # a channel bug must not stop the outbox
            log.exception("channel %s: send raised", channel.name)
            result = SendResult("failed", f"{type(exc).__name__}: {exc}")
        end = max(now, self.clock())
        failures = max(d.failures for d in batch) + (1 if result.outcome == "failed" else 0)
        next_ms = self._next_try(result, failures, end)
        self._record(channel, batch, result, next_ms, end, message.alert_ids)
        return result

    def _record(self, channel: Channel, batch: list[Delivery], result: SendResult, next_ms: int | None, end: int,
                alert_ids: tuple[int, ...]) -> None:
        first = batch[0]
        self.outbox.finish(batch, outcome=result.outcome, answer=result.answer, now_ms=end, next_ms=next_ms,
                           possible_duplicate=result.possible_duplicate, resume=result.resume)
        health = self.health.record_send(channel.name, result.outcome, result.answer, end,
                                         channel_fault=result.channel_fault)
        self.save_health(channel, end)
        self.counters["sent" if result.accepted else "failed"] += 1
        level = logging.INFO if result.accepted else logging.WARNING
        log.log(level, "channel %s → %s: %s %s (alerts %s, %d deliveries)%s", channel.name,
                first.contact or first.recipient if channel.address_field != "email" else first.contact,
                result.outcome, result.answer[:200], list(alert_ids), len(batch),
                f"; next try {next_ms}" if next_ms else ("; gave up" if not result.accepted else ""))
        if self.hub is not None:
            self.hub.publish("notification", {
                "channel": channel.name, "contact": first.contact, "alert_ids": list(alert_ids),
                "deliveries": [d.id for d in batch], "outcome": result.outcome, "answer": result.answer,
                "next_ms": next_ms, "possible_duplicate": any(d.possible_duplicate for d in batch),
                "channel_state": health.state})

    def _next_try(self, result: SendResult, failures: int, now: int) -> int | None:
        if result.outcome == "accepted" or result.outcome == "rejected":
            return None
        if result.outcome == "rate_limited":
            return now + int((result.retry_after_s or 60.0) * 1000)
        retry = self.plan.config.retry
        if retry.max_attempts and failures >= retry.max_attempts:
            return None
        return now + int(retry.delay_s(failures) * 1000)

    def save_health(self, channel: Channel, now: int) -> None:
        """Persist a channel's health (for ``archmon status`` in another process); a failure is only logged."""
        h = self.health.get(channel.name)
        try:
            self.outbox.save_channel_state(channel.name, channel.type, h.state, h.failures, h.last_success_ms,
                                           h.last_failure_ms, h.last_error, dict(h.details), now)
        except Exception:
            log.exception("channel %s: saving its state failed", channel.name)

    # -- polling and replies ---------------------------------------------------------------------
    def poll(self, name: str, now_ms: int | None = None) -> list[IncomingSms]:
        """Let a channel check its link and read replies; handle each reply. Returns the replies."""
        channel = self.channels.get(name)
        if channel is None:
            return []
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
            self.save_health(channel, now)
        for sms in incoming:
            self.handle_reply(name, sms, now)
        return incoming

    def handle_reply(self, channel: str, sms: IncomingSms, now_ms: int) -> str:
        """Act on one received SMS (:class:`~alerts.notify.replies.ReplyHandler`); returns the action taken."""
        self.counters["replies"] += 1
        return self.replies.handle(channel, sms, now_ms)
