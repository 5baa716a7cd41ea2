"""The InfluxDB client leaves no socket behind: an answer taken without preloading (a 204 to the 1.x
``/write``) is read and given back, also from a server that closes every connection (HTTP/1.0)."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from archmon.forward_config import InfluxForwardConfig
from collector.forward import InfluxClient
from tests.fixtures.waiting import wait_for


class _NoContent(BaseHTTPRequestHandler):
    """What InfluxDB 1.x answers to a write, over HTTP/1.0 (http.server's default): every connection closes."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = b'{"results":[{"statement_id":0}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoContent)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def test_writes_and_queries_leave_no_socket_open_once_the_client_is_closed(server: ThreadingHTTPServer) -> None:
    # without the collector: what reference cycles hold stays open, as it would until a collection that
    # finalises sockets and their files in any order (an unclosed-socket warning)
    gc.collect()
    gc.disable()
    try:
        config = InfluxForwardConfig(url=f"http://127.0.0.1:{server.server_port}", api="v1", timeout_s=5)
        before = _open_sockets()
        writer = InfluxClient(config)
        for i in range(20):
            writer.write([f"temperature,site=s,room=r,sensor=t value=20.{i} {i}"])
        writer.close()
        # (the server's threads close their ends of the connections on their own time)
        wait_for(lambda: _open_sockets() == before, "every socket of the writes closed", timeout=10)
        reader = InfluxClient(config)
        for _ in range(20):
            assert reader.query("SELECT * FROM temperature") == []
        reader.close()
        wait_for(lambda: _open_sockets() == before, "every socket of the queries closed", timeout=10)
    finally:
        gc.enable()
