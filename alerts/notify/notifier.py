"""The notifier as a service of ``archmon run``: a dispatch thread and one worker thread per channel.

The dispatch thread expands new requests of ``notification_queue`` into deliveries. It wakes on the event
hub's ``alert`` events and otherwise every ``poll_s``: the durable queue is the truth, the hub only a
wake-up. Each channel has its own worker thread, so a modem waiting 60 s for the network never holds up
an e-mail; the worker sends what is due (retries, grouped messages, quiet-hour holds), polls its channel
(modem: link checks and replies), and sleeps until the next due time. At start, deliveries a crash left
in flight are queued again as possible duplicates (see :mod:`alerts.notify.outbox`).

At start and on every reload (:meth:`Notifier.reload`, from the service's SIGHUP reload) the notifier runs
from the ``[notify]`` table then in force: contacts (who may acknowledge), routes, texts, and channels —
a channel whose options did not change keeps running (the modem keeps its port), a changed one is rebuilt,
a removed one is stopped and its queued deliveries fail ("channel removed from config"), those of removed
contacts are cancelled. A channel whose secret is missing (environment variable unset, file unreadable)
cannot send: it is logged and marked down at once, so its "channel down" alert goes out through the others,
and the rest of the notifier runs.

The notifier attaches its channel health to the alert engine's ``channel`` rule, so a channel that keeps
failing raises "notification channel down", sent through the other channels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from alerts.notify.channels import CHANNELS, Channel
from alerts.notify.dispatch import Acknowledge, Dispatcher
from alerts.notify.health import HealthBoard
from alerts.notify.outbox import Outbox
from alerts.notify.render import Renderer
from alerts.notify.routing import Router
from alerts.notify.settings import NotifyPlan, build_channels, load_notify
from alerts.notify.upkeep import Removed, apply_retention, drop_unconfigured
from alerts.site import load_settings
from archmon.config import Config
from archmon.errors import ConfigError
from archmon.hub import EventHub, Subscription
from archmon.timeutil import now_ms

__all__ = ["Notifier", "build_notifier", "reload_notifier"]

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0  # a worker looks at its channel at least this often (modem replies, link checks)
WORKER_STOP_S = 10.0  # a reload waits this long for a removed channel's send in progress


class _Parts(NamedTuple):
    """What the notifier builds from a configuration besides its channels."""

    router: Router
    renderer: Renderer
    language: str


@dataclass
class _Worker:
    """One channel's worker thread and its events."""

    thread: threading.Thread | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


