"""The live notifier: threads woken by the event hub, results published as ``notification`` events."""

from __future__ import annotations

import threading
from pathlib import Path

from alerts.notify.notifier import Notifier
from alerts.store import AlertStore
from archmon.config import parse_config
from archmon.hub import EventHub
from archmon.timeutil import now_ms
from tests.alerts.notify.harness import ZHANG, site_data
from tests.alerts.notify.servers import ProviderServer


def test_an_alert_event_wakes_the_notifier_and_the_result_is_published(tmp_path: Path,
                                                                        provider: ProviderServer) -> None:
    notify = {"poll_s": 60,  # so only the hub's wake-up can explain a quick delivery
              "channels": {"hook": {"type": "webhook", "url": f"{provider.url}/h"}}, "contacts": [ZHANG],
              "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": ["hook"]}]}]}
    config = parse_config(site_data(tmp_path, notify))
    store = AlertStore(tmp_path / "archmon.db")
    hub = EventHub()
    results = hub.subscribe(["notification"], name="test")
    notifier = Notifier(config, tmp_path / "archmon.db", hub=hub)
    notifier.start()
    try:
        store.enqueue_notification(1, "fired", "critical", "critical/A1", 0, now_ms(),
                                   {"ts": "2024-03-04T04:00:00Z", "rule": "smoke", "room": "A1", "sensor": "S1"})
        hub.publish("alert", {"alert": 1})
        event = results.get(timeout=20)
        assert event is not None and event.kind == "notification"
        assert event.data["channel"] == "hook" and event.data["outcome"] == "accepted"
        assert event.data["alert_ids"] == [1] and event.data["channel_state"] == "ok"
        assert len(provider.requests) == 1
    finally:
        notifier.stop(timeout_s=5)
        store.close()
    assert [t.name for t in threading.enumerate() if t.name in ("notify-dispatch", "notify-hook")] == []
    assert hub.subscribers() == (results,)  # the notifier's own subscription is gone
