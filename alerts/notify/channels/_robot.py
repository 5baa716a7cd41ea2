"""What the chat robots (DingTalk, WeCom, Feishu) share: options, secrets, rate limit, posting, judging.

A robot posts to one group chat, so a message goes once per robot, @-mentioning the contacts of the level
(by phone number, or by chat id for Feishu). Success is the provider's ``errcode``/``code`` of 0 in the
body, never the HTTP status alone (the providers answer HTTP 200 with an error code). Over the robot's
limit (``rate_per_min``, 20 a minute for DingTalk) messages wait in the outbox; a provider's own
"too fast" code is a ``rate_limited`` answer, retried after ``rate_limited_retry_s`` and not counted as a
channel failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from alerts.notify.channels._http import HttpAnswer, post
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

__all__ = ["RobotChannel", "RobotOptions"]


class RobotOptions(ChannelOptions):
    """Options every robot takes.

    Attributes:
        url: the provider's endpoint (configurable for a private deployment and for tests).
        token_env / token_file: the robot's token (``access_token``, ``key`` or the hook id).
        secret_env / secret_file: the signing secret, when the robot has signing on.
        rate_per_min: messages a minute the provider allows (more wait in the outbox).
        rate_limited_retry_s: retry delay after the provider said "too fast".
        timeout_s: request timeout; proxy: an HTTP(S) proxy to use (none by default); ca_file: trust
            this CA (a private gateway).
    """

    url: str
    token_env: str | None = None
    token_file: Path | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    rate_per_min: int = Field(default=20, gt=0)
    rate_limited_retry_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    proxy: str | None = None
    ca_file: Path | None = None


class RobotChannel(Channel):
    """Base of the group robots; subclasses build the request and name their error codes."""

    Options: ClassVar[type[ChannelOptions]] = RobotOptions
    options: RobotOptions
    success_key: ClassVar[str] = "errcode"
    rate_limit_codes: ClassVar[frozenset[int]] = frozenset()
    mention_by: ClassVar[str] = "phone"  # contact field an @-mention uses

    def __init__(self, name: str, options: ChannelOptions, **kwargs: Any) -> None:
        super().__init__(name, options, **kwargs)
        self.rate_per_min = self.options.rate_per_min

    def token(self) -> str | None:
        """The robot's token (None if the config names none)."""
        return read_secret(self.options.token_env, self.options.token_file, f"notify.channels.{self.name}.token",
                           self.environ)

    def secret(self) -> str | None:
        """The signing secret (None: signing off)."""
        return read_secret(self.options.secret_env, self.options.secret_file,
                           f"notify.channels.{self.name}.secret", self.environ)

    def secrets(self) -> list[str]:
        problems = []
        for read in (self.token, self.secret):
            try:
                read()
            except SecretMissing as exc:
                problems.append(str(exc))
        return problems

    def request(self, message: OutgoingMessage, recipient: Recipient) -> tuple[str, dict[str, Any]]:
        """The URL (with query) and JSON body of one message."""
        raise NotImplementedError

    def send(self, message: OutgoingMessage, recipient: Recipient) -> SendResult:
        try:
            url, body = self.request(message, recipient)
        except SecretMissing as exc:
            return SendResult("failed", str(exc))
        answer = post(url, json.dumps(body, ensure_ascii=False).encode("utf-8"),
                      headers={"Content-Type": "application/json; charset=utf-8"}, timeout_s=self.options.timeout_s,
                      proxy=self.options.proxy, ca_file=self.options.ca_file)
        return self.judge(answer, [self.token(), self.secret()])

    def judge(self, answer: HttpAnswer, secrets: list[str | None] | None = None) -> SendResult:
        """Accepted only when the body's code is 0 (the answer recorded with ``secrets`` masked)."""
        summary = mask_secrets(answer.summary(), secrets or [])
        if answer.error is not None:
            return SendResult("failed", summary, possible_duplicate=answer.request_sent)
        code = answer.json.get(self.success_key) if isinstance(answer.json, dict) else None
        if code is None and isinstance(answer.json, dict):
            code = answer.json.get("StatusCode")  # Feishu's older answers
        if code == 0 and 200 <= answer.status < 300:
            return SendResult("accepted", summary)
        if code in self.rate_limit_codes or answer.status == 429:
            return SendResult("rate_limited", summary,
                              retry_after_s=answer.retry_after_s or self.options.rate_limited_retry_s)
        return SendResult("failed", summary)
