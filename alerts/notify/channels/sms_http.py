"""SMS through an HTTP API: in-house 政务短信 platforms and SMS gateways, by a request template.

Every platform differs, so the request is a template: ``url``, ``method``, ``content_type`` (JSON, form or
plain text), ``headers`` and ``body`` with placeholders ``{phone}``, ``{text}``, ``{token}`` (from
``token_env``/``token_file``), ``{timestamp_ms}``, ``{timestamp_s}`` and ``{sign}`` (hex HMAC-SHA256 of
``<phone><text><timestamp_ms>`` with the token, for platforms that want one). Each value is escaped for
where it lands (a JSON string's content, a form or URL component), and the template is filled in one pass:
a value is never scanned for placeholders again, so a text that says ``{token}`` stays ``{token}``. Success
is judged from the answer's body: the value at ``success_path`` (dotted, e.g. ``result.code``) must be one
of ``success_values``; ``rate_limited_values`` there, or HTTP 429, mean "too fast" (retried after
``Retry-After``, else 60 s). The token and the signature are masked in every recorded answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar, Literal

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

__all__ = ["SmsHttpChannel", "SmsHttpOptions", "fill_template"]

ContentType = Literal["json", "form", "text"]
_TYPES = {"json": "application/json; charset=utf-8", "form": "application/x-www-form-urlencoded; charset=utf-8",
          "text": "text/plain; charset=utf-8"}


class SmsHttpOptions(ChannelOptions):
    """Options of ``type = "sms_http"`` (see the module docstring)."""

    url: str
    method: Literal["POST", "GET", "PUT"] = "POST"
    content_type: ContentType = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = '{"mobile": "{phone}", "content": "{text}"}'
    token_env: str | None = None
    token_file: Path | None = None
    success_path: str = "code"
    success_values: list[str] = Field(default_factory=lambda: ["0"])
    rate_limited_values: list[str] = Field(default_factory=list)
    rate_per_min: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    proxy: str | None = None
    ca_file: Path | None = None


def _escape(value: str, where: ContentType | Literal["url"]) -> str:
    if where == "json":
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if where in ("form", "url"):
        return urllib.parse.quote(value, safe="")
    return value


def fill_template(template: str, values: dict[str, str], where: ContentType | Literal["url"]) -> str:
    """Replace ``{name}`` placeholders by escaped values in one pass (other braces, e.g. JSON's, stay; a value
    that contains ``{token}`` is not filled again)."""
    if not values:
        return template
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return pattern.sub(lambda m: _escape(values[m.group(0)[1:-1]], where), template)


def _at_path(document: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


class SmsHttpChannel(Channel):
    """SMS over an HTTP platform (see the module docstring)."""

    type: ClassVar[str] = "sms_http"
    Options: ClassVar[type[ChannelOptions]] = SmsHttpOptions
    address_field = "phone"
    options: SmsHttpOptions

    def __init__(self, name: str, options: ChannelOptions, **kwargs: Any) -> None:
        super().__init__(name, options, **kwargs)
        self.rate_per_min = self.options.rate_per_min

    def _token(self) -> str | None:
        return read_secret(self.options.token_env, self.options.token_file, f"notify.channels.{self.name}.token",
                           self.environ)

    def secrets(self) -> list[str]:
        try:
            self._token()
        except SecretMissing as exc:
            return [str(exc)]
        return []

    def send(self, message: OutgoingMessage, recipient: Recipient) -> SendResult:
        try:
            token = self._token() or ""
        except SecretMissing as exc:
            return SendResult("failed", str(exc))
        opts = self.options
        now = int(time.time() * 1000)
        text = message.short or message.text
        sign = hmac.new(token.encode(), f"{recipient.address}{text}{now}".encode(), hashlib.sha256).hexdigest()
        values = {"phone": recipient.address, "text": text, "token": token, "timestamp_ms": str(now),
                  "timestamp_s": str(now // 1000), "sign": sign}
        url = fill_template(opts.url, values, "url")
        headers = {"Content-Type": _TYPES[opts.content_type],
                   **{k: fill_template(v, values, "text") for k, v in opts.headers.items()}}
        body = fill_template(opts.body, values, opts.content_type).encode("utf-8")
        answer = post(url, body, headers=headers, timeout_s=opts.timeout_s, proxy=opts.proxy, ca_file=opts.ca_file,
                      method=opts.method)
        summary = mask_secrets(answer.summary(), [token, sign])
        if answer.error is not None:
            return SendResult("failed", summary, possible_duplicate=answer.request_sent)
        value = _at_path(answer.json, opts.success_path) if answer.json is not None else None
        if value is not None and str(value) in opts.success_values:
            return SendResult("accepted", summary)
        if answer.status == 429 or (value is not None and str(value) in opts.rate_limited_values):
            return SendResult("rate_limited", summary, retry_after_s=answer.retry_after_s or 60.0)
        return SendResult("failed", summary)
