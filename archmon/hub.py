"""The in-process event hub: what happened, for whoever wants to know, without ever slowing ingest.

Producers (the store writer after a commit, the alert engine, notification channels, sources) call
:meth:`EventHub.publish`; it never blocks and never raises. Each subscriber has its own bounded queue:

- by default, when the queue is full the oldest event is dropped and counted (``Subscription.dropped``),
  so a stalled consumer costs memory up to its bound and nothing else; consumers that must not miss
  anything read durable state (the database) and use events as a wake-up;
- with ``latest_by`` (a key function), only the newest event per key is kept: a live view that fell behind
  skips to the current value of each sensor instead of replaying history;
- with ``wake_only``, only the newest event is kept and nothing counts as dropped: for a consumer that reads
  durable state (the notifier's outbox) and only wants to be woken (by ``on_ready`` or ``get``).

Consumers block on :meth:`Subscription.get` in a thread, or set :attr:`Subscription.on_ready` to be told
(from the publishing thread, so it must be quick, e.g. ``loop.call_soon_threadsafe``) that events wait.

Event kinds (``EventKind``) and their ``data``:

- ``readings``: a tuple of newly stored ``Reading`` objects (one event per commit);
- ``alert``: an alert ``Transition``;
- ``ack``: an acknowledgement (the ``Transition`` to acknowledged, or a dict with alert id, by, comment);
- ``notification``: a notification result (channel, alert id, outcome);
- ``source``: a source state change (source id, state);
- ``access``: an access session opened or closed (``alerts.access.AccessSession``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Event", "EventHub", "EventKind", "Subscription"]

log = logging.getLogger(__name__)

EventKind = Literal["readings", "alert", "ack", "notification", "source", "access"]
EVENT_KINDS: tuple[EventKind, ...] = ("readings", "alert", "ack", "notification", "source", "access")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened.

    Attributes:
        kind: what kind of thing (see the module docstring).
        data: the payload of that kind.
        seq: the hub's sequence number (strictly increasing over all kinds): a gap seen by a subscriber
            means it dropped events.
        ts_ms: when it was published (UTC epoch ms).
    """

    kind: EventKind
    data: Any
    seq: int
    ts_ms: int


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue; see :meth:`EventHub.subscribe`."""

    name: str
    kinds: frozenset[str]
    maxsize: int
    latest_by: Callable[[Event], Hashable] | None = None
    on_ready: Callable[[], None] | None = None
    wake_only: bool = False
    dropped: int = 0
    delivered: int = 0
    _hub: EventHub | None = field(default=None, repr=False)
    _queue: deque[Event] = field(default_factory=deque, repr=False)
    _latest: OrderedDict[Hashable, Event] = field(default_factory=OrderedDict, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _closed: bool = False
    _warned: bool = False

    def _offer(self, event: Event) -> None:
        with self._cond:
            if self._closed:
                return
            if self.wake_only:  # a wake-up: the newest event stands for every one before it
                self._queue.clear()
                self._queue.append(event)
            elif self.latest_by is not None:
                key = self.latest_by(event)
                if key in self._latest:
                    del self._latest[key]
                    self.dropped += 1  # superseded by a newer value
                elif len(self._latest) >= self.maxsize:
                    self._latest.popitem(last=False)
                    self._overflow()
                self._latest[key] = event
            else:
                if len(self._queue) >= self.maxsize:
                    self._queue.popleft()
                    self._overflow()
                self._queue.append(event)
            self._cond.notify()
        callback = self.on_ready
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("event hub: on_ready of subscriber %s failed", self.name)

    def _overflow(self) -> None:
        self.dropped += 1
        if not self._warned:
            self._warned = True
            log.warning("event hub: subscriber %s is not keeping up (queue of %d full); dropping its oldest events "
                        "(counted in dropped)", self.name, self.maxsize)

    def pending(self) -> int:
        """Events waiting in the queue."""
        with self._cond:
            return len(self._latest) + len(self._queue)

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (None: until one comes or the subscription is
        closed). Returns None on timeout or once closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._queue:
                    self.delivered += 1
                    return self._queue.popleft()
                if self._latest:
                    self.delivered += 1
                    return self._latest.popitem(last=False)[1]
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def drain(self) -> list[Event]:
        """Every event waiting now, oldest first, without waiting."""
        with self._cond:
            out = list(self._queue) + list(self._latest.values())
            self._queue.clear()
            self._latest.clear()
            self.delivered += len(out)
        return out

    def close(self) -> None:
        """Stop receiving; a thread blocked in :meth:`get` returns what is left, then None."""
        hub = self._hub
        if hub is not None:
            hub._remove(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (or when the hub closed)."""
        return self._closed


class EventHub:
    """Publish/subscribe inside one process; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscription, ...] = ()
        self._seq = 0
        self.published = 0

    def subscribe(
        self,
        kinds: Collection[EventKind] | None = None,
        *,
        name: str = "",
        maxsize: int = 1000,
        latest_by: Callable[[Event], Hashable] | None = None,
        on_ready: Callable[[], None] | None = None,
        wake_only: bool = False,
    ) -> Subscription:
        """A new subscription to ``kinds`` (None: all kinds).

        Args:
            kinds: event kinds to receive.
            name: for logs and stats.
            maxsize: events (or keys, with ``latest_by``) kept before the oldest is dropped.
            latest_by: keep only the newest event per key (e.g. per sensor) instead of a queue.
            on_ready: called (from the publisher's thread, must be quick) after an event was queued.
            wake_only: a wake-up subscription: only the newest event is kept, none counts as dropped.

        Raises:
            ValueError: an unknown kind, or ``maxsize`` < 1.
        """
        wanted = frozenset(kinds) if kinds is not None else frozenset(EVENT_KINDS)
        unknown = sorted(wanted - set(EVENT_KINDS))
        if unknown:
            raise ValueError(f"unknown event kind(s) {unknown}; known: {list(EVENT_KINDS)}")
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        sub = Subscription(name=name or f"subscriber-{id(self):x}", kinds=wanted, maxsize=maxsize,
                           latest_by=latest_by, on_ready=on_ready, wake_only=wake_only, _hub=self)
        with self._lock:
            self._subscribers = (*self._subscribers, sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)

    def publish(self, kind: EventKind, data: Any) -> Event:
        """Hand an event to every subscriber of its kind; never blocks, never raises for a subscriber's sake."""
        with self._lock:
            self._seq += 1
            event = Event(kind, data, self._seq, time.time_ns() // 1_000_000)
            subscribers = self._subscribers
            self.published += 1
        for sub in subscribers:
            if kind in sub.kinds:
                try:
                    sub._offer(event)
                except Exception:  # a broken key function must not reach the producer
                    log.exception("event hub: subscriber %s failed to take an event", sub.name)
        return event

    def subscribers(self) -> tuple[Subscription, ...]:
        """The current subscriptions (for status and tests)."""
        return self._subscribers

    def close(self) -> None:
        """Close every subscription."""
        for sub in self._subscribers:
            sub.close()
