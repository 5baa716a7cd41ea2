"""``timeout_s`` bounds a whole attempt — name lookup, connect, request, answer — for HTTP and SMTP channels: real
loopback servers that trickle their answer one byte at a time, and a resolver that never answers."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from alerts.notify.channels import OutgoingMessage, Recipient, SendResult, _deadline
from alerts.notify.channels.smtp import SmtpChannel, SmtpOptions
from alerts.notify.channels.webhook import WebhookChannel, WebhookOptions
from tests.alerts.notify.servers import ProviderServer

MESSAGE = OutgoingMessage(subject="s", text="t")


class Trickler:
    """A TCP server on loopback that answers each connection with ``head``, then one byte every 0.2 s for ever."""

    def __init__(self, head: bytes, *, read_first: bool = True) -> None:
        self.head, self.read_first = head, read_first
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.read_first:
                    conn.recv(65536)
                conn.sendall(self.head)
                while not self.stop.wait(0.2):
                    conn.sendall(b" ")
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.server.close()


@pytest.fixture
def trickler() -> Iterator[Callable[..., Trickler]]:
    made: list[Trickler] = []

    def make(head: bytes, **kwargs: Any) -> Trickler:
        made.append(Trickler(head, **kwargs))
        return made[-1]

    yield make
    for t in made:
        t.close()


def _in_thread(send: Callable[[], SendResult]) -> SendResult:
    """Run a send in a thread; it must come back (the join's bound only keeps a broken build from hanging)."""
    out: list[SendResult] = []
    thread = threading.Thread(target=lambda: out.append(send()), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the send did not come back: no overall deadline"
    return out[0]


def test_a_webhook_whose_server_trickles_its_answer_fails_within_its_timeout(trickler) -> None:
    server = trickler(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: application/json\r\n\r\n")
    channel = WebhookChannel("hook", WebhookOptions(url=f"http://127.0.0.1:{server.port}/x", timeout_s=1))
    result = _in_thread(lambda: channel.send(MESSAGE, Recipient("hook")))
    assert result.outcome == "failed"
    assert result.answer == "no answer: no complete answer within 1 s (the connection was cut)"
    assert result.possible_duplicate  # the request had gone out: the server may have acted on it


def test_headers_trickled_before_any_status_are_cut_too(trickler) -> None:
    server = trickler(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    channel = WebhookChannel("hook", WebhookOptions(url=f"http://127.0.0.1:{server.port}/x", timeout_s=1))
    result = _in_thread(lambda: channel.send(MESSAGE, Recipient("hook")))
    assert result.outcome == "failed" and "within 1 s" in result.answer


def test_an_smtp_server_that_trickles_its_greeting_fails_within_the_timeout(trickler) -> None:
    server = trickler(b"220-mail.example.org", read_first=False)
    channel = SmtpChannel("mail", SmtpOptions.model_validate(
        {"host": "127.0.0.1", "port": server.port, "security": "none", "from": "a@example.org", "timeout_s": 1}))
    result = _in_thread(lambda: channel.send(MESSAGE, Recipient("z@example.org")))
    assert result.outcome == "failed" and "within 1 s" in result.answer and not result.possible_duplicate


def test_a_name_lookup_that_never_answers_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("flags") == socket.AI_NUMERICHOST:
            return real(host, *args, **kwargs)  # "is it an IP literal?" answers at once, as it does
        release.wait(60)  # a resolver that never answers (a real one cannot be made to hang here)
        raise socket.gaierror("released")

    monkeypatch.setattr(_deadline, "getaddrinfo", hanging)
    try:
        channel = WebhookChannel("hook", WebhookOptions(url="http://hooks.example.invalid/x", timeout_s=0.5))
        result = _in_thread(lambda: channel.send(MESSAGE, Recipient("hook")))
        assert result.outcome == "failed"
        assert "name lookup of hooks.example.invalid" in result.answer and not result.possible_duplicate
        # the hanging lookups are bounded: past MAX_HANGING_LOOKUPS an attempt fails at once
        results = [channel.send(MESSAGE, Recipient("hook")) for _ in range(_deadline.MAX_HANGING_LOOKUPS)]
        assert "earlier lookups still have no answer" in results[-1].answer
    finally:
        release.set()


def test_a_429_waits_for_the_servers_retry_after(provider: ProviderServer) -> None:
    provider.answer = lambda request: (429, {"errcode": 429}, {"Retry-After": "7"})
    channel = WebhookChannel("hook", WebhookOptions(url=f"{provider.url}/x"))
    result = channel.send(MESSAGE, Recipient("hook"))
    assert result.outcome == "rate_limited" and result.retry_after_s == 7.0


def test_https_with_a_private_ca_after_a_name_lookup(certs) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    server = ProviderServer(tls=context).start()
    try:
        trusted = WebhookChannel("hook", WebhookOptions(url=f"{server.url}/x", ca_file=certs / "ca.pem"))
        assert trusted.send(MESSAGE, Recipient("hook")).outcome == "accepted"
        untrusted = WebhookChannel("hook", WebhookOptions(url=f"{server.url}/x", timeout_s=5))
        result = untrusted.send(MESSAGE, Recipient("hook"))
        assert result.outcome == "failed" and "CERTIFICATE_VERIFY_FAILED" in result.answer
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_a_named_proxy_takes_the_request_and_the_environments_do_not(provider: ProviderServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a shared server's proxy nobody configured for alarms
    proxy = provider.url.replace("http://", "http://ops:s3cret@")
    channel = WebhookChannel("hook", WebhookOptions(url="http://hooks.example.invalid/x?a=1", proxy=proxy))
    assert channel.send(MESSAGE, Recipient("hook")).accepted  # the proxy resolves the name, not archmon
    [request] = provider.requests
    assert request.headers["Host"] == "hooks.example.invalid" and request.path == "/x"
    assert request.headers["Proxy-Authorization"] == "Basic b3BzOnMzY3JldA=="
    direct = WebhookChannel("hook", WebhookOptions(url=f"{provider.url}/direct"))
    assert direct.send(MESSAGE, Recipient("hook")).accepted and provider.requests[-1].path == "/direct"
