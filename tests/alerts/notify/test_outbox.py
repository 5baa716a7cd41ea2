"""The outbox in simulated time: grouping, quiet hours, recovery messages, cancellation on acknowledgement,
expiry, and what a crash between queueing and sending does (nothing lost, at most one marked copy)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.notify.channels import Recipient
from alerts.notify.outbox import Outbox
from tests.alerts.notify.harness import LI, ZHANG, Site
from tests.alerts.notify.servers import ProviderServer

HOOK_ENV = {"WH_SECRET": "s"}


def _notify(provider: ProviderServer, **extra: object) -> dict:
    return {"channels": {"hook": {"type": "webhook", "url": f"{provider.url}/hook"},
                         "hook2": {"type": "webhook", "url": f"{provider.url}/hook2"}},
            "contacts": [ZHANG, LI],
            "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": ["hook"]},
                                                  {"contacts": ["li"], "channels": ["hook2"]}]}],
            **extra}


@pytest.fixture
def site(tmp_path: Path, provider: ProviderServer) -> Iterator[Site]:
    s = Site(tmp_path, _notify(provider), alerts={"notify": {"repeat_s": {"critical": 900, "major": 0},
                                                             "escalation_after_s": [1800]}})
    try:
        yield s
    finally:
        s.close()


def _bodies(provider: ProviderServer) -> list[dict]:
    return [r.json() for r in provider.requests]


def test_many_sensors_offline_go_out_as_one_message_but_smoke_is_not_held(site: Site, provider: ProviderServer) -> None:
    offline = ["D11", "D21", "D12", "D22", "D13"]
    for i, sensor in enumerate(offline):
        site.at(i)
        site.engine.availability(sensor, "offline", site.now)
        site.step()
    assert provider.requests == []  # held for the 30 s window
    site.at(10)
    site.reading("S1", "smoke", 1.0)
    site.step()
    assert len(provider.requests) == 1 and provider.requests[0].json()["alerts"][0]["rule"] == "smoke"
    site.at(29)
    site.step()
    assert len(provider.requests) == 1
    site.at(30)
    site.step()
    assert len(provider.requests) == 2
    grouped = provider.requests[1].json()
    assert grouped["subject"] == "【告警·严重】5 个传感器离线，涉及 3 个库房："
    assert [a["sensor"] for a in grouped["alerts"]] == offline
    assert "#1 一号库房 D11：传感器离线/无数据\n#2 一号库房 D21" in grouped["text"]
    rows = site.rows("SELECT DISTINCT batch FROM notify_deliveries WHERE kind = 'fired' AND alert_id <= 5")
    assert len(rows) == 1  # one message carried the five deliveries


def test_quiet_hours_hold_minor_alerts_until_morning_critical_ones_never(tmp_path: Path,
                                                                         provider: ProviderServer) -> None:
    notify = _notify(provider, group_window_s=0)
    notify["routes"][0]["quiet_hours"] = "22:00-07:00"
    night = 1_709_564_400_000  # 2024-03-04 23:00 +08:00
    site = Site(tmp_path, notify, start_ms=night,
                alerts={"rules": {"stale": {"enabled": False}, "door_hours": {"severity": "minor"}},
                        "notify": {"repeat_s": {"critical": 0, "major": 0, "minor": 0}, "escalate": []}})
    try:
        site.reading("D11", "door", 1.0)  # a door opened at night: minor here
        site.reading("S1", "smoke", 1.0)
        site.step()
        assert [b["alerts"][0]["rule"] for b in _bodies(provider)] == ["smoke"]
        site.at(7 * 3600 + 59 * 60 + 59)  # 06:59:59
        site.step()
        assert len(provider.requests) == 1
        site.at(8 * 3600)  # 07:00
        site.step()
        rules = [b["alerts"][0]["rule"] for b in _bodies(provider)]
        assert rules[0] == "smoke" and sorted(rules[1:]) == ["door_hours", "door_open"]  # held until 07:00
        held = site.rows("SELECT due_ms FROM notify_deliveries WHERE severity != 'critical'")
        assert {r["due_ms"] for r in held} == {night + 8 * 3600 * 1000}
    finally:
        site.close()


def test_recovery_goes_to_everyone_who_was_told(site: Site, provider: ProviderServer) -> None:
    site.reading("S1", "smoke", 1.0)
    site.step()
    site.at(1800)  # escalated to li (hook2)
    site.step()
    assert {r.path for r in provider.requests} == {"/hook", "/hook2"}
    site.at(1900)
    site.reading("S1", "smoke", 0.0)
    site.step()
    recovered = [(r.path, r.json()) for r in provider.requests if r.json()["alerts"][0]["kind"] == "recovered"]
    assert sorted(path for path, _ in recovered) == ["/hook", "/hook2"]
    for _, body in recovered:  # group channels speak the site's language
        assert body["subject"].startswith("【已恢复】#1 一号库房 S1")
        assert "恢复于 2024-03-04 12:31 +08:00" in body["text"]


def test_deliveries_of_an_acknowledged_alert_still_queued_are_cancelled(site: Site, provider: ProviderServer) -> None:
    site.engine.availability("D11", "offline", site.now)  # major: waits for its group window
    site.step()
    site.acknowledge(1, "王五", "seen")
    site.at(31)
    site.step()
    assert provider.requests == []
    assert [r["status"] for r in site.rows("SELECT status FROM notify_deliveries")] == ["cancelled"]
    assert [r["status"] for r in site.rows("SELECT status FROM notification_queue")] == ["failed"]


def test_old_requests_expire_instead_of_flooding(site: Site, provider: ProviderServer) -> None:
    site.store.enqueue_notification(1, "fired", "critical", "critical/A1", 0, site.now - 2 * 86_400_000,
                                    {"rule": "smoke", "room": "A1"})
    site.step()
    assert provider.requests == []
    assert [r["status"] for r in site.rows("SELECT status FROM notification_queue")] == ["expired"]


def test_a_crash_between_queueing_and_sending_loses_nothing_and_sends_nothing_twice(
        site: Site, provider: ProviderServer) -> None:
    site.engine.availability("D11", "offline", site.now)
    site.reading("S1", "smoke", 1.0)
    site.d.expand_pending(site.now)  # both requests queued as deliveries; the process "dies" here
    site.notifier.outbox.close()
    restarted = site.make_notifier()
    restarted.outbox.recover(site.now)
    for name in restarted.channels:
        restarted.dispatcher.send_due(name, site.now)
    site.at(31)
    for name in restarted.channels:
        restarted.dispatcher.send_due(name, site.now)
    bodies = _bodies(provider)
    assert sorted(b["alerts"][0]["rule"] for b in bodies) == ["smoke", "stale"]
    assert not any(b["possible_duplicate"] for b in bodies)
    restarted.stop(timeout_s=1)


def test_a_crash_during_a_send_sends_it_once_more_marked_as_possible_duplicate(
        site: Site, provider: ProviderServer) -> None:
    site.reading("S1", "smoke", 1.0)
    site.d.expand_pending(site.now)
    outbox = site.notifier.outbox
    [batch] = outbox.due("hook", site.now)
    outbox.start(batch, site.now)  # committed "sending"; the provider took it; the process dies before recording
    channel = site.notifier.channels["hook"]
    channel.send(site.d.renderer.render(batch), Recipient("hook"))
    outbox.close()
    restarted = site.make_notifier()
    assert restarted.outbox.recover(site.now) == 1
    restarted.dispatcher.send_due("hook", site.now)
    restarted.dispatcher.send_due("hook", site.now + 1000)
    bodies = _bodies(provider)
    assert len(bodies) == 2 and [b["possible_duplicate"] for b in bodies] == [False, True]
    assert bodies[1]["subject"].endswith("（可能重复发送）")
    attempts = [a["outcome"] for a in restarted.outbox.query("SELECT outcome FROM notify_attempts ORDER BY id")]
    assert attempts == ["interrupted", "accepted"]
    restarted.stop(timeout_s=1)


def test_migrations_are_recorded_and_a_second_open_is_idempotent(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "x.db")
    first.close()
    second = Outbox(tmp_path / "x.db")
    try:
        assert second.query("SELECT version FROM schema_migrations WHERE component = 'notify'")[0][0] == 2
    finally:
        second.close()


def test_payload_is_kept_verbatim(site: Site) -> None:
    site.reading("S1", "smoke", 1.0)
    site.d.expand_pending(site.now)
    [row] = site.rows("SELECT d.payload AS d, q.payload AS q FROM notify_deliveries d "
                      "JOIN notification_queue q ON q.id = d.request_id")
    assert json.loads(row["d"]) == json.loads(row["q"])
