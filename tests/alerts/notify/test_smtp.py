"""E-mail against a real SMTP server on loopback (aiosmtpd) with STARTTLS and AUTH."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.notify.channels import OutgoingMessage, Recipient
from alerts.notify.channels.smtp import SmtpChannel, SmtpOptions
from tests.alerts.notify.servers import SmtpServer

SUBJECT = "【告警·紧急】#7 一号库房 S1：检测到烟雾！"


def _channel(server: SmtpServer, **extra: object) -> SmtpChannel:
    options = SmtpOptions.model_validate({
        "host": "127.0.0.1", "port": server.port, "security": "starttls", "username": "archmon",
        "password_env": "ARCHMON_TEST_SMTP_PW", "from": "archmon@example.org", "ca_file": str(server.ca_file),
        **extra})
    return SmtpChannel("mail", options, environ={"ARCHMON_TEST_SMTP_PW": "s3cret-pw"})


def test_starttls_auth_both_parts_and_the_chinese_subject(smtp_server: SmtpServer) -> None:
    message = OutgoingMessage(subject=SUBJECT, text="一号库房检测到烟雾\nSmoke in room 1",
                              html="<p>一号库房检测到烟雾</p>", alert_ids=(7,))
    result = _channel(smtp_server).send(message, Recipient("duty@example.org", "zhang"))
    assert result.accepted, result
    assert result.answer == "250 2.0.0 Ok: queued as TEST1"  # the server's reply to DATA is what is recorded
    [mail] = smtp_server.wait_for(1)
    assert mail.tls and mail.authenticated_as == "archmon"
    assert mail.mail_from == "archmon@example.org" and mail.rcpt_tos == ["duty@example.org"]
    msg = mail.message
    assert str(msg["Subject"]) == SUBJECT  # decoded by the receiving side
    assert msg["To"] == "duty@example.org" and msg["From"] == "archmon@example.org"
    assert msg["X-Archmon-Alerts"] == "7" and msg["Message-ID"] and msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n").strip() == "一号库房检测到烟雾\nSmoke in room 1"
    assert "<p>一号库房检测到烟雾</p>" in html.get_content()
    assert plain.get_content_charset() == "utf-8"


def test_the_subject_goes_rfc2047_encoded_on_the_wire(smtp_server: SmtpServer) -> None:
    channel = _channel(smtp_server)
    wire = channel.build(OutgoingMessage(subject=SUBJECT, text="x"), Recipient("a@example.org")).as_bytes()
    subject_line = next(line for line in wire.split(b"\r\n") if line.startswith(b"Subject:"))
    assert subject_line.startswith(b"Subject: =?utf-8?") and subject_line.isascii()


def test_wrong_password_fails_and_is_retried_not_rejected(smtp_server: SmtpServer) -> None:
    channel = _channel(smtp_server)
    channel.environ = {"ARCHMON_TEST_SMTP_PW": "wrong"}
    result = channel.send(OutgoingMessage(subject="s", text="t"), Recipient("duty@example.org"))
    assert result.outcome == "failed" and result.answer.startswith("authentication refused: 535")
    assert "wrong" not in result.answer
    assert smtp_server.received == []


def test_a_missing_password_variable_is_named_not_guessed(smtp_server: SmtpServer) -> None:
    channel = _channel(smtp_server)
    channel.environ = {}
    assert channel.secrets() == ["notify.channels.mail.password: environment variable ARCHMON_TEST_SMTP_PW is not set"]
    assert channel.send(OutgoingMessage(subject="s", text="t"), Recipient("a@example.org")).outcome == "failed"


def test_untrusted_certificate_is_refused(smtp_server: SmtpServer, tmp_path: Path) -> None:
    channel = _channel(smtp_server, ca_file=None)  # the system's CAs do not know the test CA
    result = channel.send(OutgoingMessage(subject="s", text="t"), Recipient("duty@example.org"))
    assert result.outcome == "failed" and "CERTIFICATE_VERIFY_FAILED" in result.answer
    assert smtp_server.received == []


def test_server_down_is_a_failure_to_retry() -> None:
    from tests.fixtures.mosquitto import free_port

    options = SmtpOptions.model_validate({"host": "127.0.0.1", "port": free_port(), "security": "none",
                                          "from": "archmon@example.org", "timeout_s": 2})
    result = SmtpChannel("mail", options).send(OutgoingMessage(subject="s", text="t"), Recipient("a@example.org"))
    assert result.outcome == "failed" and "Connection refused" in result.answer


@pytest.mark.parametrize("security", ["tls"])
def test_implicit_tls(certs: Path, security: str) -> None:
    server = SmtpServer(certs, {"archmon": "pw"}, implicit=True)
    server.start()
    try:
        options = SmtpOptions.model_validate({
            "host": "127.0.0.1", "port": server.port, "security": security, "username": "archmon",
            "password_env": "PW", "from": "archmon@example.org", "ca_file": str(server.ca_file)})
        result = SmtpChannel("mail", options, environ={"PW": "pw"}).send(
            OutgoingMessage(subject="主题", text="正文"), Recipient("a@example.org"))
        assert result.accepted, result
        [mail] = server.wait_for(1)
        assert str(mail.message["Subject"]) == "主题" and mail.authenticated_as == "archmon"
    finally:
        server.stop()


def test_a_subject_the_mail_library_refuses_is_rejected_and_not_the_channels_fault(smtp_server: SmtpServer) -> None:
    result = _channel(smtp_server).send(OutgoingMessage(subject="down:\r\nBcc: x@example.org", text="t"),
                                        Recipient("duty@example.org"))
    assert result.outcome == "rejected" and not result.channel_fault
    assert result.answer.startswith("the e-mail cannot be built: ValueError")
    assert smtp_server.received == []


def test_a_refused_sender_is_rejected_and_counts_against_the_channel(smtp_server: SmtpServer) -> None:
    from alerts.notify.health import HealthBoard

    smtp_server.refuse_sender = True
    board = HealthBoard({"mail": "smtp"}, down_after_failures=3, down_after_s=120)
    for i in range(3):
        result = _channel(smtp_server).send(OutgoingMessage(subject="s", text="t"), Recipient(f"d{i}@example.org"))
        assert result.outcome == "rejected" and result.answer.startswith("553 5.7.1 Sender address rejected")
        health = board.record_send("mail", result.outcome, result.answer, i, channel_fault=result.channel_fault)
    assert health.state == "down"


def test_a_password_over_an_unencrypted_connection_is_refused_unless_allowed() -> None:
    plain = {"host": "mail.example.org", "security": "none", "username": "archmon", "password_env": "PW",
             "from": "archmon@example.org"}
    with pytest.raises(ValueError, match="would send the password unencrypted"):
        SmtpOptions.model_validate(plain)
    assert SmtpOptions.model_validate({**plain, "allow_plaintext_auth": True}).allow_plaintext_auth
    assert SmtpOptions.model_validate({**plain, "username": None, "password_env": None}).security == "none"
