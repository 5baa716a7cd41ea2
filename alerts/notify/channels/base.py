"""What every notification channel is: options it validates, a ``send`` that reports the provider's answer.

A channel is built from its validated options and never touches the network in its constructor
(STYLE.md: narrow lifecycles). ``send`` is called from the channel's own worker thread, one message at a
time, so a channel holds its connection (the modem's serial port) without further locking. It never
raises for a provider's or the network's sake: it returns a :class:`SendResult` saying what happened.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Attachment",
    "Channel",
    "ChannelOptions",
    "IncomingSms",
    "OutgoingMessage",
    "Recipient",
    "SecretMissing",
    "SendResult",
    "mask_secrets",
    "read_secret",
]

Outcome = Literal["accepted", "failed", "rejected", "rate_limited"]


class ChannelOptions(BaseModel):
    """Base of every channel's option model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretMissing(Exception):
    """A secret named in the config (environment variable or file) is not there."""


def read_secret(env: str | None, file: Path | None, what: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A secret from an environment variable or a file (first line, stripped); never from the config itself.

    Raises:
        SecretMissing: the variable is not set or the file cannot be read (names which, not the value).
    """
    environ = os.environ if environ is None else environ
    if env:
        value = environ.get(env)
        if not value:
            raise SecretMissing(f"{what}: environment variable {env} is not set")
        return value
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretMissing(f"{what}: cannot read {file}: {exc.strerror}") from None
    return None


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***``, in the forms a provider may echo it (as it is,
    URL-encoded, JSON-escaped): what a provider answers is recorded, logged, and may end up in the text of
    a "channel down" alert sent through the other channels."""
    for secret in secrets:
        if not secret:
            continue
        forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
                 json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "***")
    return text


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a message goes to on a channel.

    Attributes:
        address: phone number, e-mail address, or the channel name for a group robot.
        contact: the contact's name (None for a group robot).
        mentions: phone numbers / chat ids a group robot should @-mention.
    """

    address: str
    contact: str | None = None
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message by the channels that carry files (e-mail); the others ignore it."""

    filename: str
    data: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message in every form a channel may need.

    Attributes:
        subject: e-mail subject / robot markdown title.
        text: full plain text (e-mail, robots, webhooks).
        short: SMS text (kept within two parts when it can be).
        html: HTML body for e-mail.
        data: JSON-able structure of the alerts it is about (webhooks).
        alert_ids: the alerts it is about.
        resume: what the channel said about an earlier attempt of this same message (:attr:`SendResult.resume`:
            the modem's parts already sent), None on a first attempt.
        attachments: files (e-mail only: the scheduled reports).
    """

    subject: str
    text: str
    short: str = ""
    html: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    alert_ids: tuple[int, ...] = ()
    resume: dict[str, Any] | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider said.

    Attributes:
        outcome: ``accepted``; ``failed`` (try again later); ``rejected`` (this message or recipient will
            never be accepted: do not retry); ``rate_limited`` (try again after ``retry_after_s``, not a
            channel failure).
        answer: the provider's answer as text (status line, response body, ``+CMGS: 12``), no secrets.
        retry_after_s: when to try again, if the provider said.
        channel_fault: whether a ``failed`` or ``rejected`` outcome counts against the channel's health.
            False when this one message could not even be built or addressed (a header the mail library
            refuses, a recipient that is no phone number): the channel itself is fine.
        possible_duplicate: the provider may have taken the message although the attempt failed (the
            request had gone out when the answer was lost): a retry is marked as a possible duplicate.
        resume: what the next attempt of this message should know (the modem: the concatenation reference and
            the parts already sent, so a retry sends only the rest); kept by the outbox with the delivery.
    """

    outcome: Outcome
    answer: str
    retry_after_s: float | None = None
    channel_fault: bool = True
    possible_duplicate: bool = False
    resume: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        """Whether the provider took the message."""
        return self.outcome == "accepted"


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """A message received by a channel (a reply to an SMS).

    Attributes:
        number: the sender's address.
        text: the message.
        received: the service centre's time stamp, ISO-8601.
        number_type: the address's type of number (``alphanumeric``: a sender *name*, which anyone can set
            and which never acknowledges anything, even when it is made of a contact's digits).
    """

    number: str
    text: str
    received: str = ""
    number_type: str = "unknown"


class Channel:
    """Base class of a channel kind.

    Attributes:
        type: the registry name (``gsm_modem``, ``smtp``...).
        Options: the pydantic model of its table.
        address_field: the contact field it sends to (``phone``, ``email``), or None for a group robot
            that posts once to its group.
        rate_per_min: the provider's limit of messages per minute (None: none); above it messages wait.
    """

    type: ClassVar[str] = ""
    Options: ClassVar[type[ChannelOptions]] = ChannelOptions
    address_field: ClassVar[Literal["phone", "email"] | None] = None
    rate_per_min: int | None = None

    def __init__(self, name: str, options: ChannelOptions, *, environ: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.options = options
        self.environ = os.environ if environ is None else environ

    def secrets(self) -> list[str]:
        """Problems with the secrets it needs (empty when every one is there); checked by ``check-config``."""
        return []

    def send(self, message: OutgoingMessage, recipient: Recipient) -> SendResult:
        """Send one message; never raises for the provider's or the network's sake."""
        raise NotImplementedError

    def poll(self) -> list[IncomingSms]:
        """Called from the worker thread when idle: read incoming messages, check the link (default: none)."""
        return []

    def details(self) -> dict[str, Any]:
        """Channel-specific state for ``archmon status`` (modem: SIM, registration, signal)."""
        return {}

    def healthy(self) -> bool | None:
        """The channel's own view of its link (modem: SIM ready and registered); None: it cannot tell."""
        return None

    def close(self) -> None:
        """Release the connection (called once at stop)."""
