"""Live updates over Server-Sent Events, fed by the event hub.

One hub subscription per app (never blocking the producers: stored readings, alert transitions,
acknowledgements, source states) marks rooms as changed; each browser's SSE stream then receives the
re-rendered cards of the rooms that changed, at most every ``MIN_INTERVAL_S``. The cards are rendered
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

__all__ = ["LiveRooms", "events_endpoint"]

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.5
ALL = "*"


class LiveRooms:
    """Which rooms changed, for every open SSE stream."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self._listeners: set[asyncio.Queue[set[str]]] = set()
        self._sub: Subscription | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0
        self.shutdown = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Subscribe to the hub (on the app's loop)."""
        loop = self.loop = asyncio.get_running_loop()
        if self.ctx.hub is None:
            return
        self._sub = self.ctx.hub.subscribe(["readings", "alert", "ack", "source"], name="web-live", maxsize=10_000,
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

    def listen(self) -> asyncio.Queue[set[str]]:
        """A new stream's queue of changed-room sets."""
        queue: asyncio.Queue[set[str]] = asyncio.Queue(maxsize=1)
        self._listeners.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[set[str]]) -> None:
        """A stream ended."""
        self._listeners.discard(queue)

    async def _pump(self) -> None:
        assert self._sub is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            events = self._sub.drain()
            rooms = await run_in_threadpool(self._rooms_of, events)
            if self._sub.dropped != self._dropped:
                self._dropped = self._sub.dropped
                rooms = {ALL}
            if rooms:
                self.publish(rooms)

    def publish(self, rooms: set[str]) -> None:
        """Tell every stream that ``rooms`` changed (merged into what a slow stream has not taken yet)."""
        for queue in list(self._listeners):
            if queue.full():
                rooms = rooms | queue.get_nowait()
            queue.put_nowait(set(rooms))

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
    from dashboards.web.pages.common import render_cards

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
                rooms = getter.result()
                for room, html in await render_cards(request, None if ALL in rooms else rooms):
                    yield {"event": "room", "data": json.dumps({"room": room, "html": html}, ensure_ascii=False)}
                await asyncio.sleep(MIN_INTERVAL_S)
        finally:
            live.forget(queue)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
