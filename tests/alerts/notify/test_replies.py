"""Who may acknowledge what by SMS: sender names never, a contact only alerts sent to that contact, a bare
number only if it is such an alert; answers in the contact's language; help texts capped overall."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.notify.channels import IncomingSms
from alerts.notify.replies import parse_reply
from devices.simulators.gsm_modem import GsmModemSimulator
from devices.simulators.pty_pair import PtyPair
from tests.alerts.notify.harness import LI, ZHANG, Site, modem_channel

ZH = ZHANG["phone"]


def _notify(channels: dict, **extra: object) -> dict:
    return {"channels": channels, "contacts": [ZHANG, LI],
            "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": list(channels)}]}], **extra}


@pytest.fixture
def site(tmp_path: Path, provider) -> Iterator[Site]:  # smoke alarms go to zhang only
    s = Site(tmp_path, _notify({"hook": {"type": "webhook", "url": f"{provider.url}/hook"}}),
             alerts={"rules": {"stale": {"enabled": False}}, "notify": {"repeat_s": {"critical": 0}, "escalate": []}})
    try:
        s.reading("S1", "smoke", 1.0)
        s.step()
        yield s
    finally:
        s.close()


def _answers(site: Site) -> list[str]:
    import json

    return [json.loads(r["payload"])["text"] for r in site.rows(
        "SELECT payload FROM notify_deliveries WHERE kind = 'reply' ORDER BY id")]


def test_a_sender_name_never_acknowledges_even_made_of_a_contacts_digits(site: Site) -> None:
    for sender, kind in (("ZHANG13800000001", "unknown"), ("13800000001", "alphanumeric")):
        assert site.d.handle_reply("hook", IncomingSms(sender, "ACK 1", number_type=kind), site.now) == "ignored"
    assert site.store.alert(1)["state"] == "active"
    assert _answers(site) == []  # nothing is sent to a name
    assert [r["result"] for r in site.rows("SELECT result FROM notify_inbox")] == [
        "sender is a name, not a phone number"] * 2


def test_the_other_forms_of_a_contacts_number_acknowledge(site: Site) -> None:
    assert site.d.handle_reply("hook", IncomingSms("+86 138 0000 0001", "ACK 1", number_type="international"),
                               site.now) == "ack"
    assert site.store.alert(1)["state"] == "acknowledged"


def test_a_contact_acknowledges_only_alerts_sent_to_them(site: Site) -> None:
    assert site.d.handle_reply("hook", IncomingSms(LI["phone"], "ACK 1"), site.now) == "ack_failed"
    assert site.store.alert(1)["state"] == "active"
    assert _answers(site) == ["archmon: could not acknowledge: #1 was not sent to you."]  # li reads English
    assert site.d.handle_reply("hook", IncomingSms(ZH, "确认 1, 99"), site.now) == "ack"
    assert _answers(site)[-1] == "已确认告警 #1（张三），停止重复通知。另：#99未发给您，不能确认。"


def test_a_bare_number_that_is_no_alert_sent_to_the_contact_gets_the_help_text(site: Site) -> None:
    assert parse_reply("11").bare and not parse_reply("ACK 11").bare
    assert site.d.handle_reply("hook", IncomingSms(ZH, "11"), site.now) == "help"  # a double-tapped "1"
    assert _answers(site) == ["archmon：回复 1 确认最近的告警，或“确认 告警号”（如 确认 1234）。"]
    assert site.store.alert(1)["state"] == "active"
    assert site.d.handle_reply("hook", IncomingSms(ZH, "#1"), site.now + 1) == "ack"  # a bare id sent to zhang


def test_help_replies_are_capped_for_all_numbers_together(site: Site) -> None:
    actions = [site.d.handle_reply("hook", IncomingSms(f"+861390000{i:04d}", "hello"), site.now + i)
               for i in range(25)]
    assert actions == ["help"] * 20 + ["ignored"] * 5  # help_replies_per_hour = 20
    later = site.now + 3_600_000 + 25
    assert site.d.handle_reply("hook", IncomingSms("+8613911112222", "hello"), later) == "help"


@pytest.mark.serial
def test_through_the_modem_a_sender_name_of_digits_is_ignored(tmp_path: Path, pty_pair: PtyPair) -> None:
    with GsmModemSimulator(pty_pair.b) as modem:
        site = Site(tmp_path, _notify({"modem": modem_channel(pty_pair.a)}),
                    alerts={"rules": {"stale": {"enabled": False}},
                            "notify": {"repeat_s": {"critical": 0}, "escalate": []}})
        try:
            site.reading("S1", "smoke", 1.0)
            site.step()
            modem.deliver_sms("13800000001", "1", alphanumeric=True)  # spoofed: a name that reads like zhang
            site.step()
            assert site.store.alert(1)["state"] == "active"
            assert [t.number for t in modem.texts_sent()] == [ZH]  # no answer went to the "name"
            assert modem.stored() == {}  # read and deleted all the same
        finally:
            site.close()
