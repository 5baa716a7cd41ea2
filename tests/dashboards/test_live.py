"""Live updates over SSE against the real app: streams end when their login does, leave nothing behind,
and follow access sessions opened through the API or by another process (the CLI)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading

import httpx

from alerts.access import AccessRegister
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.dashboards.site import Site, csrf_of
from tests.fixtures.waiting import wait_for


class Stream:
    """``GET /events`` read line by line in a thread: ``events`` gets ``(event, data)`` pairs, ``None`` at
    the end of the stream."""

    def __init__(self, client: httpx.Client) -> None:
        self.events: queue.Queue[tuple[str, dict] | None] = queue.Queue()
        self._client = client
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event = ""
        try:
            with self._client.stream("GET", "/events", timeout=httpx.Timeout(30, read=60)) as response:
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        self.events.put((event, json.loads(line.split(":", 1)[1])))
        except httpx.HTTPError:
            pass
        self.events.put(None)

    def next(self, kind: str, timeout: float = 30) -> dict | None:
        """The data of the next event of ``kind`` (None: the stream ended first)."""
        while True:
            item = self.events.get(timeout=timeout)
            if item is None:
                return None
            if item[0] == kind:
                return item[1]

    def join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive()


def _loop_state(site: Site) -> tuple[int, int, int]:
    """Waiters on the live shutdown event, listening streams and unfinished tasks on the app's loop."""
    live = site.app.state.live

    async def look() -> tuple[int, int, int]:
        tasks = [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()]
        return len(live.shutdown._waiters or ()), len(live._listeners), len(tasks)

    return asyncio.run_coroutine_threadsafe(look(), live.loop).result(10)


def test_a_stream_ends_at_logout_and_when_the_user_is_disabled(site: Site) -> None:
    site.app.state.live.recheck_s = 0.2
    viewer = site.client("viewer")
    stream = Stream(viewer)
    assert stream.next("hello") == {}
    with httpx.Client(base_url=site.url, cookies=viewer.cookies) as same_browser:
        same_browser.post("/logout", data={"csrf": csrf_of(same_browser.get("/").text)})
    assert stream.next("logout") == {} and stream.next("room") is None  # told, then the stream ends
    stream.join()
    viewer.close()
    oper = site.client("oper")
    stream = Stream(oper)
    assert stream.next("hello") == {}
    with site.client("admin") as admin:
        admin.post("/users/oper/disable", data={"csrf": csrf_of(admin.get("/users").text)})
    site.store_readings([Reading("T1", "temperature", 25.0, now_ms(), "A1")])  # a card it must not get
    assert stream.next("logout") == {}
    stream.join()
    oper.close()


def test_closed_streams_leave_no_waiter_task_or_listener_behind(site: Site) -> None:
    with site.client("viewer") as viewer:
        stream = Stream(viewer)  # one stream open while the baseline is taken: the loop's own tasks
        assert stream.next("hello") == {}
        baseline = _loop_state(site)
        for _ in range(15):
            with viewer.stream("GET", "/events", timeout=10) as response:
                for line in response.iter_lines():
                    if line.startswith("data"):
                        break
        wait_for(lambda: _loop_state(site) == baseline, "the closed streams' tasks to end", timeout=30)
        assert baseline[:2] == (1, 1)


def test_sessions_opened_through_the_api_or_another_process_refresh_the_cards(site: Site) -> None:
    site.app.state.live.access_poll_s = 0.2
    site.app.state.live.recheck_s = 0.2
    with site.client("oper") as oper, site.client("viewer") as viewer:
        stream = Stream(viewer)
        assert stream.next("hello") == {}
        token = csrf_of(oper.get("/").text)
        opened = oper.post("/api/access", json={"room": "A2", "people": ["张三", "李四"], "purpose": "查阅",
                                                 "approval": "审-7"}, headers={"X-CSRF-Token": token})
        assert opened.status_code == 201
        card = stream.next("room")
        assert card["room"] == "A2" and "张三、李四" in card["html"]
        # the CLI writes through its own register, in another process: no hub event, the poll sees it
        other_process = AccessRegister(site.db)
        try:
            other_process.open_session("B1", ["王五", "赵六"], "查阅", "审-8", "keeper")
        finally:
            other_process.close()
        card = stream.next("room")
        while card["room"] != "B1":
            card = stream.next("room")
        assert "王五、赵六" in card["html"]
        with httpx.Client(base_url=site.url, cookies=viewer.cookies) as same_browser:  # ends the stream at once
            same_browser.post("/logout", data={"csrf": csrf_of(same_browser.get("/").text)})
        assert stream.next("logout") == {}
        stream.join()
