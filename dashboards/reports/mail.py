"""E-mailing scheduled reports through a ``[notify.channels]`` smtp channel, the files attached.

The channel's own ``send`` does the work (STARTTLS/TLS, AUTH, the secret from its environment variable or
file, the bounded attempt); this module only builds the message. A send that the server does not accept
raises :class:`MailNotSent`, and the schedule tries again at its next run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alerts.notify.channels.base import Attachment, OutgoingMessage, Recipient
from alerts.notify.settings import build_channels, load_notify
from archmon.config import Config
from archmon.errors import ConfigError

__all__ = ["MailNotSent", "smtp_sender"]

_TYPES = {".pdf": "application/pdf", ".json": "application/json", ".csv": "text/csv"}


class MailNotSent(RuntimeError):
    """The mail server did not take the message (its answer is the message)."""


def smtp_sender(config: Config, channel_name: str) -> Callable[[str, str, str, list[Path]], str]:
    """A function sending ``(address, subject, text, files)`` through the named smtp channel; returns the
    server's answer.

    Raises:
        ConfigError: no such channel, or it is not of type ``smtp``.
    """
    plan = load_notify(config)
    kind = plan.channel_types.get(channel_name)
    if kind != "smtp":
        known = sorted(name for name, t in plan.channel_types.items() if t == "smtp")
        raise ConfigError(f"reports.schedule.email_channel: {channel_name!r} is not an smtp channel of "
                          f"[notify.channels] (smtp channels: {known})")
    channel = build_channels(plan)[channel_name]

    def send(address: str, subject: str, text: str, files: list[Path]) -> str:
        attachments = tuple(Attachment(path.name, path.read_bytes(),
                                       _TYPES.get(path.suffix, "application/octet-stream")) for path in files)
        result = channel.send(OutgoingMessage(subject=subject, text=text, attachments=attachments),
                              Recipient(address))
        if not result.accepted:
            raise MailNotSent(f"{channel_name}: {result.outcome}: {result.answer}")
        return result.answer

    return send
