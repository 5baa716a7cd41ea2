"""The alert feed: what the store committed reaches the alert engine in commit order, on a thread of its own.

Judging never holds up the next commit (and the MQTT acknowledgements that wait for it): the store writer's
listener queues each commit's readings here; one thread hands them to ``AlertService.on_readings`` in order,
with availability changes and reload swaps at their place in the same order. The queue is bounded: a slow
engine slows ingest down instead of losing what it has not judged.

Smoke and leak readings do not queue behind that order: each commit's alarms go to a lane of their own,
served by a second thread that hands them to the engine at once (through the engine lock's priority lane:
they wait for at most one slice of whatever the first thread is judging, never for the commits queued
before theirs). A smoke reading committed behind 20,000 others is judged in milliseconds, not after them.

A stop drains the feed within its bound; what it cannot judge in time is taken out of the queue
(:meth:`AlertFeed.abandon`): the smoke and leak readings among it are judged at once, and the rest is kept
in a file beside the database (:func:`save_backlog`, ``archmon.db.unjudged.json``) for the next start, which
hands it to the engine before any new reading (``AlertService.judge_backlog``). Those readings are in the
store, and so in the windows the engine rebuilds at start: the engine judges the ones stored after what it
had judged of their series as soon as it starts (``alerts.catchup``, also after a crash, which leaves no
file), and the older ones and the availability changes from the file, without counting them twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from archmon.domain import Reading

__all__ = ["URGENT", "AlertFeed", "Availability", "Backlog", "Call", "FeedItem", "Judge", "load_backlog",
           "save_backlog", "split_urgent"]

log = logging.getLogger("archmon.app")

URGENT = frozenset({"smoke", "leak"})
"""Quantities judged first, and judged at a stop even when the rest must wait for the next start."""


class Judge(NamedTuple):
    """The readings of one commit."""

    readings: tuple[Reading, ...]


class Availability(NamedTuple):
    """An availability (LWT) message of a configured sensor, committed."""

    sensor: str
    state: str
    ts_ms: int


class Call(NamedTuple):
    """Something to do at this point of the order (a reload's swap of the alert rules)."""

    what: str
    call: Callable[[], None]


class Backlog(NamedTuple):
    """Readings and availability an earlier run stored but could not judge before it stopped."""

    readings: tuple[Reading, ...]
    availability: tuple[Availability, ...]


FeedItem = Judge | Availability | Call | Backlog


def split_urgent(items: Sequence[FeedItem]) -> tuple[list[Reading], Backlog]:
    """The smoke/leak readings among ``items``, and everything else of theirs left to judge (calls dropped)."""
    urgent: list[Reading] = []
    rest: list[Reading] = []
    availability: list[Availability] = []
    for item in items:
        if isinstance(item, Judge | Backlog):
            for reading in item.readings:
                (urgent if reading.quantity in URGENT else rest).append(reading)
            if isinstance(item, Backlog):
                availability.extend(item.availability)
        elif isinstance(item, Availability):
            availability.append(item)
    return urgent, Backlog(tuple(rest), tuple(availability))


class AlertFeed:
    """One thread handing committed readings to the alert service, in order, and one for smoke and leak.

    Args:
        alerts: the ``AlertService``.
        on_backlog: judges a :class:`Backlog` at its place in the order (the service's start puts it first).
        max_items: queued items of a lane before :meth:`readings` blocks (backpressure on the store writer);
            the smoke and leak lane has a bound of its own, so an alarm is queued even while the main lane
            is full (the commit's other readings then wait for room).
    """

    def __init__(self, alerts: Any, *, on_backlog: Callable[[Backlog], None], max_items: int = 10_000) -> None:
        self._alerts = alerts
        self._on_backlog = on_backlog
        self._max = max_items
        self._cond = threading.Condition()
        self._queue: deque[FeedItem] = deque()
        self._urgent: deque[FeedItem] = deque()  # smoke and leak readings, served by their own thread
        self._left: list[FeedItem] = []  # submitted after abandon(): kept with what was taken
        self._abandoned = False
        self._unbounded = False
        self._stopping = False
        self._submitted = 0
        self._done = 0
        self._busy_since: float | None = None
        self._current: FeedItem | None = None
        self._thread = threading.Thread(target=self._run, args=(self._queue,), name="alerts-feed", daemon=True)
        self._urgent_thread = threading.Thread(target=self._run, args=(self._urgent,), name="alerts-urgent",
                                               daemon=True)
        self.errors = 0
        self.handled = 0

    # -- producers ---------------------------------------------------------------------------------

    def readings(self, readings: Sequence[Reading]) -> None:
        """Queue a commit's readings (blocks while the queue is full): smoke and leak in their own lane."""
        urgent = tuple(r for r in readings if r.quantity in URGENT)
        if urgent:
            self._put(Judge(urgent), urgent=True)
            readings = [r for r in readings if r.quantity not in URGENT]
        if readings:
            self._put(Judge(tuple(readings)))

    def availability(self, sensor: str, state: str, ts_ms: int) -> None:
        """Queue a committed availability change."""
        self._put(Availability(sensor, state, ts_ms))

    def call(self, what: str, call: Callable[[], None]) -> None:
        """Run ``call`` on the feed's thread after everything queued before it."""
        self._put(Call(what, call))

    def backlog(self, backlog: Backlog) -> None:
        """Queue an earlier run's unjudged readings (before the first commit of this run, at start)."""
        self._put(backlog)

    def _put(self, item: FeedItem, *, urgent: bool = False) -> None:
        lane = self._urgent if urgent else self._queue  # each lane has its own bound: an alarm never waits
        with self._cond:                                # for room in the main queue
            while len(lane) >= self._max and not self._abandoned and not self._unbounded:
                self._cond.wait()
            if self._abandoned:
                self._left.append(item)
                return
            lane.append(item)
            self._submitted += 1
            self._cond.notify_all()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads."""
        self._thread.start()
        self._urgent_thread.start()

    @property
    def alive(self) -> bool:
        """A thread is running (it may be inside the engine, judging or waiting for its database)."""
        return self._thread.is_alive() or self._urgent_thread.is_alive()

    def busy_s(self) -> float:
        """How long the item being handled has taken so far (0 when idle)."""
        with self._cond:
            return 0.0 if self._busy_since is None else time.monotonic() - self._busy_since

    def current(self) -> FeedItem | None:
        """The item being handled (None: idle)."""
        with self._cond:
            return self._current

    @property
    def abandoned(self) -> bool:
        """:meth:`abandon` was called (a stop ran out of time)."""
        return self._abandoned

    def queued(self) -> int:
        """Items waiting (the ones being handled not counted)."""
        with self._cond:
            return len(self._queue) + len(self._urgent)

    def unbounded(self) -> None:
        """Stop slowing the writer down (a stop: nothing new is taken in, the final flush must not wait for
        the engine; what it cannot judge in time is kept for the next start)."""
        with self._cond:
            self._unbounded = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been handled; False on timeout."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target or self._abandoned, timeout) and \
                self._done >= target

    def abandon(self) -> list[FeedItem]:
        """Take every item still waiting out of the queues (and any submitted from now on); the threads end
        after the items they are handling."""
        with self._cond:
            self._abandoned = True
            taken = [*self._urgent, *self._queue, *self._left]
            self._urgent.clear()
            self._queue.clear()
            self._left.clear()
            self._cond.notify_all()
        return taken

    def stop(self, timeout: float) -> bool:
        """Handle what is queued (use :meth:`abandon` first to give it up), end the threads; True if they ended."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in (self._urgent_thread, self._thread):
            if thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not self.alive

    def _run(self, queue: deque[FeedItem]) -> None:
        main = queue is self._queue  # (the urgent lane's thread does not report what it handles)
        while True:
            with self._cond:
                while not queue and not self._stopping and not self._abandoned:
                    self._cond.wait()
                if not queue:
                    return
                item = queue.popleft()
                if main:
                    self._busy_since = time.monotonic()
                    self._current = item
                self._cond.notify_all()  # room for a producer blocked on a full queue
            try:
                self._handle(item)
                with self._cond:
                    self.handled += 1
            except Exception:
                with self._cond:
                    self.errors += 1
                log.exception("alert feed: %s failed; going on", type(item).__name__)
            with self._cond:
                if main:
                    self._busy_since = None
                    self._current = None
                self._done += 1
                self._cond.notify_all()

    def _handle(self, item: FeedItem) -> None:
        if isinstance(item, Judge):
            self._alerts.on_readings(item.readings)
        elif isinstance(item, Availability):
            self._alerts.on_availability(item.sensor, item.state, item.ts_ms)
        elif isinstance(item, Call):
            item.call()
        else:
            self._on_backlog(item)


def save_backlog(path: Path, backlog: Backlog) -> None:
    """Keep ``backlog`` in ``path`` (atomically, synced) for the next start; remove the file when empty."""
    if not backlog.readings and not backlog.availability:
        path.unlink(missing_ok=True)
        return
    data = {"readings": [[r.sensor, r.quantity, r.value, r.ts_ms, r.room] for r in backlog.readings],
            "availability": [list(a) for a in backlog.availability]}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load_backlog(path: Path) -> Backlog | None:
    """What :func:`save_backlog` kept (None: no file, or one that cannot be read, which is logged)."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Backlog(tuple(Reading(str(s), str(q), float(v), int(t), str(r)) for s, q, v, t, r in data["readings"]),
                       tuple(Availability(str(s), str(st), int(t)) for s, st, t in data["availability"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("alert feed: %s cannot be read (%s); its readings are not judged again", path, exc)
        return None
