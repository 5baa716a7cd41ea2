"""One HTTP request for the robot, webhook and SMS-gateway channels (stdlib ``http.client``), with the answer
kept and the whole attempt bounded.

``timeout_s`` bounds the attempt — name lookup, connect, TLS, request and answer together — not each socket
read (see :mod:`alerts.notify.channels._deadline`): a server that trickles its answer is cut off. Proxies are
used only when a channel names one (``proxy``, ``http://[user:password@]host:port``; HTTPS goes through it
with ``CONNECT``): environment proxy variables of a shared server must not send alarms through a proxy nobody
configured for them. The URL is never put in an answer or a log line, because robots carry their secret in it
(``access_token``, ``key``, the Feishu hook token).
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from alerts.notify.channels._deadline import AttemptDeadline

__all__ = ["HttpAnswer", "post"]

MAX_ANSWER = 2000  # characters of a provider's body kept in an attempt row
MAX_BODY = 64 * 1024  # bytes of a response read


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The response: status (0 when no response came), body text, body as JSON when it is JSON, the
    transport error, the server's ``Retry-After`` in seconds (HTTP 429 and 503), and whether the request
    had gone out whole before an error (the server may have acted on it: a retry may be a duplicate)."""

    status: int
    body: str
    json: Any = None
    error: str | None = None
    retry_after_s: float | None = None
    request_sent: bool = False

    def summary(self) -> str:
        """``HTTP 200 {"errcode":0,...}`` or the transport error, bounded."""
        if self.error is not None:
            return self.error
        return f"HTTP {self.status} {self.body[:MAX_ANSWER]}".strip()


def _retry_after(value: str | None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class _Target(NamedTuple):
    connection: http.client.HTTPConnection
    path: str  # what goes on the request line: the path, or the whole URL for a plain-HTTP proxy
    headers: dict[str, str]  # Proxy-Authorization for a plain-HTTP proxy


def _proxy_auth(proxy: urllib.parse.SplitResult) -> dict[str, str]:
    if not proxy.username:
        return {}
    user = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(user.encode()).decode("ascii")}


def _target(url: urllib.parse.SplitResult, proxy: str | None, context: ssl.SSLContext | None,
            timeout_s: float) -> _Target:
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
    p = urllib.parse.urlsplit(proxy) if proxy else None
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        if p is None:
            return _Target(http.client.HTTPSConnection(host, port, timeout=timeout_s, context=context), path, {})
        conn = http.client.HTTPSConnection(p.hostname or "", p.port or 80, timeout=timeout_s, context=context)
        conn.set_tunnel(host, port, headers=_proxy_auth(p))
        return _Target(conn, path, {})
    if p is None:
        return _Target(http.client.HTTPConnection(host, port, timeout=timeout_s), path, {})
    conn = http.client.HTTPConnection(p.hostname or "", p.port or 80, timeout=timeout_s)
    return _Target(conn, urllib.parse.urlunsplit((url.scheme, url.netloc, url.path or "/", url.query, "")),
                   _proxy_auth(p))


def post(url: str, body: bytes, *, headers: dict[str, str], timeout_s: float, proxy: str | None = None,
         ca_file: Path | None = None, method: str = "POST") -> HttpAnswer:
    """Send one request within ``timeout_s`` overall; never raises for the network's or the server's sake."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return HttpAnswer(0, "", error=f"not an http(s) URL (scheme {parts.scheme!r})")
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    attempt = AttemptDeadline(timeout_s)
    target = _target(parts, proxy, context, timeout_s)
    conn = target.connection
    # every connection (to the server or the proxy) is made within the attempt's time, name lookup included
    conn._create_connection = lambda address, timeout, source=None: attempt.connect(  # type: ignore[attr-defined]
        address[0], address[1], timeout)
    sent = False
    try:
        with attempt.watch(lambda: conn.sock):
            conn.request(method, target.path, body=None if method == "GET" else body,
                         headers={**headers, **target.headers})
            sent = True
            # closed here: a body read only in part keeps the socket's file open past conn.close()
            with conn.getresponse() as response:
                raw = response.read(MAX_BODY)
                status, retry_after = response.status, _retry_after(response.getheader("Retry-After"))
        if attempt.expired:  # the body was cut short at the deadline: not an answer to judge
            raise http.client.IncompleteRead(raw)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return HttpAnswer(0, "", error=f"no answer: {attempt.explain(exc)}", request_sent=sent)
    finally:
        conn.close()
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    return HttpAnswer(status, text, parsed, retry_after_s=retry_after)
