"""Smoke and leak readings do not wait behind the alert feed's queue (review finding 1).

``archmon run`` hands every commit to one alert-feed thread, in order; a smoke reading in the next commit
used to wait for everything queued before it (up to 10,000 commits of 500 readings). It now has a lane and
a thread of its own. Real ``AlertService`` on a real SQLite file; the feed's first thread is held inside an
item, as a big batch or a stalled judgement would hold it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alerts.service import AlertService
from archmon.app.feed import AlertFeed
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.alerts.helpers import site_config
from tests.fixtures.waiting import wait_for


def _alerts(service: AlertService) -> dict[str, str]:
    return {a["ident"]: a["state"] for a in service.store.alerts()}


def test_smoke_is_judged_while_the_feed_is_busy_with_earlier_commits(tmp_path: Path) -> None:
    config = site_config(tmp_path, sensors=("T1", "S1", "W1"))
    service = AlertService(config, tmp_path / "archmon.db")
    feed = AlertFeed(service, on_backlog=lambda backlog: None)
    feed.start()
    held, release = threading.Event(), threading.Event()

    def busy() -> None:  # the first thread inside an earlier item
        held.set()
        release.wait(60)

    t = now_ms()
    try:
        feed.call("test: busy with an earlier commit", busy)
        held.wait(30)
        feed.readings([Reading("T1", "temperature", 20.0 + (k % 10) / 100, t + k, "A1") for k in range(500)])
        feed.readings([Reading("T1", "temperature", 20.5, t + 600, "A1"), Reading("S1", "smoke", 1.0, t + 600, "A1"),
                       Reading("W1", "leak", 1.0, t + 601, "A1")])
        wait_for(lambda: {"smoke:S1", "leak:W1"} <= set(_alerts(service)), "smoke and leak judged", timeout=20)
        assert feed.current() is not None and feed.queued() == 2  # the rest still waits, in order
        assert service.engine.counters.readings == 2  # nothing else was judged ahead of its turn
        release.set()
        assert feed.join(30)
        assert service.engine.counters.readings == 503 and feed.errors == 0
        assert _alerts(service) == {"smoke:S1": "active", "leak:W1": "active"}
    finally:
        release.set()
        feed.stop(30)
        service.stop()


def test_smoke_is_queued_while_the_main_lane_is_full(tmp_path: Path) -> None:
    """Review of fix 6, finding 8: the two lanes shared one bound, so with the main queue full a smoke commit's
    put waited until the first thread took its next item (after the whole item it was judging). Now the
    alarm goes into its own lane at once; the commit's other readings wait for room (backpressure)."""
    config = site_config(tmp_path, sensors=("T1", "S1"))
    service = AlertService(config, tmp_path / "archmon.db")
    feed = AlertFeed(service, on_backlog=lambda backlog: None, max_items=2)
    feed.start()
    held, release = threading.Event(), threading.Event()
    t = now_ms()
    feed.call("test: busy with an earlier commit", lambda: (held.set(), release.wait(60)))
    writer = None
    try:
        held.wait(30)
        for k in range(2):  # the main lane at its bound
            feed.readings([Reading("T1", "temperature", 20.0, t + k, "A1")])
        assert feed.queued() == 2
        writer = threading.Thread(target=feed.readings, args=([Reading("S1", "smoke", 1.0, t + 5, "A1"),
                                                                Reading("T1", "temperature", 20.1, t + 5, "A1")],))
        writer.start()  # (the store writer's thread: it blocks on the main lane, after queueing the alarm)
        wait_for(lambda: _alerts(service).get("smoke:S1") == "active", "smoke judged", timeout=20)
        assert feed.current() is not None and writer.is_alive()  # the first thread is still held
        release.set()
        writer.join(30)
        assert feed.join(30) and service.engine.counters.readings == 4
    finally:
        release.set()
        if writer is not None:
            writer.join(30)
        feed.stop(30)
        service.stop()


def test_abandon_hands_back_the_urgent_lane_too(tmp_path: Path) -> None:
    """A stop that gives up takes what both lanes still hold (the stop judges the alarms among it at once)."""
    config = site_config(tmp_path, sensors=("T1", "S1"))
    service = AlertService(config, tmp_path / "archmon.db")
    feed = AlertFeed(service, on_backlog=lambda backlog: None)  # not started: everything stays queued
    t = now_ms()
    feed.readings([Reading("T1", "temperature", 20.0, t, "A1"), Reading("S1", "smoke", 1.0, t, "A1")])
    assert feed.queued() == 2
    taken = feed.abandon()
    assert sorted(r.quantity for item in taken for r in item.readings) == ["smoke", "temperature"]
    assert feed.stop(1)
    service.stop()
