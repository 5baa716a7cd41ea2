"""The Service's event hub on a real Mosquitto: every commit's readings are published, a subscriber that
never reads costs nothing to ingest, source state changes are published, and the service's counters
(writer, hub, alert service) are persisted for ``archmon status``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from archmon.app import Service, SourceState
from archmon.config import load_config
from archmon.paho import stop_network_loop
from tests.archmon.operations import publisher
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def service(tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[Service]:
    path = tmp_path / "archmon.toml"
    path.write_text(
        f'[site]\nname = "t"\n[[rooms]]\nid = "paper"\n'
        f'[[mqtt]]\nid = "b"\nport = {mosquitto.port}\nclient_id = "svc-hub"\nreconnect_max_s = 1\n'
        f'[[sensors]]\nid = "th"\nroom = "paper"\nsource = "b"\ntopic = "zigbee2mqtt/th"\nformat = "zigbee2mqtt"\n',
        encoding="utf-8",
    )
    svc = Service(load_config(path))
    try:
        yield svc
    finally:
        svc.stop()


def test_a_subscriber_that_never_reads_does_not_hold_up_ingest(service: Service, mosquitto: MosquittoBroker) -> None:
    total = 3000
    stalled = service.hub.subscribe(["readings"], name="never-reads", maxsize=5)
    everything = service.hub.subscribe(["readings"], name="reads-later", maxsize=100_000)
    service.start()
    assert next(iter(service.sources().values())).wait_connected(15)
    pub = publisher(mosquitto.port, "svc-hub-pub")
    try:
        infos = [pub.publish("zigbee2mqtt/th", json.dumps({"temperature": i / 100}), qos=1) for i in range(total)]
        for info in infos:
            info.wait_for_publish(30)
        wait_for(lambda: service.store.count_readings("th", "temperature") == total, "every reading stored")
    finally:
        stop_network_loop(pub)
        pub.disconnect()
    assert service.writer.flush(10)
    events = everything.drain()
    assert sum(len(e.data) for e in events) == total  # one event per commit, with that commit's readings
    assert sorted(r.value for e in events for r in e.data) == [i / 100 for i in range(total)]
    assert len(events) > 5  # enough commits to overflow the stalled subscriber
    assert stalled.pending() == 5 and stalled.dropped == len(events) - 5
    service.report_stats()
    assert service.writer.flush(10)
    assert service.store.counters()["hub.never-reads.dropped"] == stalled.dropped


def test_source_state_changes_are_published(service: Service, mosquitto: MosquittoBroker) -> None:
    sources = service.hub.subscribe(["source"], name="sources")
    service.start()

    def next_state() -> SourceState:
        event = sources.get(timeout=30)
        assert event is not None, "no source event"
        assert isinstance(event.data, SourceState)
        return event.data

    first = next_state()  # the first observation after start: disconnected if taken before the CONNACK
    if first.state == "disconnected":
        assert next_state().state == "connected"
    assert first.source == "b"
    mosquitto.stop()
    down = next_state()
    assert (down.source, down.state) == ("b", "disconnected")
    mosquitto.start()
    assert next_state().state == "connected"


def test_alert_service_numbers_are_persisted_as_counters_or_states(service: Service) -> None:
    """Every number of ``AlertService.stats()`` lands where its kind says: a counter with its value (a reading
    older than the 24 h window makes ``late_for_alerts`` 1, not just present), a state as a gauge (also the
    ``_ms`` duration ``rebuild_ms``); only undeclared ``_ms`` names (times of day) are left out, none here."""
    from archmon.app.stats import ALERT_GAUGES, is_gauge
    from archmon.domain import Reading
    from archmon.timeutil import now_ms
    from collector.records import Batch

    service.start()
    now = now_ms()
    fresh, old = Batch(), Batch()
    fresh.readings.append(Reading("th", "temperature", 20.0, now, "paper"))
    old.readings.append(Reading("th", "temperature", 20.0, now - 2 * 86_400_000, "paper"))  # behind the window
    service._submit(fresh)
    assert service.writer.flush(10) and service._alert_feed.join(10)
    service._submit(old)
    assert service.writer.flush(10) and service._alert_feed.join(10)
    stats = service.alerts.stats()
    service.report_stats()
    assert service.writer.flush(10)
    counters = service.store.counters()
    gauges = service.store.gauges()
    assert stats["late_for_alerts"] == 1 and counters["alerts.late_for_alerts"] == 1
    assert stats["readings_judged"] == 2 and counters["alerts.readings_judged"] == 2
    declared = frozenset(getattr(service.alerts, "stats_gauges", None) or ALERT_GAUGES)
    for name, value in stats.items():
        kind = is_gauge(name, declared)
        assert kind is not None, f"{name}: neither a counter nor a state"
        if kind:
            assert gauges[f"alerts.{name}"][0] == value, name
            assert f"alerts.{name}" not in counters, name
        else:
            assert counters.get(f"alerts.{name}", 0) == value, name
            assert f"alerts.{name}" not in gauges, name
    assert gauges["alerts.series"][0] == 1
