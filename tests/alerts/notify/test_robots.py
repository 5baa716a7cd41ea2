"""Robots, webhook and SMS-HTTP senders against a local HTTP server that checks path, query, signature
(recomputed from the secret) and body, and answers like the providers: success and their error bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from alerts.notify.channels import OutgoingMessage, Recipient
from alerts.notify.channels.dingtalk import DingTalkChannel, DingTalkOptions
from alerts.notify.channels.feishu import FeishuChannel, FeishuOptions
from alerts.notify.channels.sms_http import SmsHttpChannel, SmsHttpOptions
from alerts.notify.channels.webhook import WebhookChannel, WebhookOptions
from alerts.notify.channels.wecom import WeComChannel, WeComOptions
from tests.alerts.notify.harness import ZHANG, Site
from tests.alerts.notify.servers import HttpRequest, ProviderServer

MESSAGE = OutgoingMessage(subject="【告警·紧急】#3", text="【告警·紧急】#3 一号库房 S1：检测到烟雾！", short="烟雾",
                          data={"site": "市档案馆", "alerts": [{"id": 3, "rule": "smoke"}]}, alert_ids=(3,))
ENV = {"DT_TOKEN": "tok-123", "DT_SECRET": "SECabc", "FS_TOKEN": "hook-9", "FS_SECRET": "fs-secret",
       "WC_KEY": "key-7", "WH_SECRET": "wh-secret", "SMS_TOKEN": "sms-tok"}


def _dingtalk_check(request: HttpRequest) -> tuple[int, dict]:
    q = {k: v[0] for k, v in request.query.items()}
    assert request.path == "/robot/send" and q["access_token"] == "tok-123"
    ts = int(q["timestamp"])
    assert abs(ts - time.time() * 1000) < 60_000
    expected = base64.b64encode(hmac.new(b"SECabc", f"{ts}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    if q["sign"] != expected:  # parse_qs has URL-decoded it
        return 200, {"errcode": 310000, "errmsg": "sign not match"}
    body = request.json()
    assert body["msgtype"] == "text" and body["at"] == {"atMobiles": ["+8613800000001"], "isAtAll": False}
    assert body["text"]["content"].startswith("【告警·紧急】#3") and body["text"]["content"].endswith("@+8613800000001")
    return 200, {"errcode": 0, "errmsg": "ok"}


def test_dingtalk_signed_request_and_error_bodies(provider: ProviderServer) -> None:
    provider.answer = _dingtalk_check
    opts = DingTalkOptions(url=f"{provider.url}/robot/send", token_env="DT_TOKEN", secret_env="DT_SECRET")
    channel = DingTalkChannel("ding", opts, environ=ENV)
    recipient = Recipient("ding", None, ("+8613800000001",))
    result = channel.send(MESSAGE, recipient)
    assert result.accepted and '"errcode": 0' in result.answer
    channel.environ = {**ENV, "DT_SECRET": "wrong"}
    result = channel.send(MESSAGE, recipient)
    assert result.outcome == "failed" and "310000" in result.answer  # HTTP 200, but the body says no
    provider.answer = lambda r: (200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
    result = channel.send(MESSAGE, recipient)
    assert result.outcome == "rate_limited" and result.retry_after_s == 60


def test_wecom_key_mentions_and_error(provider: ProviderServer) -> None:
    def check(request: HttpRequest) -> tuple[int, dict]:
        assert request.path == "/cgi-bin/webhook/send" and request.query == {"key": ["key-7"]}
        body = request.json()
        assert body == {"msgtype": "text", "text": {"content": MESSAGE.text,
                                                    "mentioned_mobile_list": ["+8613800000001"]}}
        return 200, {"errcode": 0, "errmsg": "ok"}

    provider.answer = check
    channel = WeComChannel("wecom", WeComOptions(url=f"{provider.url}/cgi-bin/webhook/send", token_env="WC_KEY"),
                           environ=ENV)
    assert channel.send(MESSAGE, Recipient("wecom", None, ("+8613800000001",))).accepted
    provider.answer = lambda r: (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    assert channel.send(MESSAGE, Recipient("wecom")).outcome == "failed"
    provider.answer = lambda r: (200, {"errcode": 45009, "errmsg": "api freq out of limit"})
    assert channel.send(MESSAGE, Recipient("wecom")).outcome == "rate_limited"


def test_feishu_signature_is_its_own(provider: ProviderServer) -> None:
    def check(request: HttpRequest) -> tuple[int, dict]:
        assert request.path == "/open-apis/bot/v2/hook/hook-9"
        body = request.json()
        ts = body["timestamp"]
        expected = base64.b64encode(hmac.new(f"{ts}\nfs-secret".encode(), b"", hashlib.sha256).digest()).decode()
        if body["sign"] != expected:
            return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}
        assert body["msg_type"] == "text"
        assert body["content"]["text"] == MESSAGE.text + '<at user_id="ou_zhang"></at>'
        return 200, {"code": 0, "msg": "success", "data": {}}

    provider.answer = check
    opts = FeishuOptions(url=f"{provider.url}/open-apis/bot/v2/hook/", token_env="FS_TOKEN", secret_env="FS_SECRET")
    channel = FeishuChannel("feishu", opts, environ=ENV)
    assert channel.send(MESSAGE, Recipient("feishu", None, ("ou_zhang",))).accepted
    channel.environ = {**ENV, "FS_SECRET": "other"}
    result = channel.send(MESSAGE, Recipient("feishu", None, ("ou_zhang",)))
    assert result.outcome == "failed" and "19021" in result.answer


def test_webhook_hmac_over_the_exact_body(provider: ProviderServer) -> None:
    seen: list[HttpRequest] = []

    def check(request: HttpRequest) -> tuple[int, dict | str]:
        seen.append(request)
        signature = "sha256=" + hmac.new(b"wh-secret", request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Archmon-Signature"] == signature
        body = request.json()
        assert body["alerts"] == [{"id": 3, "rule": "smoke"}] and body["site"] == "市档案馆"
        assert str(body["sent_ms"]) == request.headers["X-Archmon-Timestamp"]
        return 200, "ok"

    provider.answer = check
    channel = WebhookChannel("hook", WebhookOptions(url=f"{provider.url}/in/archmon", secret_env="WH_SECRET"),
                             environ=ENV)
    assert channel.send(MESSAGE, Recipient("hook")).accepted
    assert seen[0].path == "/in/archmon"
    provider.answer = lambda r: (200, {"code": 500, "message": "db down"})
    assert channel.send(MESSAGE, Recipient("hook")).outcome == "failed"
    provider.answer = lambda r: (503, "busy")
    assert channel.send(MESSAGE, Recipient("hook")).outcome == "failed"


def test_sms_http_template_escapes_and_judges_the_body(provider: ProviderServer) -> None:
    def check(request: HttpRequest) -> tuple[int, dict]:
        assert request.path == "/sms/send" and request.query == {"app": ["archmon"], "to": ["+8613800000001"]}
        assert request.headers["X-Token"] == "sms-tok"
        body = request.json()
        assert body["mobile"] == "+8613800000001" and body["content"] == 'line "1"\n烟雾'
        return 200, {"result": {"code": "0000", "msg": "提交成功"}}

    provider.answer = check
    opts = SmsHttpOptions(url=provider.url + "/sms/send?app=archmon&to={phone}", headers={"X-Token": "{token}"},
                          body='{"mobile": "{phone}", "content": "{text}", "ts": {timestamp_ms}}',
                          token_env="SMS_TOKEN",
                          success_path="result.code", success_values=["0000"])
    channel = SmsHttpChannel("gov", opts, environ=ENV)
    message = OutgoingMessage(subject="s", text="long", short='line "1"\n烟雾')
    result = channel.send(message, Recipient("+8613800000001", "zhang"))
    assert result.accepted and "提交成功" in result.answer
    provider.answer = lambda r: (200, {"result": {"code": "1003", "msg": "余额不足 token sms-tok"}})
    result = channel.send(message, Recipient("+8613800000001"))
    assert result.outcome == "failed" and "sms-tok" not in result.answer  # the token is never in the record


def test_no_answer_is_a_failure_to_retry() -> None:
    from tests.fixtures.mosquitto import free_port

    channel = WeComChannel("w", WeComOptions(url=f"http://127.0.0.1:{free_port()}/x", token_env="WC_KEY",
                                             timeout_s=2), environ=ENV)
    result = channel.send(MESSAGE, Recipient("w"))
    assert result.outcome == "failed" and result.answer.startswith("no answer") and "key-7" not in result.answer


def test_the_dingtalk_rate_limit_queues_never_drops(tmp_path: Path, provider: ProviderServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """25 alerts at once through a robot allowed 20 a minute: 20 now, 5 a minute later, none lost."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    notify = {"group_window_s": 0,
              "channels": {"ding": {"type": "dingtalk", "url": f"{provider.url}/robot/send", "token_env": "DT_TOKEN"}},
              "contacts": [ZHANG],
              "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": ["ding"]}]}]}
    site = Site(tmp_path, notify, alerts={"rules": {"stale": {"enabled": False}}})
    try:
        for i in range(25):
            site.now = site.t0 + i  # 25 smoke alarms within the same second (one sensor per alert: re-use ids)
            site.store.enqueue_notification(i + 1, "fired", "critical", "critical/A1", 0, site.now,
                                            {"ts": "2024-03-04T12:00:00+08:00", "rule": "smoke", "room": "A1",
                                             "sensor": f"S{i}", "severity": "critical"})
        site.step()
        assert len(provider.requests) == 20
        assert site.d.rate_wait_ms(site.notifier.channels["ding"], site.now) > 0
        site.at(59)
        site.step()
        assert len(provider.requests) == 20
        site.at(61)
        site.step()
        assert len(provider.requests) == 25
        statuses = [r["status"] for r in site.rows("SELECT status FROM notify_deliveries")]
        assert statuses == ["sent"] * 25
        texts = {json.loads(r.body)["text"]["content"] for r in provider.requests}
        assert len(texts) == 25  # each alert once, none twice
        assert site.d._recent["ding"].maxlen == 20  # send times kept: never more than the limit
    finally:
        site.close()


