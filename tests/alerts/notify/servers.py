"""Real servers on loopback for the notification tests: an SMTP server (aiosmtpd, STARTTLS or implicit TLS,
AUTH) and an HTTP server that records requests and answers like a provider."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.fixtures.mosquitto import _write_certs, free_port

__all__ = ["HttpRequest", "ProviderServer", "SmtpServer", "certs", "provider", "smtp_server"]


@dataclass
class ReceivedMail:
    """One mail as the server took it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None
    tls: bool


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_MAIL(self, smtp: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.server.refuse_sender:
            return "553 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.server.received_cond:
            self.server.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message,  # type: ignore[arg-type]
                                                     login, smtp._tls_protocol is not None or self.server.implicit))
            self.server.received_cond.notify_all()
        return "250 2.0.0 Ok: queued as TEST1"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 requiring STARTTLS and AUTH (or implicit TLS with ``implicit=True``).

    Args:
        cert_dir: where ``server.pem``/``server.key``/``ca.pem`` are.
        users: login → password accepted.
    """

    def __init__(self, cert_dir: Path, users: dict[str, str], *, implicit: bool = False) -> None:
        self.cert_dir = cert_dir
        self.users = users
        self.implicit = implicit
        self.refuse_sender = False  # answer MAIL FROM with 553 (a relay that does not take our sender)
        self.received: list[ReceivedMail] = []
        self.received_cond = threading.Condition()
        self.port = free_port()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_dir / "server.pem", cert_dir / "server.key")
        kwargs: dict[str, Any] = {"authenticator": self._authenticate, "auth_require_tls": True,
                                  "auth_required": True}
        if implicit:  # the whole session is TLS: aiosmtpd cannot tell, so it must not demand STARTTLS for AUTH
            kwargs.update(ssl_context=context, auth_require_tls=False, auth_required=False)
        else:
            kwargs.update(tls_context=context, require_starttls=True)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     server_hostname="localhost", **kwargs)

    @property
    def ca_file(self) -> Path:
        """The CA that signed the server's certificate."""
        return self.cert_dir / "ca.pem"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and \
                self.users.get(auth_data.login.decode()) == auth_data.password.decode():
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpServer:
        """Start serving in a thread."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.controller.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedMail]:
        """Wait until ``count`` mails arrived; returns them."""
        with self.received_cond:
            if not self.received_cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"expected {count} mail(s), got {len(self.received)} in {timeout} s")
            return list(self.received)


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1/localhost."""
    folder = tmp_path / "certs"
    _write_certs(folder)
    return folder


@pytest.fixture
def smtp_server(certs: Path) -> Iterator[SmtpServer]:
    """An SMTP server requiring STARTTLS and AUTH (user ``archmon``, password ``s3cret-pw``)."""
    server = SmtpServer(certs, {"archmon": "s3cret-pw"}).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class HttpRequest:
    """One request the provider server took."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


Answer = tuple[int, dict[str, Any] | str] | tuple[int, dict[str, Any] | str, dict[str, str]]
"""(status, body) or (status, body, extra headers)."""


@dataclass
class ProviderServer:
    """An HTTP server on 127.0.0.1 that records requests and answers with ``answer(request)``."""

    answer: Callable[[HttpRequest], Answer] = lambda request: (200, {"errcode": 0, "errmsg": "ok"})
    requests: list[HttpRequest] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    tls: ssl.SSLContext | None = None  # serve HTTPS with this context

    def start(self) -> ProviderServer:
        """Serve in a thread."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parsed = urllib.parse.urlsplit(self.path)
                request = HttpRequest(self.command, parsed.path, urllib.parse.parse_qs(parsed.query),
                                      {k: v for k, v in self.headers.items()}, self.rfile.read(length))
                status, body, *extra = owner.answer(request)
                data = (json.dumps(body, ensure_ascii=False) if not isinstance(body, str) else body).encode()
                with owner.cond:  # recorded before the client can read a byte of the answer
                    owner.requests.append(request)
                    owner.cond.notify_all()
                self.send_response(status)
                for key, value in (extra[0] if extra else {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://localhost:<port>`` with TLS, the name its certificate has)."""
        if self.tls is not None:
            return f"https://localhost:{self.httpd.server_address[1]}"
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[HttpRequest]:
        """Wait until ``count`` requests arrived."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} request(s), got {len(self.requests)}")
            return list(self.requests)


@pytest.fixture
def provider() -> Iterator[ProviderServer]:
    """A provider-like HTTP server on loopback."""
    server = ProviderServer().start()
    try:
        yield server
    finally:
        server.stop()
