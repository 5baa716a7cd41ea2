"""What the dispatcher sends, in what order and how long it keeps at it, in simulated time against real loopback
servers: the reviewer's reproductions of stale alarms after a recovery, reminders piling up in quiet hours and
outages, a smoke alarm behind a backlog, rejections that never made a channel down, and a "channel down"
alert built from a multi-line error page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.alerts.notify.harness import ZHANG, Site, modem_channel, smtp_channel
from tests.alerts.notify.servers import ProviderServer, SmtpServer

NIGHT = 1_709_564_400_000  # 2024-03-04 23:00 +08:00
NO_STALE = {"stale": {"enabled": False}}


def _hooks(provider: ProviderServer, *names: str, **extra: object) -> dict:
    return {"channels": {n: {"type": "webhook", "url": f"{provider.url}/{n}"} for n in names},
            "contacts": [ZHANG],
            "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": list(names)}]}], **extra}


def _smoke(provider: ProviderServer, start: int = 0, *, ok: tuple[str, ...] = ("/hook",)) -> list[tuple[str, str]]:
    """(path, kind) of the smoke messages the server took (answered 200: on the paths in ``ok``)."""
    return [(r.path, a["kind"]) for r in provider.requests[start:] if r.path in ok
            for a in r.json()["alerts"] if a["rule"] == "smoke"]


def test_a_channel_down_alert_from_a_multiline_error_page_is_mailed_and_mail_stays_healthy(
        tmp_path: Path, provider: ProviderServer, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHMON_TEST_SMTP_PW", "s3cret-pw")
    provider.answer = lambda r: (502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>")
    notify = {"channels": {"hook": {"type": "webhook", "url": f"{provider.url}/hook"},
                           "mail": smtp_channel(smtp_server.port, smtp_server.ca_file)},
              "contacts": [ZHANG], "routes": [
                  {"name": "hookonly", "rules": ["smoke"], "levels": [{"contacts": ["zhang"], "channels": ["hook"]}]},
                  {"name": "ops", "rules": ["channel"], "levels": [{"contacts": ["zhang"], "channels": ["mail"]}]}]}
    site = Site(tmp_path, notify, alerts={"rules": NO_STALE, "notify": {"repeat_s": {"critical": 0}, "escalate": []}})
    try:
        site.reading("S1", "smoke", 1.0)
        for t in range(0, 300, 5):
            site.at(t)
            site.step()
        [mail] = smtp_server.wait_for(1)
        subject = str(mail.message["Subject"])
        assert "通知通道 hook 故障：HTTP 502 <html> <head><title>502 Bad Gateway</title></head> </html>" in subject
        assert "\r" not in subject and "\n" not in subject
        assert site.notifier.health.get("mail").state == "ok"
        assert site.rows("SELECT outcome FROM notify_attempts a JOIN notify_deliveries d ON d.id = a.delivery_id "
                         "WHERE d.channel = 'mail'")[0]["outcome"] == "accepted"
    finally:
        site.close()


def test_alarms_still_queued_when_the_alert_clears_are_cancelled_and_only_those_told_hear_it_recovered(
        tmp_path: Path, provider: ProviderServer) -> None:
    up = {"hook2": False}
    provider.answer = lambda r: (200, {"errcode": 0}) if r.path == "/hook" or up["hook2"] else (500, "down")
    site = Site(tmp_path, _hooks(provider, "hook", "hook2"),
                alerts={"rules": NO_STALE, "notify": {"repeat_s": {"critical": 900}, "escalate": []}})
    try:
        site.reading("S1", "smoke", 1.0)
        for t in range(0, 3000, 10):  # hook takes the alarm and three reminders; hook2 is down all along
            site.at(t)
            site.step()
        assert _smoke(provider) == [("/hook", "fired"), ("/hook", "repeat"), ("/hook", "repeat"), ("/hook", "repeat")]
        seen = len(provider.requests)
        site.reading("S1", "smoke", 0.0)  # the smoke is gone; nobody acknowledged
        site.step()
        up["hook2"] = True  # hook2 comes back with the alarm and its reminder still queued
        for t in range(3000, 4000, 10):
            site.at(t)
            site.step()
        # nothing says "alarm" after "recovered"; hook2, which never got the alarm, gets no recovery either
        assert _smoke(provider, seen, ok=("/hook", "/hook2")) == [("/hook", "recovered")]
        stale = site.rows("SELECT kind, status, answer FROM notify_deliveries WHERE channel = 'hook2' "
                          "AND alert_id = 1 ORDER BY id")
        assert {r["status"] for r in stale} == {"cancelled"}  # each reminder took its predecessor's place, ...
        assert stale[-1]["answer"] == "the alert recovered before this went out"  # ... and the last one this
        assert [r["status"] for r in site.rows("SELECT status FROM notification_queue ORDER BY id")][-1] == "sent"
        assert not site.rows("SELECT id FROM notification_queue WHERE status IN ('pending', 'queued')")
    finally:
        site.close()


@pytest.mark.parametrize("window", [30, 0])
def test_reminders_held_by_quiet_hours_do_not_pile_up(tmp_path: Path, provider: ProviderServer, window: int) -> None:
    notify = _hooks(provider, "hook", group_window_s=window)
    notify["routes"][0]["quiet_hours"] = "22:00-07:00"
    site = Site(tmp_path, notify, start_ms=NIGHT, alerts={
        "rules": {**NO_STALE, "door_hours": {"severity": "minor"}},
        "notify": {"repeat_s": {"critical": 0, "major": 900, "minor": 900}, "escalate": []}})
    try:
        site.reading("D11", "door", 1.0)  # the door stays open all night: door_open (major), door_hours (minor)
        for t in range(0, 8 * 3600, 60):  # until 07:00
            site.at(t)
            site.step()
        assert provider.requests == []
        for t in range(8 * 3600, 8 * 3600 + 60, 5):  # 07:00 to 07:01
            site.at(t)
            site.step()
        listed = [a["id"] for r in provider.requests for a in r.json()["alerts"]]
        assert sorted(listed) == [1, 2]  # one reminder per alert, each alert listed once
        superseded = site.rows("SELECT COUNT(*) FROM notify_deliveries WHERE status = 'cancelled' "
                               "AND answer LIKE 'a newer repeat%'")[0][0]
        assert superseded >= 60  # 32 held reminders each, all but the newest cancelled
    finally:
        site.close()


def test_after_a_long_outage_each_recipient_gets_the_newest_reminder_once(tmp_path: Path,
                                                                          provider: ProviderServer) -> None:
    provider.answer = lambda r: (500, "down")
    site = Site(tmp_path, _hooks(provider, "hook"),
                alerts={"rules": NO_STALE, "notify": {"repeat_s": {"critical": 900}, "escalate": []}})
    try:
        site.reading("S1", "smoke", 1.0)
        for t in range(0, 6 * 3600, 60):
            site.at(t)
            site.step()
        queued = site.rows("SELECT kind FROM notify_deliveries WHERE status = 'queued'")
        assert [r["kind"] for r in queued] == ["repeat"]  # 24 reminders queued in turn; only the newest waits
        provider.answer = lambda r: (200, {"errcode": 0})
        seen = len(provider.requests)
        for t in range(6 * 3600, 6 * 3600 + 600, 10):
            site.at(t)
            site.step()
        assert [(b["alerts"][0]["id"], b["alerts"][0]["kind"]) for b in (r.json() for r in provider.requests[seen:])
                ] == [(1, "repeat")]
        assert "hook" not in site.d._recent  # no rate limit: no send times kept at all
    finally:
        site.close()


def test_a_smoke_alarm_expanded_during_a_backlog_is_the_next_message(tmp_path: Path, provider: ProviderServer) -> None:
    site = Site(tmp_path, _hooks(provider, "hook", group_window_s=0), alerts={"rules": NO_STALE})
    try:
        for i in range(40):  # a backlog of 40 major reminders (say, after an outage)
            site.store.enqueue_notification(100 + i, "repeat", "major", "major/A1", 0, site.now,
                                            {"ts": "2024-03-04T12:00:00+08:00", "rule": "door_open", "room": "A1",
                                             "sensor": f"D{i}"})
        site.d.expand_pending(site.now)
        channel = site.notifier.channels["hook"]
        send, order = channel.send, []

        def sending(message, recipient):  # the dispatch thread expands a smoke alarm while the first one goes out
            result = send(message, recipient)
            order.append(message.data["alerts"][0]["rule"])
            if len(order) == 1:
                site.store.enqueue_notification(999, "fired", "critical", "critical/A1", 0, site.now,
                                                {"ts": "2024-03-04T12:00:00+08:00", "rule": "smoke", "room": "A1",
                                                 "sensor": "S1"})
                site.d.expand_pending(site.now)
            return result

        channel.send = sending  # type: ignore[method-assign]
        assert site.d.send_due("hook", site.now) == 41
        assert order.index("smoke") == 1
    finally:
        site.close()


@pytest.mark.serial
def test_replies_are_read_and_answered_between_the_messages_of_a_backlog(tmp_path: Path, pty_pair) -> None:
    from devices.simulators.gsm_modem import GsmModemSimulator

    notify = {"group_window_s": 0, "channels": {"modem": modem_channel(pty_pair.a)}, "contacts": [ZHANG],
              "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": ["modem"]}]}]}
    with GsmModemSimulator(pty_pair.b) as modem:
        site = Site(tmp_path, notify, alerts={"rules": NO_STALE})
        try:
            for i in range(4):
                site.store.enqueue_notification(100 + i, "repeat", "major", "major/A1", 0, site.now,
                                                {"ts": "2024-03-04T12:00:00+08:00", "rule": "door_open",
                                                 "room": "A1", "sensor": f"D{i}"})
            site.d.expand_pending(site.now)
            modem.deliver_sms("+8613800000001", "what?")  # waiting on the SIM when the backlog starts
            site.d.send_due("modem", site.now)
            texts = [t.text for t in modem.texts_sent()]
            assert len(texts) == 5 and texts[1].startswith("archmon：回复 1 确认")  # the help text came second
        finally:
            site.close()


def test_a_webhook_rejecting_everything_is_down_and_says_so_through_the_other_channel(
        tmp_path: Path, provider: ProviderServer) -> None:
    provider.answer = lambda r: (404, "<html>Not Found</html>") if r.path == "/hook" else (200, {"errcode": 0})
    site = Site(tmp_path, _hooks(provider, "hook", "hook2"),
                alerts={"rules": NO_STALE, "notify": {"repeat_s": {"critical": 60}, "escalate": []}})
    try:
        site.reading("S1", "smoke", 1.0)
        for t in range(0, 400, 10):
            site.at(t)
            site.step()
        health = site.notifier.health.get("hook")
        assert health.state == "down" and health.detail == "HTTP 404 <html>Not Found</html>"
        down = site.store.open_alert("channel:hook")
        assert down is not None and down["state"] == "active"
        told = [r.json()["alerts"][0] for r in provider.requests if r.path == "/hook2"]
        assert any(a["rule"] == "channel" and a["sensor"] == "hook" for a in told)
        provider.answer = lambda r: (200, {"errcode": 0})  # fixed: the next send works and the alert clears
        for t in range(400, 600, 10):
            site.at(t)
            site.step()
        assert site.notifier.health.get("hook").state == "ok"
        assert site.store.alert(down["id"])["state"] in ("cleared", "closed")
    finally:
        site.close()


def test_a_message_that_cannot_be_built_is_rejected_without_blaming_the_channel(
        tmp_path: Path, provider: ProviderServer) -> None:
    site = Site(tmp_path, _hooks(provider, "hook"), alerts={"rules": NO_STALE})
    try:
        site.store.enqueue_notification(7, "fired", "critical", "critical/A1", 0, site.now,
                                        {"ts": "2024-03-04T12:00:00+08:00", "rule": "smoke", "room": "A1",
                                         "value": "not a number", "quantity": "temperature"})
        site.reading("S1", "smoke", 1.0)
        site.step()
        [bad] = site.rows("SELECT status, answer FROM notify_deliveries WHERE alert_id = 7")
        assert bad["status"] == "failed" and bad["answer"].startswith("the message cannot be built")
        assert [r.json()["alerts"][0]["rule"] for r in provider.requests] == ["smoke"]  # the next one went out
        assert site.notifier.health.get("hook").state == "ok"
    finally:
        site.close()

