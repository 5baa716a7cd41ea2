"""E-mail over SMTP: STARTTLS, implicit TLS (SMTPS) or plain; AUTH; a text and an HTML part; UTF-8 subject;
attachments (the scheduled reports; file names RFC 2231-encoded).

The message is built with the standard library's ``email`` package under the SMTP policy, so the
Chinese subject is RFC 2047-encoded (``=?utf-8?b?...?=``) and both parts are UTF-8. The provider's answer
recorded for each attempt is the server's reply to ``DATA`` (``250 2.0.0 Ok: queued as ...``). Temporary
(4xx) replies and connection failures are retried; a refused sender or recipient (5xx to ``MAIL`` or
``RCPT``) is not, and counts against the channel's health (a mail server that refuses every message is a
channel that is down). A message the ``email`` package cannot build (a header it refuses) is rejected
without counting against the channel. ``timeout_s`` bounds the whole attempt — name lookup, connect, TLS,
every command — not each socket read. The password comes from ``password_env`` or ``password_file`` only,
and is never sent over an unencrypted connection (``security = "none"`` with a ``username``) unless
``allow_plaintext_auth = true`` says so.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from alerts.notify.channels._deadline import AttemptDeadline
from alerts.notify.channels.base import (
    Channel,
    ChannelOptions,
    OutgoingMessage,
    Recipient,
    SecretMissing,
    SendResult,
    read_secret,
)

__all__ = ["SmtpChannel", "SmtpOptions"]

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class SmtpOptions(ChannelOptions):
    """Options of ``type = "smtp"``.

    Attributes:
        host / port: the server (port default: 587 STARTTLS, 465 TLS, 25 none).
        security: ``starttls``, ``tls`` (implicit, SMTPS) or ``none``.
        username: AUTH user (none: no AUTH); password_env / password_file: where the password is.
        from_: the sender address (``from`` in the file).
        ca_file: trust this CA instead of the system's (an internal mail server's own CA).
        verify: check the server's certificate and name (turn off only on a closed network, knowingly).
        timeout_s: the whole attempt's time (name lookup, connect, TLS, every command).
        allow_plaintext_auth: with ``security = "none"``, send the password unencrypted anyway (a closed
            network's relay that offers no TLS); refused otherwise.
    """

    host: str
    port: int | None = Field(default=None, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    from_: str = Field(alias="from")
    ca_file: Path | None = None
    verify: bool = True
    timeout_s: float = Field(default=30.0, gt=0)
    allow_plaintext_auth: bool = False

    @model_validator(mode="after")
    def _password_source(self) -> SmtpOptions:
        if self.username and not (self.password_env or self.password_file):
            raise ValueError("username is set but neither password_env nor password_file says where the password is")
        if self.username and self.security == "none" and not self.allow_plaintext_auth:
            raise ValueError('security = "none" with a username would send the password unencrypted; use '
                             '"starttls" or "tls", or set allow_plaintext_auth = true if this network is closed')
        return self


class SmtpChannel(Channel):
    """E-mail (see the module docstring)."""

    type: ClassVar[str] = "smtp"
    Options: ClassVar[type[ChannelOptions]] = SmtpOptions
    address_field = "email"
    options: SmtpOptions

    def secrets(self) -> list[str]:
        try:
            self._password()
        except SecretMissing as exc:
            return [str(exc)]
        return []

    def _password(self) -> str | None:
        return read_secret(self.options.password_env, self.options.password_file,
                           f"notify.channels.{self.name}.password", self.environ)

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.options.ca_file) if self.options.ca_file else None)
        if not self.options.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def build(self, message: OutgoingMessage, recipient: Recipient) -> EmailMessage:
        """The e-mail for one recipient (public for tests and ``notify test``)."""
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["Subject"] = message.subject
        mail["From"] = self.options.from_
        mail["To"] = recipient.address
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = make_msgid(domain=self.options.from_.rpartition("@")[2] or None)
        if message.alert_ids:
            mail["X-Archmon-Alerts"] = ",".join(str(a) for a in message.alert_ids)
        mail.set_content(message.text, charset="utf-8")
        if message.html:
            mail.add_alternative(message.html, subtype="html", charset="utf-8")
        for item in message.attachments:  # (the multipart/alternative above becomes the first part)
            maintype, _, subtype = item.mime_type.partition("/")
            mail.add_attachment(item.data, maintype=maintype, subtype=subtype or "octet-stream",
                                filename=item.filename)
        return mail

    def send(self, message: OutgoingMessage, recipient: Recipient) -> SendResult:
        try:
            password = self._password()
        except SecretMissing as exc:
            return SendResult("failed", str(exc))
        opts = self.options
        port = opts.port or DEFAULT_PORTS[opts.security]
        try:
            mail = self.build(message, recipient)
            data = mail.as_bytes()
        except (ValueError, TypeError, LookupError) as exc:  # the email package refuses a header or an address
            return SendResult("rejected", f"the e-mail cannot be built: {type(exc).__name__}: {exc}",
                              channel_fault=False)
        attempt = AttemptDeadline(opts.timeout_s)
        client: smtplib.SMTP = (_BoundedSmtpSsl(attempt, timeout=opts.timeout_s, context=self._context())
                                if opts.security == "tls" else _BoundedSmtp(attempt, timeout=opts.timeout_s))
        transaction = _Transaction()
        try:
            with attempt.watch(lambda: client.sock), client:
                client.connect(opts.host, port)
                client.ehlo()
                if opts.security == "starttls":
                    client.starttls(context=self._context())
                    client.ehlo()
                if opts.username:
                    client.login(opts.username, password or "")
                return transaction.run(client, str(mail["From"]), recipient.address, data)
        except smtplib.SMTPAuthenticationError as exc:
            return SendResult("failed", f"authentication refused: {_reply(exc.smtp_code, exc.smtp_error)}")
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult("failed", f"server does not support {opts.security}/AUTH: {exc}")
        except smtplib.SMTPResponseException as exc:
            return SendResult("failed", _reply(exc.smtp_code, exc.smtp_error),
                              possible_duplicate=transaction.data_sent)
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            return SendResult("failed", attempt.explain(exc), possible_duplicate=transaction.data_sent)

    def details(self) -> dict[str, Any]:
        return {"host": self.options.host, "security": self.options.security}


class _BoundedSmtp(smtplib.SMTP):
    """``smtplib.SMTP`` whose connection is made within the attempt's time, name lookup included."""

    def __init__(self, attempt: AttemptDeadline, **kwargs: Any) -> None:
        self.attempt = attempt
        super().__init__(**kwargs)  # no host: nothing is connected here

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        self._host = host  # the name TLS checks the certificate against (smtplib sets it only in __init__)
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        return self.attempt.connect(host, port, timeout)


class _BoundedSmtpSsl(smtplib.SMTP_SSL, _BoundedSmtp):
    """``smtplib.SMTP_SSL`` (implicit TLS) on a connection made within the attempt's time."""

    def __init__(self, attempt: AttemptDeadline, **kwargs: Any) -> None:
        self.attempt = attempt
        smtplib.SMTP_SSL.__init__(self, **kwargs)


class _Transaction:
    """``MAIL``, ``RCPT``, ``DATA``; remembers whether the message had gone out (a lost answer after it may
    mean the server took the message)."""

    def __init__(self) -> None:
        self.data_sent = False

    def run(self, client: smtplib.SMTP, sender: str, to: str, data: bytes) -> SendResult:
        code, answer = client.mail(sender)
        if code != 250:
            client.rset()
            return SendResult("failed" if 400 <= code < 500 else "rejected", _reply(code, answer))
        code, answer = client.rcpt(to)
        if code not in (250, 251):
            client.rset()
            return SendResult("failed" if 400 <= code < 500 else "rejected", _reply(code, answer))
        self.data_sent = True
        code, answer = client.data(data)
        if code != 250:
            return SendResult("failed" if 400 <= code < 500 else "rejected", _reply(code, answer))
        return SendResult("accepted", _reply(code, answer))


def _reply(code: int, text: bytes | str) -> str:
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {body}".strip()
