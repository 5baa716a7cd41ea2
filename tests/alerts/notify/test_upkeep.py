"""The notify tables stay bounded: retention of settled deliveries, attempts and received SMS; a provider's
error page that comes back on every retry is kept once in full; smoke and leak never wait for quiet hours."""

from __future__ import annotations

import json
from pathlib import Path

from alerts.notify.channels import IncomingSms
from tests.alerts.notify.harness import ZHANG, Site
from tests.alerts.notify.servers import ProviderServer

ALERTS = {"rules": {"stale": {"enabled": False}}, "notify": {"repeat_s": {"critical": 0}, "escalate": []}}
PAGE = "<html>" + "x" * 4000 + "</html>"


def _notify(provider: ProviderServer, **extra: object) -> dict:
    return {"channels": {"hook": {"type": "webhook", "url": f"{provider.url}/hook"}}, "contacts": [ZHANG],
            "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": ["hook"]}]}], **extra}


def test_retention_removes_what_is_settled_and_old_and_keeps_the_rest(tmp_path: Path,
                                                                      provider: ProviderServer) -> None:
    site = Site(tmp_path, _notify(provider, retention_days=30),
                alerts={"rules": {"stale": {"enabled": False}, "smoke": {"close_after_s": 0}},
                        "notify": {"repeat_s": {"critical": 0}, "escalate": []}})
    try:
        site.reading("S1", "smoke", 1.0)  # alert 1: sent, then over and closed
        site.step()
        site.reading("S1", "smoke", 0.0)
        site.step()
        site.d.handle_reply("hook", IncomingSms("+8613999999999", "hi"), site.now)
        site.step()
        site.at(40 * 86_400)  # 40 days later: a new alarm, still open
        site.reading("S1", "smoke", 1.0)
        site.step()
        before = site.rows("SELECT COUNT(*) FROM notify_deliveries")[0][0]
        removed = site.notifier.apply_retention()
        assert removed.deliveries == before - 1 and removed.inbox == 1 and removed.attempts == before - 1
        [(kind, alert)] = [(r["kind"], r["alert_id"])
                           for r in site.rows("SELECT kind, alert_id FROM notify_deliveries")]
        assert kind == "fired" and site.store.alert(alert)["state"] == "active"
        assert site.rows("SELECT COUNT(*) FROM notify_attempts")[0][0] == 1
        assert site.notifier.apply_retention() == (0, 0, 0)
    finally:
        site.close()


def test_an_open_alert_keeps_its_old_deliveries_so_its_recovery_still_reaches_them(
        tmp_path: Path, provider: ProviderServer) -> None:
    site = Site(tmp_path, _notify(provider, retention_days=1),
                alerts=ALERTS)
    try:
        site.reading("S1", "smoke", 1.0)
        site.step()
        site.at(3 * 86_400)
        site.step()
        assert site.notifier.apply_retention().deliveries == 0
        site.reading("S1", "smoke", 0.0)
        site.step()
        assert [r.json()["alerts"][0]["kind"] for r in provider.requests] == ["fired", "recovered"]
    finally:
        site.close()


def test_the_same_error_page_on_every_retry_is_kept_in_full_once(tmp_path: Path, provider: ProviderServer) -> None:
    provider.answer = lambda r: (500, PAGE)
    site = Site(tmp_path, _notify(provider, retry={"backoff_s": [10]}),
                alerts=ALERTS)
    try:
        site.reading("S1", "smoke", 1.0)
        for t in range(0, 300, 10):
            site.at(t)
            site.step()
        answers = [r["answer"] for r in site.rows("SELECT answer FROM notify_attempts ORDER BY id")]
        assert len(answers) > 20 and len(answers[0]) == len(f"HTTP 500 {PAGE}"[:2009])
        assert all(len(a) < 220 and a.endswith("(the same answer as the attempt before)") for a in answers[1:])
    finally:
        site.close()


def test_smoke_never_waits_for_quiet_hours_whatever_its_severity(tmp_path: Path, provider: ProviderServer) -> None:
    notify = _notify(provider)
    notify["routes"][0]["quiet_hours"] = "00:00-24:00"
    site = Site(tmp_path, notify, alerts={"rules": {"stale": {"enabled": False}}})
    try:
        for i, (rule, severity) in enumerate([("smoke", "major"), ("leak", "minor"), ("band", "major")]):
            request = {"id": 100 + i, "alert_id": 50 + i, "transition": "fired", "severity": severity,
                       "route": f"{severity}/A1", "level": 0,
                       "payload": json.dumps({"rule": rule, "room": "A1"})}
            [delivery] = site.d.router.expand(request, site.now).deliveries
            assert (delivery.due_ms == site.now) == (rule != "band"), rule
            assert delivery.group_key is None or rule == "band"
    finally:
        site.close()