def test_sms_http_fills_its_template_once_and_never_records_the_token(provider: ProviderServer) -> None:
    provider.answer = lambda r: (200, {"code": "0"})
    opts = SmsHttpOptions(url=provider.url + "/sms", token_env="SMS_TOKEN",
                          body='{"mobile": "{phone}", "content": "{text}", "key": "{token}"}')
    channel = SmsHttpChannel("gov", opts, environ=ENV)
    text = "门禁 D1 {token} {sign} {phone}"  # a text that looks like placeholders stays as it is
    assert channel.send(OutgoingMessage(subject="s", text=text, short=text), Recipient("+8613800000001")).accepted
    body = provider.requests[-1].json()
    assert body == {"mobile": "+8613800000001", "content": text, "key": "sms-tok"}
    # a provider echoing the token never gets it into the record (nor into a "channel down" alert's text)
    provider.answer = lambda r: (200, {"code": "9", "msg": "bad key sms-tok", "url": "https://x/?k=sms-tok"})
    answer = channel.send(OutgoingMessage(subject="s", text="x"), Recipient("+8613800000001")).answer
    assert "sms-tok" not in answer and "***" in answer
    provider.answer = lambda r: (429, {"code": "busy"}, {"Retry-After": "12"})
    result = channel.send(OutgoingMessage(subject="s", text="x"), Recipient("+8613800000001"))
    assert result.outcome == "rate_limited" and result.retry_after_s == 12.0