class Notifier:
    """Sends what the alert engine asks for; see the module docstring.

    Args:
        config: the site configuration (``[notify]``, rooms, site zone and language).
        db_path: the shared SQLite file.
        hub: the event hub (wake-ups in, delivery results out), optional.
        acknowledge: how an SMS reply acknowledges an alert (``AlertService.acknowledge``); default: through
            the alert store.
        engine_rules: the alert engine's rules now (the ``channel`` rule is attached to the health board).
        channels: channel objects to use instead of building them from the config (tests; kept on reload).
        clock: UTC epoch ms.

    Raises:
        ConfigError: bad ``[notify]`` table.
    """

    def __init__(self, config: Config, db_path: Path, *, hub: EventHub | None = None,
                 acknowledge: Acknowledge | None = None, engine_rules: Callable[[], Iterable[Any]] | None = None,
                 channels: dict[str, Channel] | None = None, clock: Callable[[], int] | None = None) -> None:
        self.config = config
        self.plan: NotifyPlan = load_notify(config)
        self._given = channels
        self.channels = channels if channels is not None else build_channels(self.plan)
        self.outbox = Outbox(db_path)
        self.health = HealthBoard({name: ch.type for name, ch in self.channels.items()},
                                  down_after_failures=self.plan.config.down_after_failures,
                                  down_after_s=self.plan.config.down_after_s)
        router, renderer, language = self._parts(config, self.plan)
        self.dispatcher = Dispatcher(self.plan, self.channels, self.outbox, router, renderer, self.health,
                                     acknowledge=acknowledge or self._store_acknowledge(db_path), hub=hub,
                                     clock=clock, language=language)
        self.hub = hub
        self.engine_rules = engine_rules
        self._lock = threading.RLock()  # start, stop and reload
        self._running = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._dispatch: threading.Thread | None = None
        self._workers: dict[str, _Worker] = {}
        self._subscription: Subscription | None = None
        self.attach_rule()

    def _parts(self, config: Config, plan: NotifyPlan) -> _Parts:
        settings = load_settings(config)
        language = plan.config.language or settings.language or config.site.language
        room_names = {room.id: (room.name_zh, room.name_en) for room in config.rooms}
        router = Router(plan, config.site.tz, settings.working_hours, language, self.outbox.recipients_of)
        renderer = Renderer(config.site.name, config.site.tz, room_names, self.outbox.alert_row,
                            plan.config.sms_max_parts)
        return _Parts(router, renderer, language)

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
        """Queue again what a crash left in flight, settle what the configuration no longer sends, check the
        secrets, then start the dispatch and worker threads."""
        with self._lock:
            now = self.dispatcher.clock()
            again = self.outbox.recover(now)
            if again:
                log.warning("notifier: %d delivery(ies) were being sent when archmon stopped; sending again, "
                            "marked as possible duplicates", again)
            self.follow_config(now)
            if self.hub is not None:
                self._subscription = self.hub.subscribe(["alert"], name="notify", maxsize=100, on_ready=self.wake)
            self._stop.clear()
            self._running = True
            self._dispatch = threading.Thread(target=self._dispatch_loop, name="notify-dispatch", daemon=True)
            self._dispatch.start()
            for name in self.channels:
                self._start_worker(name)
        log.info("notifier started: channels %s", {n: c.type for n, c in self.channels.items()})

    def follow_config(self, now: int) -> None:
        """Settle deliveries of removed channels and contacts; mark channels without their secrets down."""
        if not self.plan.active:
            return
        drop_unconfigured(self.outbox, {n: c.address_field for n, c in self.channels.items()},
                          {c.name: {"phone": c.phone, "email": c.email} for c in self.plan.config.contacts})
        for name, channel in self.channels.items():
            problems = channel.secrets()
            was = self.health.get(name).broken
            why = "; ".join(problems) or None
            if why != was:
                if why:
                    log.error("notify channel %s cannot send: %s; it counts as down (its alert goes out through the "
                              "other channels) until the secret is there and a send works", name, why)
                self.health.set_broken(name, why, now)
                self.dispatcher.save_health(channel, now)

    def wake(self) -> None:
        """Look at the queue now (called from the hub's publishing thread: quick)."""
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the threads (a send in progress finishes; a backlog waits for the next start), close the channels
        and the outbox."""
        with self._lock:
            self._running = False
            self._stop.set()
            self._wake.set()
            for worker in self._workers.values():
                worker.stop.set()
                worker.wake.set()
            for thread in [self._dispatch] + [w.thread for w in self._workers.values()]:
                if thread is not None:
                    thread.join(timeout_s)
            self._workers = {}
            self._dispatch = None
            if self._subscription is not None:
                self._subscription.close()
                self._subscription = None
            for channel in self.channels.values():
                self._close(channel)
            self.outbox.close()

    @staticmethod
    def _close(channel: Channel) -> None:
        try:
            channel.close()
        except Exception:
            log.exception("channel %s: close failed", channel.name)

    # -- reload ------------------------------------------------------------------------------------
    def reload(self, config: Config) -> None:
        """Run from ``config``'s ``[notify]`` table from now on (see the module docstring). Never raises: a
        table that does not load leaves the running one in force (logged)."""
        try:
            plan = load_notify(config)
        except ConfigError as exc:
            log.error("notify: the reloaded [notify] table is refused, the running one stays: %s", exc)
            return
        try:
            self._reload(config, plan)
        except Exception:
            log.exception("notify: reload failed; the notifier goes on as it was")

    def _reload(self, config: Config, plan: NotifyPlan) -> None:
        with self._lock:
            old, kinds = self.channels, self.plan.channel_types
            new: dict[str, Channel] = {}
            for name, options in (plan.channel_options.items() if plan.active else ()):
                kind = plan.channel_types[name]
                if self._given is not None and name in self._given:
                    new[name] = self._given[name]
                elif name in old and kinds.get(name) == kind and self.plan.channel_options.get(name) == options:
                    new[name] = old[name]  # unchanged: keeps running (the modem keeps its port)
                else:
                    new[name] = CHANNELS[kind](name, options)
            gone = [name for name, channel in old.items() if new.get(name) is not channel]
            for name in gone:
                self._stop_worker(name)
                self._close(old[name])
            self.config, self.plan, self.channels = config, plan, new
            self.health.down_after_failures = plan.config.down_after_failures
            self.health.down_after_ms = int(plan.config.down_after_s * 1000)
            self.health.set_channels({name: channel.type for name, channel in new.items()})
            router, renderer, language = self._parts(config, plan)
            self.dispatcher.configure(plan, new, router, renderer, language)
            self.follow_config(self.dispatcher.clock())
            if self._running:
                for name in new:
                    self._start_worker(name)
            self._wake.set()
        log.info("notify: reloaded; channels %s (kept %s, started %s, stopped %s), %d contacts, %d routes",
                 sorted(new), sorted(set(new) & set(old) - set(gone)), sorted(set(new) - (set(old) - set(gone))),
                 sorted(gone), len(plan.config.contacts), len(plan.config.routes))

    # -- upkeep ------------------------------------------------------------------------------------
    def apply_retention(self, now: int | None = None) -> Removed:
        """Delete settled deliveries, attempts and received SMS past ``[notify] retention_days`` (the service's
        hourly retention job calls this)."""
        return apply_retention(self.outbox, self.dispatcher.clock() if now is None else now,
                               self.plan.config.retention_days)

    # -- threads -----------------------------------------------------------------------------------
    def _start_worker(self, name: str) -> None:
        worker = self._workers.get(name)
        if worker is not None and worker.thread is not None and worker.thread.is_alive():
            return
        worker = _Worker()
        worker.thread = threading.Thread(target=self._worker_loop, args=(name, worker), name=f"notify-{name}",
                                         daemon=True)
        self._workers[name] = worker
        worker.thread.start()

    def _stop_worker(self, name: str) -> None:
        worker = self._workers.pop(name, None)
        if worker is None or worker.thread is None:
            return
        worker.stop.set()
        worker.wake.set()
        worker.thread.join(WORKER_STOP_S)
        if worker.thread.is_alive():
            log.warning("notify channel %s: a send was still under way when it was removed; it ends on its own", name)

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            if self._subscription is not None:
                self._subscription.drain()  # the events are only wake-ups: the queue table is the truth
            try:
                if self.plan.active and self.dispatcher.expand_pending():
                    for worker in list(self._workers.values()):
                        worker.wake.set()
                self.attach_rule()
            except Exception:
                log.exception("notifier: expanding requests failed; trying again")
            self._wake.wait(self.plan.config.poll_s)
            self._wake.clear()

    def _worker_loop(self, name: str, worker: _Worker) -> None:
        while not (self._stop.is_set() or worker.stop.is_set()):
            wait = IDLE_WAIT_S
            try:
                self.dispatcher.send_due(name, stop=worker.stop)
                self.dispatcher.poll(name)
                channel = self.dispatcher.channels.get(name)
                now = self.dispatcher.clock()
                due = self.outbox.next_due(name)
                if channel is not None and due is not None:
                    rate_wait = self.dispatcher.rate_wait_ms(channel, now)
                    wait = min(wait, max(0.0, (max(due, now + rate_wait) - now) / 1000))
            except Exception:
                if worker.stop.is_set() or self._stop.is_set():
                    break
                log.exception("notifier: channel %s worker failed; trying again", name)
            if wait > 0:
                worker.wake.wait(wait)
            worker.wake.clear()


def build_notifier(config: Config, db_path: Path, **kwargs: Any) -> Notifier | None:
    """The notifier of a configuration, or None when ``[notify]`` has no channel or is disabled.

    Raises:
        ConfigError: bad ``[notify]`` table.
    """
    plan = load_notify(config)
    if not plan.active:
        return None
    return Notifier(config, db_path, **kwargs)


def reload_notifier(notifier: Notifier | None, config: Config) -> Notifier | None:
    """What the service's reload calls: the running notifier follows ``config``; without one (``[notify]`` was
    off at start) a ``[notify]`` turned on waits for the next restart, with a warning. Never raises."""
    if notifier is not None:
        notifier.reload(config)
        return notifier
    try:
        active = load_notify(config).active
    except ConfigError:
        active = False
    if active:
        log.warning("notify: [notify] has channels now but had none (or was disabled) when archmon started: "
                    "notifications start at the next restart")
    return None
