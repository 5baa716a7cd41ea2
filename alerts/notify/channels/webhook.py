"""Generic webhook: POST the alerts as JSON, optionally signed with HMAC-SHA256 over the body.

Body: ``{"source": "archmon", "site": ..., "subject": ..., "text": ..., "alerts": [{"id", "rule",
"severity", "state", "room", "sensor", "value", "limit", "since", "title_zh", "title_en", ...}],
"possible_duplicate": bool}``. With a secret, header ``X-Archmon-Signature: sha256=<hex>`` (the HMAC of
the exact body bytes) and ``X-Archmon-Timestamp`` (ms, also inside the body as ``sent_ms``) let the
receiver check both origin and freshness. Accepted on HTTP 2xx, unless a JSON answer carries a non-zero
``errcode`` or ``code`` (many in-house receivers answer 200 with an error code). HTTP 400, 404 and 410
reject the message (no retry; they count against the channel's health, so a wrong URL raises "channel
down"); 429 waits for ``Retry-After`` (60 s if the server does not say).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from alerts.notify.channels._http import post
from alerts.notify.channels.base import (
    Channel,
    ChannelOptions,
    OutgoingMessage,
    Recipient,
    SecretMissing,
    SendResult,
    mask_secrets,
    read_secret,
)

__all__ = ["WebhookChannel", "WebhookOptions", "webhook_signature"]


class WebhookOptions(ChannelOptions):
    """Options of ``type = "webhook"``.

    Attributes:
        url: where to POST.
        secret_env / secret_file: HMAC key (none: unsigned).
        signature_header: the header carrying ``sha256=<hex>``.
        headers: extra fixed headers (no secrets: those go in ``secret_env``).
        rate_per_min: optional limit; timeout_s, proxy, ca_file: as for robots.
    """

    url: str
    secret_env: str | None = None
    secret_file: Path | None = None
    signature_header: str = "X-Archmon-Signature"
    headers: dict[str, str] = Field(default_factory=dict)
    rate_per_min: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    proxy: str | None = None
    ca_file: Path | None = None


def webhook_signature(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookChannel(Channel):
    """Generic JSON webhook (see the module docstring)."""

    type: ClassVar[str] = "webhook"
    Options: ClassVar[type[ChannelOptions]] = WebhookOptions
    options: WebhookOptions

    def __init__(self, name: str, options: ChannelOptions, **kwargs: Any) -> None:
        super().__init__(name, options, **kwargs)
        self.rate_per_min = self.options.rate_per_min

    def _secret(self) -> str | None:
        return read_secret(self.options.secret_env, self.options.secret_file, f"notify.channels.{self.name}.secret",
                           self.environ)

    def secrets(self) -> list[str]:
        try:
            self._secret()
        except SecretMissing as exc:
            return [str(exc)]
        return []

    def send(self, message: OutgoingMessage, recipient: Recipient) -> SendResult:
        try:
            secret = self._secret()
        except SecretMissing as exc:
            return SendResult("failed", str(exc))
        sent_ms = int(time.time() * 1000)
        document = {"source": "archmon", "subject": message.subject, "text": message.text, "sent_ms": sent_ms,
                    **message.data}
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", **self.options.headers}
        if secret:
            headers[self.options.signature_header] = webhook_signature(body, secret)
            headers["X-Archmon-Timestamp"] = str(sent_ms)
        answer = post(self.options.url, body, headers=headers, timeout_s=self.options.timeout_s,
                      proxy=self.options.proxy, ca_file=self.options.ca_file)
        summary = mask_secrets(answer.summary(), [secret])
        if answer.error is not None:
            return SendResult("failed", summary, possible_duplicate=answer.request_sent)
        code = None
        if isinstance(answer.json, dict):
            code = answer.json.get("errcode", answer.json.get("code"))
        if answer.status == 429:
            return SendResult("rate_limited", summary, retry_after_s=answer.retry_after_s or 60.0)
        if 200 <= answer.status < 300 and code in (None, 0, "0"):
            return SendResult("accepted", summary)
        return SendResult("rejected" if answer.status in (400, 404, 410) else "failed", summary)
