"""The modem channel end to end in simulated time, through a real pty pair and the modem simulator:
long Chinese SMS in numbered parts, every failure mode retried and raising a channel-down alert sent by
e-mail, and a reply SMS that acknowledges the alert and stops its repeats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.notify.channels import OutgoingMessage, Recipient
from alerts.notify.channels.gsm_modem import GsmModemChannel, GsmModemOptions
from devices.simulators.gsm_modem import GsmModemSimulator
from devices.simulators.pty_pair import PtyPair
from tests.alerts.notify.harness import LI, ZHANG, Site, modem_channel, smtp_channel
from tests.alerts.notify.servers import SmtpServer

pytestmark = pytest.mark.serial


@pytest.fixture
def modem(pty_pair: PtyPair) -> Iterator[GsmModemSimulator]:
    sim = GsmModemSimulator(pty_pair.b).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def site(tmp_path: Path, pty_pair: PtyPair, modem: GsmModemSimulator, smtp_server: SmtpServer,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("ARCHMON_TEST_SMTP_PW", "s3cret-pw")
    notify = {
        "channels": {"modem": modem_channel(pty_pair.a), "mail": smtp_channel(smtp_server.port, smtp_server.ca_file)},
        "contacts": [ZHANG, LI],
        "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": ["modem", "mail"]},
                                              {"contacts": ["li"], "channels": ["modem", "mail"]}]}],
    }
    s = Site(tmp_path, notify)
    try:
        yield s
    finally:
        s.close()


def test_a_150_character_chinese_text_arrives_as_three_numbered_parts(site: Site, modem: GsmModemSimulator) -> None:
    text = ("一号库房检测到烟雾请值班人员立即到场处置并回复确认收到谢谢" * 6)[:150]
    channel = site.notifier.channels["modem"]
    result = channel.send(OutgoingMessage(subject="s", text=text, short=text), Recipient("+8613800000001", "zhang"))
    assert result.accepted and result.answer == "+CMGS: 1; +CMGS: 2; +CMGS: 3"
    parts = [s.decoded for s in modem.sent]
    assert [(p.concat.total, p.concat.seq) for p in parts] == [(3, 1), (3, 2), (3, 3)]
    assert len({p.concat.ref for p in parts}) == 1
    assert all(p.number == "+8613800000001" and p.alphabet == "ucs2" for p in parts)
    assert "".join(p.text for p in parts) == text
    assert modem.texts_sent() == [("+8613800000001", text)]


def test_smoke_alarm_reaches_sms_and_email_and_an_sms_reply_acknowledges_it(
        site: Site, modem: GsmModemSimulator, smtp_server: SmtpServer) -> None:
    site.reading("S1", "smoke", 1.0)
    site.step()
    [(number, sms)] = modem.texts_sent()
    assert number == "+8613800000001"
    assert sms.startswith("【告警·紧急】#1 一号库房 S1：检测到烟雾！") and "2024-03-04 12:00 +08:00" in sms
    assert "回复 1 或“确认 1”确认" in sms
    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["zhang@example.org"] and str(mail.message["Subject"]).startswith("【告警·紧急】#1")
    assert "站点: 市档案馆" in mail.message.get_body(("plain",)).get_content()

    site.at(900)  # the repeat falls due: sent again
    site.step()
    assert len(modem.texts_sent()) == 2 and "未确认" in modem.texts_sent()[1][1]

    modem.deliver_sms("+8613800000001", "1")  # the duty officer replies
    site.at(901)
    site.step()
    alert = site.store.alert(1)
    assert alert["state"] == "acknowledged" and alert["acked_by"] == "张三"
    assert [c["comment"] for c in site.store.comments(1)] == ["acknowledged by SMS from 张三"]
    audit = [r["payload"] for r in site.rows("SELECT payload FROM audit_log WHERE kind = 'ack'")]
    assert len(audit) == 1 and "acknowledged by SMS from 张三" in audit[0]
    assert modem.texts_sent()[-1] == ("+8613800000001", "已确认告警 #1（张三），停止重复通知。")
    assert modem.stored() == {}  # the reply was deleted from the SIM

    sent_before = len(modem.texts_sent())
    for minute in (16, 30, 31, 45, 60, 90):  # repeats and the escalation would have fallen due
        site.at(minute * 60)
        site.step()
    assert len(modem.texts_sent()) == sent_before
    requests = [(r["transition"], r["level"]) for r in site.rows("SELECT * FROM notification_queue ORDER BY id")]
    assert requests == [("fired", 0), ("repeat", 0)]


def test_unacknowledged_it_escalates_to_the_second_level_on_schedule(
        site: Site, modem: GsmModemSimulator, smtp_server: SmtpServer) -> None:
    site.reading("S1", "smoke", 1.0)
    site.step()
    site.at(1799)
    site.step()
    assert {n for n, _ in modem.texts_sent()} == {"+8613800000001"}
    site.at(1800)
    site.step()
    to_li = [t for n, t in modem.texts_sent() if n == "+8613800000002"]
    assert len(to_li) == 1 and to_li[0].startswith("[ESCALATED CRITICAL] #1 Room 1 S1: SMOKE detected!")
    assert "Not acknowledged: escalated to level 2" in to_li[0]  # Li reads English
    mails = smtp_server.wait_for(3)  # fired, repeat (zhang), escalation (li)
    assert "li@example.org" in [m.rcpt_tos[0] for m in mails]


def test_an_unknown_number_and_an_unreadable_reply_get_help_once(site: Site, modem: GsmModemSimulator) -> None:
    modem.deliver_sms("+8613999999999", "确认 1")
    modem.deliver_sms("+8613800000001", "what is this")
    site.step(("modem",))
    texts = dict(modem.texts_sent())
    assert texts["+8613999999999"].startswith("archmon：本号码未登记")
    assert texts["+8613800000001"].startswith("archmon：回复 1 确认")
    modem.deliver_sms("+8613999999999", "确认 1")
    site.at(60)
    site.step(("modem",))
    assert len(modem.texts_sent()) == 2  # no second help text within the hour
    actions = [r["action"] for r in site.rows("SELECT action FROM notify_inbox ORDER BY id")]
    assert actions == ["help", "help", "ignored"]


@pytest.mark.parametrize("failure", ["no_sim", "no_network", "cms_error", "silent"])
def test_each_failure_mode_retries_and_raises_a_channel_down_alert_sent_by_email(
        site: Site, modem: GsmModemSimulator, smtp_server: SmtpServer, failure: str) -> None:
    modem.set_failure(failure, code=500)  # type: ignore[arg-type]
    site.reading("S1", "smoke", 1.0)
    site.step()
    smtp_server.wait_for(1)  # the smoke e-mail goes out whatever the modem does
    for seconds in (10, 40, 100):  # backoff 10 s, 30 s, 60 s
        site.at(seconds)
        site.step()
    attempts = site.rows("SELECT a.* FROM notify_attempts a JOIN notify_deliveries d ON d.id = a.delivery_id "
                         "WHERE d.channel = 'modem' ORDER BY a.id")
    assert len(attempts) >= 3 and {a["outcome"] for a in attempts} == {"failed"}
    assert all(a["next_ms"] is not None and a["answer"] for a in attempts)
    expected = {"no_sim": "+CME ERROR: 10 (SIM not inserted)", "no_network": "+CMS ERROR: 331 (no network service)",
                "cms_error": "+CMS ERROR: 500 (unknown error)", "silent": "modem not responding"}[failure]
    assert all(expected in a["answer"] for a in attempts), [a["answer"] for a in attempts]
    assert site.notifier.health.get("modem").state == "down"
    site.at(105)  # the channel rule looks every 5 s
    site.step()
    down = site.store.open_alert("channel:modem")
    assert down is not None and down["state"] == "active" and down["room"] == ""
    site.at(140)  # a major alert waits out the 30 s grouping window
    site.step()
    mails = smtp_server.wait_for(2)
    subject = str(mails[-1].message["Subject"])
    assert "通知通道 modem 故障" in subject, subject
    deliveries = site.rows("SELECT channel FROM notify_deliveries WHERE alert_id = ?", down["id"])
    assert [d["channel"] for d in deliveries] == ["mail"]  # never through the channel that is down

    modem.set_failure("none")
    site.at(400)
    site.step()
    site.at(401)
    site.step()
    smoke_sms = [t for n, t in modem.texts_sent() if "检测到烟雾" in t]
    assert len(smoke_sms) >= 1
    assert site.notifier.health.get("modem").state == "ok"
    site.at(410)
    site.step()
    assert site.store.alert(down["id"])["state"] in ("cleared", "closed")


def _alarm_parts(site: Site) -> None:
    """A smoke alarm for zhang whose SMS is two UCS2 parts (a detector with a long name)."""
    site.store.enqueue_notification(1, "fired", "critical", "critical/A1", 0, site.now,
                                    {"ts": "2024-03-04T04:00:00Z", "rule": "smoke", "room": "A1",
                                     "sensor": "SMOKE-DETECTOR-NORTH-WALL-SHELF-12-ROW-3"})
    site.d.expand_pending(site.now)


def test_a_long_sms_that_fails_part_way_is_finished_not_resent(site: Site, modem: GsmModemSimulator) -> None:
    modem.set_failure("cms_error", code=500, count=1, after=1)  # part 1 goes, part 2 is refused once
    _alarm_parts(site)
    site.d.send_due("modem", site.now)
    [first] = site.rows("SELECT status, answer, resume FROM notify_deliveries WHERE channel = 'modem'")
    assert first["status"] == "queued" and first["answer"].endswith("after 1 of 2 part(s)")
    restarted = site.make_notifier()  # what was sent survives a restart: it is in the outbox
    site.notifier.outbox.close()
    site.notifier, site.d = restarted, restarted.dispatcher
    site.at(10)
    site.d.send_due("modem", site.now)
    parts = [(s.decoded.concat.ref, s.decoded.concat.seq) for s in modem.sent]
    assert [seq for _, seq in parts] == [1, 2] and len({ref for ref, _ in parts}) == 1  # same ref: one message
    [sms] = [t for t in modem.texts_sent()]
    assert sms.text.startswith("【告警·紧急】#1") and "可能重复" not in sms.text
    [done] = site.rows("SELECT status, answer FROM notify_deliveries WHERE channel = 'modem'")
    assert done["status"] == "sent" and done["answer"] == "+CMGS: 2 (parts 2-2 of 2; 1-1 went out before)"


def test_an_answer_lost_after_the_pdu_marks_the_retry_a_possible_duplicate(site: Site,
                                                                            modem: GsmModemSimulator) -> None:
    channel = site.notifier.channels["modem"]
    modem.set_failure("lost_answer", count=1)
    result = channel.send(OutgoingMessage(subject="s", text="x", short="Smoke in room 1"),
                          Recipient("+8613800000001", "zhang"))
    assert result.outcome == "failed" and result.possible_duplicate and result.resume is None
    assert "it may have been sent" in result.answer
    long_text = "一号库房检测到烟雾" * 10  # two parts: the lost answer of part 2 means part 2 again, same ref
    modem.set_failure("lost_answer", count=1, after=1)
    again = channel.send(OutgoingMessage(subject="s", text=long_text, short=long_text), Recipient("+8613800000001"))
    assert again.outcome == "failed" and not again.possible_duplicate and again.resume is not None
    done = channel.send(OutgoingMessage(subject="s", text=long_text, short=long_text, resume=again.resume),
                        Recipient("+8613800000001"))
    assert done.accepted
    seqs = [s.decoded.concat.seq for s in modem.sent if s.decoded.concat is not None]
    assert seqs == [1, 2, 2]  # the phone keeps one copy of part 2
    assert [t.text for t in modem.texts_sent()] == ["Smoke in room 1", long_text]


def test_the_retry_of_a_lost_answer_says_possible_duplicate(site: Site, modem: GsmModemSimulator) -> None:
    site.store.enqueue_notification(5, "fired", "critical", "critical/A1", 0, site.now,
                                    {"ts": "2024-03-04T04:00:00Z", "rule": "smoke", "room": "A1", "sensor": "S"})
    modem.set_failure("lost_answer", count=1)
    site.step(("modem",))
    site.at(10)
    site.step(("modem",))
    texts = [t.text for t in modem.texts_sent()]
    assert len(texts) == 2 and "（可能重复发送）" not in texts[0] and "（可能重复发送）" in texts[1]


def test_a_modem_refusing_every_pdu_is_down(site: Site, modem: GsmModemSimulator) -> None:
    modem.set_failure("cms_error", code=304)  # invalid PDU parameter: rejected, not retried, but not healthy
    for i in range(3):
        site.store.enqueue_notification(10 + i, "fired", "critical", "critical/A1", 0, site.now,
                                        {"ts": "2024-03-04T04:00:00Z", "rule": "smoke", "room": "A1", "sensor": "S"})
    site.step(("modem",))
    statuses = [r["status"] for r in site.rows("SELECT status FROM notify_deliveries WHERE channel = 'modem'")]
    assert statuses == ["failed"] * 3
    assert site.notifier.health.get("modem").state == "down"


def test_the_parts_of_a_long_reply_wait_on_the_sim_across_a_restart(pty_pair: PtyPair,
                                                                    modem: GsmModemSimulator) -> None:
    options = GsmModemOptions.model_validate({k: v for k, v in modem_channel(pty_pair.a).items() if k != "type"})
    text = "确认 1，已到现场检查，" + "一切正常" * 20  # a long reply: two parts
    first = GsmModemChannel("modem", options)
    try:
        modem.deliver_sms("+8613800000001", text, parts_only=(1,), ref=77)
        assert wait_polled(first) == []
        assert len(modem.stored()) == 1  # the first part stays on the SIM
    finally:
        first.close()
    second = GsmModemChannel("modem", options)  # archmon restarted before the second part came
    try:
        modem.deliver_sms("+8613800000001", text, parts_only=(2,), ref=77)
        [reply] = wait_polled(second)
        assert reply.text == text and reply.number_type == "international"
        assert modem.stored() == {}
    finally:
        second.close()
    late = GsmModemChannel("modem", options.model_copy(update={"part_wait_s": 0.01}))
    try:
        modem.deliver_sms("+8613800000001", text, parts_only=(1,))  # its part 2 never comes
        assert wait_polled(late) == [] and modem.stored() == {}  # given up after part_wait_s: the SIM is free
    finally:
        late.close()


def wait_polled(channel: GsmModemChannel) -> list:
    """Poll until the inbox was read twice (a listing happens on +CMTI or every inbox_poll_s)."""
    import time

    out: list = []
    for _ in range(3):
        out += channel.poll()
        time.sleep(0.05)  # inbox_poll_s of the test options is 0.01 s: the next poll lists again
    return out
