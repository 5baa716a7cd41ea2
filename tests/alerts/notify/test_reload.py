"""The notifier follows the configuration: a reload changes contacts, routes and channels at once; deliveries
of removed channels and contacts settle; a channel without its secret fails alone while the others run."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from alerts.notify import check_config, check_run_config
from alerts.notify.channels import IncomingSms
from archmon.config import parse_config
from tests.alerts.notify.harness import LI, ZHANG, Site, site_data
from tests.alerts.notify.servers import ProviderServer
from tests.fixtures.waiting import wait_for

ALERTS = {"rules": {"stale": {"enabled": False}}, "notify": {"repeat_s": {"critical": 0}, "escalate": []}}


def _notify(provider: ProviderServer) -> dict:
    return {"channels": {"hook": {"type": "webhook", "url": f"{provider.url}/hook"},
                         "hook2": {"type": "webhook", "url": f"{provider.url}/hook2"}},
            "contacts": [ZHANG, LI],
            "routes": [{"name": "all", "levels": [{"contacts": ["zhang", "li"], "channels": ["hook", "hook2"]}]}]}


def test_a_reload_changes_who_is_told_who_may_acknowledge_and_where_messages_go(
        tmp_path: Path, provider: ProviderServer) -> None:
    provider.answer = lambda r: (500, "down") if r.path == "/hook2" else (200, {"errcode": 0})
    notify = _notify(provider)
    site = Site(tmp_path, notify, alerts=ALERTS)
    try:
        site.reading("S1", "smoke", 1.0)
        site.step()  # hook took the alarm, hook2 failed and waits to retry
        kept = site.notifier.channels["hook"]
        new = copy.deepcopy(notify)
        del new["channels"]["hook2"]
        new["contacts"] = [ZHANG]
        new["routes"][0]["levels"][0] = {"contacts": ["zhang"], "channels": ["hook"]}
        new["channels"]["hook"]["headers"] = {"X-Reloaded": "yes"}  # a changed channel is rebuilt
        site.notifier.reload(parse_config(site_data(tmp_path, new, alerts=ALERTS)))

        assert set(site.notifier.channels) == {"hook"} and site.notifier.channels["hook"] is not kept
        [(status, answer)] = [(r["status"], r["answer"]) for r in site.rows(
            "SELECT status, answer FROM notify_deliveries WHERE channel = 'hook2'")]
        assert (status, answer) == ("failed", "channel removed from config")
        assert [r["status"] for r in site.rows("SELECT status FROM notification_queue")] == ["sent"]
        # li is no contact any more: a reply from li's phone acknowledges nothing
        assert site.d.handle_reply("hook", IncomingSms(LI["phone"], "ACK 1"), site.now) == "help"
        assert site.store.alert(1)["state"] == "active"
        seen = len(provider.requests)
        site.reading("T1", "humidity", 80.0)
        site.at(600)
        site.step()
        later = provider.requests[seen:]
        assert later and {r.path for r in later} == {"/hook"}
        assert all(r.headers.get("X-Reloaded") == "yes" for r in later)
    finally:
        site.close()


def test_an_unchanged_channel_keeps_running_and_a_refused_table_changes_nothing(
        tmp_path: Path, provider: ProviderServer) -> None:
    notify = _notify(provider)
    site = Site(tmp_path, notify, alerts=ALERTS)
    try:
        before = dict(site.notifier.channels)
        new = copy.deepcopy(notify)
        new["contacts"] = [ZHANG]
        new["routes"][0]["levels"][0]["contacts"] = ["zhang"]
        site.notifier.reload(parse_config(site_data(tmp_path, new, alerts=ALERTS)))
        assert site.notifier.channels == before  # same objects: nothing was rebuilt
        assert [c.name for c in site.notifier.plan.config.contacts] == ["zhang"]
        broken = copy.deepcopy(new)
        broken["routes"][0]["levels"][0]["channels"] = ["nope"]
        site.notifier.reload(parse_config(site_data(tmp_path, broken, alerts=ALERTS)))  # refused, logged
        assert [c.name for c in site.notifier.plan.config.contacts] == ["zhang"]
    finally:
        site.close()


def test_deliveries_of_a_channel_removed_while_stopped_fail_at_the_next_start(tmp_path: Path,
                                                                              provider: ProviderServer) -> None:
    provider.answer = lambda r: (500, "down")
    notify = _notify(provider)
    site = Site(tmp_path, notify, alerts=ALERTS)
    site.reading("S1", "smoke", 1.0)
    site.step()
    site.notifier.stop(timeout_s=1)
    provider.answer = lambda r: (200, {"errcode": 0})
    new = copy.deepcopy(notify)
    del new["channels"]["hook2"]
    new["routes"][0]["levels"][0]["channels"] = ["hook"]
    site.config = parse_config(site_data(tmp_path, new, alerts=ALERTS))
    site.notifier = site.make_notifier()
    site.d = site.notifier.dispatcher
    site.now += 60_000  # hook's retry is due
    site.notifier.start()
    try:
        wait_for(lambda: not site.rows("SELECT id FROM notification_queue WHERE status = 'queued'"),
                 "the request to settle", timeout=20)
        statuses = {(r["channel"], r["status"], r["answer"]) for r in site.rows(
            "SELECT channel, status, answer FROM notify_deliveries WHERE alert_id = 1 AND channel = 'hook2'")}
        assert statuses == {("hook2", "failed", "channel removed from config")}
        assert set(site.notifier.outbox.channel_states()) <= {"hook"}
    finally:
        site.close()


def test_a_channel_without_its_secret_is_down_at_once_and_the_others_carry_its_alert(
        tmp_path: Path, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHMON_TEST_HOOK_SECRET", raising=False)
    notify = _notify(provider)
    notify["channels"]["hook"]["secret_env"] = "ARCHMON_TEST_HOOK_SECRET"
    config = parse_config(site_data(tmp_path, notify, alerts=ALERTS))
    assert check_config(config) == ["notify.channels.hook.secret: environment variable ARCHMON_TEST_HOOK_SECRET "
                                    "is not set"]
    assert check_run_config(config) == []  # archmon run starts all the same
    site = Site(tmp_path, notify, alerts=ALERTS)
    try:
        site.notifier.follow_config(site.now)  # what start() and reload do
        health = site.notifier.health.get("hook")
        assert health.state == "down" and "ARCHMON_TEST_HOOK_SECRET" in health.detail
        site.reading("S1", "smoke", 1.0)
        for t in range(0, 60, 5):
            site.at(t)
            site.step()
        rules = [(r.path, a["rule"]) for r in provider.requests for a in r.json()["alerts"]]
        assert ("/hook2", "smoke") in rules and ("/hook2", "channel") in rules
        assert all(path == "/hook2" for path, _ in rules)  # the webhook without its secret sent nothing
        failed = site.rows("SELECT answer FROM notify_deliveries WHERE channel = 'hook' AND answer IS NOT NULL")
        assert failed and all("ARCHMON_TEST_HOOK_SECRET is not set" in r["answer"] for r in failed)
        monkeypatch.setenv("ARCHMON_TEST_HOOK_SECRET", "now-there")  # e.g. a secret file written, then a reload
        site.notifier.reload(site.config)
        assert site.notifier.health.get("hook").broken is None
    finally:
        site.close()


def test_notify_turned_on_in_a_service_that_started_without_it_waits_for_a_restart(
        tmp_path: Path, provider: ProviderServer, caplog: pytest.LogCaptureFixture) -> None:
    from alerts.notify import reload_notifier

    config = parse_config(site_data(tmp_path, _notify(provider), alerts=ALERTS))
    assert reload_notifier(None, config) is None
    assert "notifications start at the next restart" in caplog.text
