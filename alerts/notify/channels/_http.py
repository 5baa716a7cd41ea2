"""One HTTP POST for the robot, webhook and SMS-gateway channels (stdlib ``urllib``), with the answer kept.

Proxies are used only when a channel names one (``proxy``): environment proxy variables of a shared server
must not send alarms through a proxy nobody configured for them. The URL is never put in an answer or a log
line, because robots carry their secret in it (``access_token``, ``key``, the Feishu hook token).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["HttpAnswer", "post"]

MAX_ANSWER = 2000  # characters of a provider's body kept in an attempt row


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The response: status (0 when no response came), body text, body as JSON when it is JSON, or the
    transport error."""

    status: int
    body: str
    json: Any = None
    error: str | None = None

    def summary(self) -> str:
        """``HTTP 200 {"errcode":0,...}`` or the transport error, bounded."""
        if self.error is not None:
            return self.error
        return f"HTTP {self.status} {self.body[:MAX_ANSWER]}".strip()


def post(url: str, body: bytes, *, headers: dict[str, str], timeout_s: float, proxy: str | None = None,
         ca_file: Path | None = None, method: str = "POST") -> HttpAnswer:
    """Send one request; never raises for the network's or the server's sake."""
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {}),
    ]
    if ca_file is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(ca_file))))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=body if method != "GET" else None, headers=headers, method=method)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(64 * 1024)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return HttpAnswer(0, "", error=f"no answer: {type(exc).__name__}: {reason}")
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    return HttpAnswer(status, text, parsed)
