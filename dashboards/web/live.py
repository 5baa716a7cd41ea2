"""Live updates over Server-Sent Events, fed by the event hub.

One hub subscription per app (never blocking the producers: stored readings, alert transitions,
acknowledgements, source states) marks rooms as changed; the changed rooms' cards are read once per
round (at most every ``MIN_INTERVAL_S``) and every browser's SSE stream receives them. The cards are rendered
by the same template as the page, so the page reads the same with or without JavaScript. A subscriber
that fell behind (the hub dropped events) re-renders every room.
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

    def start(self) -> None:
        """Subscribe to the hub and start the pump (on the app's loop)."""
        loop = self.loop = asyncio.get_running_loop()
        if self.ctx.hub is not None:
            self._sub = self.ctx.hub.subscribe(["readings", "alert", "ack", "source"], name="web-live",
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
        while True:
            await self._wake.wait()
            self._wake.clear()
            rooms, self._pending = self._pending, set()
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
            elif event.kind == "source":
                rooms.add(ALL)
        return rooms


async def events_endpoint(request: Request) -> EventSourceResponse:
    """``GET /events``: the SSE stream of changed room cards (``event: room``, data ``{"room", "html"}``)."""
    from dashboards.web.pages.common import fragment

    live: LiveRooms = request.app.state.live
    queue = live.listen()

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"event": "hello", "data": "{}"}
            while not live.shutdown.is_set():
                getter = asyncio.ensure_future(queue.get())
                stopper = asyncio.ensure_future(live.shutdown.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in (getter, stopper):
                    if task not in done:
                        task.cancel()
                if getter not in done:
                    break
                for card in getter.result():
                    html = fragment(request, "_room_card.html", card=card)
                    yield {"event": "room", "data": json.dumps({"room": card.room.id, "html": html},
                                                               ensure_ascii=False)}
        finally:
            live.forget(queue)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
