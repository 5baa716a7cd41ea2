"""Live updates over Server-Sent Events, fed by the event hub.

One hub subscription per app (never blocking the producers: stored readings, alert transitions,
acknowledgements, source states, access sessions) marks rooms as changed; the changed rooms' cards are
read once per round (at most every ``MIN_INTERVAL_S``) and every browser's SSE stream receives them. The
cards are rendered by the same template as the page, so the page reads the same with or without
JavaScript. A subscriber that fell behind (the hub dropped events) re-renders every room. Access sessions
opened or closed by another process (``archmon access open``) are not on this process's hub: the open
sessions are compared every ``access_poll_s`` while anyone listens.

A stream asks again every ``recheck_s`` whether its caller is still logged in (a logout, a disabled
account, a changed role or a revoked token ends the session): if not, it sends ``event: logout`` and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from archmon.hub import Event, Subscription
from dashboards.web import queries
from dashboards.web.context import WebContext
from dashboards.web.overview import RoomCard, room_cards, snapshot

__all__ = ["LiveRooms", "events_endpoint"]

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.5
RECHECK_S = 10.0
"""How often an open stream checks that its caller is still logged in."""
ACCESS_POLL_S = 5.0
"""How often open sessions are compared, for sessions opened or closed by another process."""
ALL = "*"


class LiveRooms:
    """Which rooms changed, with their new cards, for every open SSE stream.

    Changes (hub events, or :meth:`publish` after a change made through the dashboard) are collected and
    turned into cards once per round, however many browsers listen; each stream renders them in its
    user's language.
    """

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self._listeners: set[asyncio.Queue[list[RoomCard]]] = set()
        self._sub: Subscription | None = None
        self._wake = asyncio.Event()
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0
        self.shutdown = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.rounds = 0
        self.recheck_s = RECHECK_S
        self.access_poll_s = ACCESS_POLL_S
        self._open_sessions: dict[str, int] | None = None
        self._polled = 0.0

    def start(self) -> None:
        """Subscribe to the hub and start the pump (on the app's loop)."""
        loop = self.loop = asyncio.get_running_loop()
        if self.ctx.hub is not None:
            self._sub = self.ctx.hub.subscribe(["readings", "alert", "ack", "source", "access"], name="web-live",
                                               maxsize=10_000,
                                               on_ready=lambda: loop.call_soon_threadsafe(self._wake.set))
        self._task = loop.create_task(self._pump(), name="web-live-pump")

    async def stop(self) -> None:
        """Unsubscribe and end every stream."""
        self.shutdown.set()
        if self._sub is not None:
            self._sub.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def listen(self) -> asyncio.Queue[list[RoomCard]]:
        """A new stream's queue of changed cards."""
        queue: asyncio.Queue[list[RoomCard]] = asyncio.Queue(maxsize=1)
        self._listeners.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[list[RoomCard]]) -> None:
        """A stream ended."""
        self._listeners.discard(queue)

    def publish(self, rooms: set[str]) -> None:
        """``rooms`` changed (call on the app's loop, e.g. from a request handler)."""
        self._pending |= rooms
        self._wake.set()

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.access_poll_s)
            self._wake.clear()
            rooms, self._pending = self._pending, set()
            if self._listeners and loop.time() - self._polled >= self.access_poll_s:
                self._polled = loop.time()
                try:
                    rooms |= await run_in_threadpool(self._sessions_changed)
                except Exception:
                    log.exception("live updates: reading the open access sessions failed")
            if self._sub is not None:
                rooms |= await run_in_threadpool(self._rooms_of, self._sub.drain())
                if self._sub.dropped != self._dropped:
                    self._dropped = self._sub.dropped
                    rooms = {ALL}
            if not rooms or not self._listeners:
                continue
            wanted = None if ALL in rooms else rooms
            try:
                cards = await run_in_threadpool(self._cards, wanted)
            except Exception:  # a failing read must not end live updates for good
                log.exception("live updates: reading the rooms failed")
                continue
            self.rounds += 1
            for queue in list(self._listeners):
                if queue.full():  # a slow stream gets the union, newest card per room
                    older = {c.room.id: c for c in queue.get_nowait()}
                    older.update({c.room.id: c for c in cards})
                    queue.put_nowait(list(older.values()))
                else:
                    queue.put_nowait(cards)
            await asyncio.sleep(MIN_INTERVAL_S)  # at most two rounds a second, whatever the ingest rate

    def _sessions_changed(self) -> set[str]:
        """Rooms whose open access session changed since the last look (the first look changes nothing)."""
        now = {session.room: session.id for session in self.ctx.access.sessions(open_only=True)}
        before, self._open_sessions = self._open_sessions, now
        if before is None:
            return set()
        return {room for room in before.keys() | now.keys() if before.get(room) != now.get(room)}

    async def still_allowed(self, request: Request) -> bool:
        """Whether the stream's caller is still logged in (session or token)."""
        from dashboards.web.security import caller_of  # late: security imports the pages

        try:
            return (await caller_of(self.ctx, request)).user is not None
        except Exception:  # cannot tell: keep the stream, ask again next time
            log.exception("live updates: checking a stream's login failed")
            return True

    def _cards(self, rooms: set[str] | None) -> list[RoomCard]:
        return room_cards(self.ctx, snapshot(self.ctx), rooms)

    def _rooms_of(self, events: list[Event]) -> set[str]:
        where = self.ctx.sensor_room()
        rooms: set[str] = set()
        for event in events:
            data = event.data
            if event.kind == "readings":
                for reading in data:
                    room = getattr(reading, "room", "") or where.get(getattr(reading, "sensor", ""), "")
                    if room:
                        rooms.add(room)
            elif event.kind in ("alert", "ack"):
                room = getattr(data, "room", None)
                if room is None and isinstance(data, dict):
                    room = data.get("room")
                    if room is None and data.get("alert") is not None:
                        with self.ctx.readers.read() as conn:
                            room = queries.alert_room(conn, int(data["alert"]))
                rooms.add(room or ALL)
            elif event.kind == "access":
                rooms.add(getattr(data, "room", "") or ALL)
            elif event.kind == "source":
                rooms.add(ALL)
        return rooms


async def events_endpoint(request: Request) -> EventSourceResponse:
    """``GET /events``: the SSE stream of changed room cards (``event: room``, data ``{"room", "html"}``);
    ``event: logout`` and the end of the stream when the caller is no longer logged in."""
    from dashboards.web.pages.common import fragment

    live: LiveRooms = request.app.state.live
    queue = live.listen()

    async def stream() -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        stopper = asyncio.ensure_future(live.shutdown.wait())
        getter: asyncio.Future[list[RoomCard]] | None = None
        check_at = loop.time() + live.recheck_s
        try:
            yield {"event": "hello", "data": "{}"}
            while not stopper.done():
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, stopper}, timeout=max(0.0, check_at - loop.time()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    break
                if getter in done:
                    cards, getter = getter.result(), None
                    for card in cards:
                        html = fragment(request, "_room_card.html", card=card)
                        yield {"event": "room", "data": json.dumps({"room": card.room.id, "html": html},
                                                                   ensure_ascii=False)}
                if loop.time() >= check_at:
                    if not await live.still_allowed(request):
                        yield {"event": "logout", "data": "{}"}
                        break
                    check_at = loop.time() + live.recheck_s
        finally:
            live.forget(queue)
            for task in (getter, stopper):  # a closed stream leaves no waiter behind
                if task is not None and not task.done():
                    task.cancel()

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
