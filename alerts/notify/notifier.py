"""The notifier as a service of ``archmon run``: a dispatch thread and one worker thread per channel.

The dispatch thread expands new requests of ``notification_queue`` into deliveries. It wakes on the event
hub's ``alert`` events and otherwise every ``poll_s``: the durable queue is the truth, the hub only a
wake-up. Each channel has its own worker thread, so a modem waiting 60 s for the network never holds up
an e-mail; the worker sends what is due (retries, grouped messages, quiet-hour holds), polls its channel
(modem: link checks and replies), and sleeps until the next due time. At start, deliveries a crash left
in flight are queued again as possible duplicates (see :mod:`alerts.notify.outbox`).

The notifier attaches its channel health to the alert engine's ``channel`` rule, so a channel that keeps
failing raises "notification channel down", sent through the other channels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from alerts.notify.channels import Channel
from alerts.notify.dispatch import Acknowledge, Dispatcher
from alerts.notify.health import HealthBoard
from alerts.notify.outbox import Outbox
from alerts.notify.render import Renderer
from alerts.notify.routing import Router
from alerts.notify.settings import NotifyPlan, build_channels, load_notify
from alerts.site import load_settings
from archmon.config import Config
from archmon.hub import EventHub, Subscription
from archmon.timeutil import now_ms

__all__ = ["Notifier", "build_notifier"]

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0  # a worker looks at its channel at least this often (modem replies, link checks)


class Notifier:
    """Sends what the alert engine asks for; see the module docstring.

    Args:
        config: the site configuration (``[notify]``, rooms, site zone and language).
        db_path: the shared SQLite file.
        hub: the event hub (wake-ups in, delivery results out), optional.
        acknowledge: how an SMS reply acknowledges an alert (``AlertService.acknowledge``); default: through
            the alert store.
        engine_rules: the alert engine's rules now (the ``channel`` rule is attached to the health board).
        channels: channel objects to use instead of building them from the config (tests).
        clock: UTC epoch ms.

    Raises:
        ConfigError: bad ``[notify]`` table.
    """

    def __init__(self, config: Config, db_path: Path, *, hub: EventHub | None = None,
                 acknowledge: Acknowledge | None = None, engine_rules: Callable[[], Iterable[Any]] | None = None,
                 channels: dict[str, Channel] | None = None, clock: Callable[[], int] | None = None) -> None:
        self.config = config
        self.plan: NotifyPlan = load_notify(config)
        self.channels = channels if channels is not None else build_channels(self.plan)
        self.outbox = Outbox(db_path)
        settings = load_settings(config)
        language = self.plan.config.language or settings.language or config.site.language
        room_names = {room.id: (room.name_zh, room.name_en) for room in config.rooms}
        router = Router(self.plan, config.site.tz, settings.working_hours, language, self.outbox.recipients_of)
        renderer = Renderer(config.site.name, config.site.tz, room_names, self.outbox.alert_row,
                            self.plan.config.sms_max_parts)
        self.health = HealthBoard({name: ch.type for name, ch in self.channels.items()},
                                  down_after_failures=self.plan.config.down_after_failures,
                                  down_after_s=self.plan.config.down_after_s)
        self.dispatcher = Dispatcher(self.plan, self.channels, self.outbox, router, renderer, self.health,
                                     acknowledge=acknowledge or self._store_acknowledge(db_path), hub=hub,
                                     clock=clock, language=language)
        self.hub = hub
        self.engine_rules = engine_rules
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._worker_wake = {name: threading.Event() for name in self.channels}
        self._threads: list[threading.Thread] = []
        self._subscription: Subscription | None = None
        self.attach_rule()

    @staticmethod
    def _store_acknowledge(db_path: Path) -> Acknowledge:
        def acknowledge(alert_id: int, by: str, comment: str) -> Any:
            from alerts.actions import acknowledge as ack
            from alerts.store import AlertStore

            store = AlertStore(db_path)
            try:
                return ack(store, alert_id, by, comment, now_ms())
            finally:
                store.close()

        return acknowledge

    def attach_rule(self) -> None:
        """Give the engine's ``channel`` rule this notifier's health board (again after an engine reload)."""
        if self.engine_rules is None:
            return
        for rule in self.engine_rules():
            if getattr(rule, "name", "") == "channel" and getattr(rule, "source", None) is not self.health:
                rule.attach(self.health)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Queue again what a crash left in flight, then start the dispatch and worker threads."""
        again = self.outbox.recover(self.dispatcher.clock())
        if again:
            log.warning("notifier: %d delivery(ies) were being sent when archmon stopped; sending again, marked "
                        "as possible duplicates", again)
        if self.hub is not None:
            self._subscription = self.hub.subscribe(["alert"], name="notify", maxsize=100, on_ready=self.wake)
        self._stop.clear()
        self._threads = [threading.Thread(target=self._dispatch_loop, name="notify-dispatch", daemon=True)]
        self._threads += [threading.Thread(target=self._worker_loop, args=(name,), name=f"notify-{name}", daemon=True)
                          for name in self.channels]
        for thread in self._threads:
            thread.start()
        log.info("notifier started: channels %s", {n: c.type for n, c in self.channels.items()})

    def wake(self) -> None:
        """Look at the queue now (called from the hub's publishing thread: quick)."""
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the threads (a send in progress finishes), close the channels and the outbox."""
        self._stop.set()
        self._wake.set()
        for event in self._worker_wake.values():
            event.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception:
                log.exception("channel %s: close failed", channel.name)
        self.outbox.close()

    # -- threads -----------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.dispatcher.expand_pending():
                    for event in self._worker_wake.values():
                        event.set()
                self.attach_rule()
            except Exception:
                log.exception("notifier: expanding requests failed; trying again")
            self._wake.wait(self.plan.config.poll_s)
            self._wake.clear()

    def _worker_loop(self, name: str) -> None:
        wake = self._worker_wake[name]
        while not self._stop.is_set():
            wait = IDLE_WAIT_S
            try:
                self.dispatcher.send_due(name)
                self.dispatcher.poll(name)
                now = self.dispatcher.clock()
                rate_wait = self.dispatcher.rate_wait_ms(self.channels[name], now)
                due = self.outbox.next_due(name)
                if due is not None:
                    wait = min(wait, max(0.0, (max(due, now + rate_wait) - now) / 1000))
            except Exception:
                log.exception("notifier: channel %s worker failed; trying again", name)
            if wait > 0:
                wake.wait(wait)
            wake.clear()


def build_notifier(config: Config, db_path: Path, **kwargs: Any) -> Notifier | None:
    """The notifier of a configuration, or None when ``[notify]`` has no channel or is disabled.

    Raises:
        ConfigError: bad ``[notify]`` table.
    """
    plan = load_notify(config)
    if not plan.active:
        return None
    return Notifier(config, db_path, **kwargs)
