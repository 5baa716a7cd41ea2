"""Serving the dashboard: uvicorn on a configurable address, TLS when a certificate is configured.

:class:`WebServer` runs uvicorn in its own thread with its own event loop, so the service (threads and
APScheduler) and the demo start and stop it like any other component.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from archmon.config import Config, HttpConfig

__all__ = ["WebServer", "parse_address", "serve"]

log = logging.getLogger(__name__)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as given to ``--http``.

    Raises:
        ValueError: not HOST:PORT with a port 0–65535.
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class WebServer:
    """uvicorn serving ``app`` in a background thread.

    ``X-Forwarded-For``/``-Proto`` are believed only from ``trusted_proxies`` (``[http] trusted_proxies``);
    with none (the default) they are ignored, whoever sends them, loopback included: the client address the
    login limits count is the connection's.
    """

    app: Starlette
    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", access_log=False, lifespan="on",
            ssl_certfile=str(self.tls_cert) if self.tls_cert else None,
            ssl_keyfile=str(self.tls_key) if self.tls_key else None,
            timeout_graceful_shutdown=2, server_header=False,
            proxy_headers=bool(self.trusted_proxies), forwarded_allow_ips=list(self.trusted_proxies) or None,
        ))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the dashboard answers (the bound port when 0 was asked)."""
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.bound_port}"

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from ``port`` when 0 was asked)."""
        for server in getattr(self._server, "servers", []) or []:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.port

    def start(self, timeout_s: float = 15.0) -> None:
        """Start serving; returns once the socket listens.

        Raises:
            RuntimeError: uvicorn did not start (the port is taken, the certificate cannot be read...).
        """
        self._thread = threading.Thread(target=self._run, name="web-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start on {self.host}:{self.port} (see the log)")
            time.sleep(0.02)
        log.info("dashboard on %s", self.url)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving (open live streams end) and wait for the thread."""
        live = getattr(self.app.state, "live", None)
        loop = getattr(live, "loop", None)
        if live is not None and loop is not None:
            loop.call_soon_threadsafe(live.shutdown.set)
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)


def serve(app: Starlette, config: Config, *, address: str | None = None) -> WebServer:
    """Start the dashboard on ``address`` (``HOST:PORT``, e.g. from ``--http``) or ``config.http``.

    TLS is used when ``[http]`` names ``tls_cert`` and ``tls_key`` (relative to the config file); forwarded
    headers are believed from ``[http] trusted_proxies`` only.

    Returns:
        The running server (call ``stop()`` at shutdown).
    """
    http: HttpConfig = config.http
    host, port = parse_address(address) if address else (http.host, http.port)
    cert = config.resolve(http.tls_cert) if http.tls_cert else None
    key = config.resolve(http.tls_key) if http.tls_key else None
    server = WebServer(app, host, port, cert, key, trusted_proxies=list(http.trusted_proxies))
    server.start()
    return server
