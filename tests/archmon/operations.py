"""Helpers for tests that run ``archmon run`` as a separate process, the way systemd does."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.fixtures.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


class ArchmonProcess:
    """``python -m archmon run --config CONFIG --http HTTP`` with its log in a file (readable while it runs).

    Args:
        config: the config file.
        log: where stderr goes.
        env: extra environment variables.
        http: the dashboard's address (default ``off``: tests share the machine; no port is taken).
    """

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None, *, http: str = "off") -> None:
        self.config = config
        self.log_path = log
        self._out = open(log, "ab")  # noqa: SIM115 (closed in wait)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archmon", "run", "--config", str(config), "--http", http],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})},
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, what: str, timeout: float = 60) -> None:
        wait_for(lambda: text in self.log() or self.proc.poll() is not None, what, timeout)
        assert text in self.log(), f"archmon exited ({self.proc.returncode}) before {what}:\n{self.log()[-3000:]}"

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._out.closed:
            self._out.close()


@contextmanager
def running(config: Path, log: Path, env: dict[str, str] | None = None, *,
            http: str = "off") -> Iterator[ArchmonProcess]:
    """An archmon process, killed at the end if the test did not stop it."""
    process = ArchmonProcess(config, log, env, http=http)
    try:
        yield process
    finally:
        process.kill()


class NotifySocket:
    """A systemd-like notification socket (abstract namespace) that collects what archmon sends."""

    def __init__(self) -> None:
        self.name = f"@archmon-test-{secrets.token_hex(6)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.messages: list[dict[str, str]] = []

    def next(self, timeout: float = 60) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        self.messages.append(message)
        return message

    def until(self, key: str, timeout: float = 60) -> dict[str, str]:
        """The next message that has ``key`` (skipping others)."""
        while key not in (message := self.next(timeout)):
            pass
        return message

    def close(self) -> None:
        self.sock.close()


def publisher(port: int, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Rows from the database another process writes (read-only; empty while it does not exist yet)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # a table the service has not created yet
        return []
    finally:
        conn.close()


def log_time(line: str) -> float:
    """The time of a log line (ISO-8601 with offset at its start), in seconds."""
    from datetime import datetime

    return datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()


def stop_seconds(log: str) -> float:
    """From the stop signal's log line to the stop summary's, by the log's own clock; and the summary's own
    figure (``archmon stopped in X s``), whichever is larger."""
    lines = log.splitlines()
    signalled = next(log_time(line) for line in lines if ": SIGTERM: stopping" in line or ": SIGINT: stopping" in line)
    stopped = next(log_time(line) for line in lines if "archmon stopped in " in line)
    return max(stopped - signalled, float(log.split("archmon stopped in ")[1].split(" s (bound")[0]))
