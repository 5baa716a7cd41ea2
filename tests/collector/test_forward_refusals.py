"""What a refusal is: a point the database names, not an intermediary that refuses every request.

Between a site and its InfluxDB there may be a proxy, a firewall, a wrong port or HTTP sent to an HTTPS port;
each answers every request with the same error, whatever points it holds. None of that may refuse a point
for good: the outbox holds everything, the forwarder is down with the reason, and once the way is fixed every
reading arrives exactly once. Points InfluxDB itself refuses (a field type conflict) are quarantined, raise
the ``forwarding`` alert, and ``archmon forward requeue`` sends them again. A real HTTP relay on loopback in
front of a real InfluxDB 1.6; real ``SqliteStore``, ``Outbox`` and ``Forwarder``; the CLI as a subprocess.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.model import RuleContext
from alerts.rules.forwarding import ForwardingRule
from alerts.settings import AlertSettings
from archmon.domain import Reading
from archmon.forward_config import InfluxForwardConfig
from collector.forward import Forwarder, InfluxClient, Outbox, OutboxLimits
from collector.forward.forwarder import REFUSED_ROUNDS_AS_OUTAGE
from collector.records import Batch
from collector.store import SqliteStore
from tests.archmon.operations import ROOT
from tests.fixtures.tsdb import ExportedPoint, InfluxServer

pytestmark = pytest.mark.tsdb

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1_767_225_600_000
HTML_400 = b"<html><body><h1>400 Bad Request</h1>The plain HTTP request was sent to HTTPS port</body></html>"
JSON_400 = b'{"error":"unable to parse \'request\': bad request"}'  # looks like InfluxDB's, refuses everything


class Relay:
    """An HTTP intermediary on loopback: relays to ``target`` (``mode = "pass"``) or answers every request 400
    with an HTML page (``"html"``) or with an InfluxDB-like JSON error (``"json"``)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.mode = "pass"
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if relay.mode != "pass":
                    self._send(400, HTML_400 if relay.mode == "html" else JSON_400,
                               "text/html" if relay.mode == "html" else "application/json")
                    return
                request = urllib.request.Request(relay.target + self.path, data=body if body else None,
                                                 method=self.command)
                request.add_header("Content-Type", self.headers.get("Content-Type") or "text/plain")
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        self._send(answer.status, answer.read(), answer.headers.get("Content-Type") or "")
                except urllib.error.HTTPError as exc:
                    with exc:
                        self._send(exc.code, exc.read(), exc.headers.get("Content-Type") or "")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def relay(influx: InfluxServer) -> Iterator[Relay]:
    server = Relay(influx.url)
    try:
        yield server
    finally:
        server.close()


class Site:
    """A store, its outbox and a forwarder (not started: the test drives its rounds)."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.store = SqliteStore(tmp_path / "archmon.db", tz=TZ)
        self.outbox = Outbox(self.store.path, site="s", limits=OutboxLimits(10**6, 10**9, 10**5, 10**8)).open()
        self.store.add_write_hook(self.outbox.enqueue)
        self.client = InfluxClient(InfluxForwardConfig(url=url, api="v1", timeout_s=5))
        self.forwarder = Forwarder(self.outbox, lambda: self.client, raw=self.store.readings, batch_size=5000)

    def round(self) -> str:
        """One forwarder round: ``ok`` or the error it raised."""
        try:
            self.forwarder._round()
        except Exception as exc:  # what the thread backs off on, after noting the failure
            self.forwarder._failed(str(exc))
            return str(exc)
        return "ok"

    def close(self) -> None:
        self.client.close()
        self.outbox.close()
        self.store.close()


@pytest.fixture
def site(tmp_path: Path, relay: Relay) -> Iterator[Site]:
    made = Site(tmp_path, relay.url)
    try:
        yield made
    finally:
        made.close()


class HealthOf:
    """The ``forwarding`` rule's source: one forwarder's health."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    def forward_health(self) -> list[object]:
        return [self.forwarder.health()]


def temps(n: int, start: int = T0) -> list[Reading]:
    return [Reading(f"th{i % 20}", "temperature", 20.0 + i / 100, start + i * 1000, "paper") for i in range(n)]


def points(items: list[Reading]) -> list[ExportedPoint]:
    return sorted(ExportedPoint(r.quantity, (("room", r.room), ("sensor", r.sensor), ("site", "s")), r.value, r.ts_ms)
                  for r in items)


@pytest.mark.parametrize("mode", ["html", "json"])
def test_an_intermediary_refusing_every_request_refuses_no_point_and_the_outbox_drains_once_it_is_fixed(
        site: Site, relay: Relay, influx: InfluxServer, mode: str) -> None:
    relay.mode = mode
    items = temps(2000)
    site.store.write(Batch(readings=items))
    errors = {site.round() for _ in range(3)}
    assert "ok" not in errors
    health = site.forwarder.health()
    totals = site.outbox.totals()
    assert (totals.quarantined, totals.rows, health.down) == (0, 2000, True)
    assert site.forwarder.stats()["requests"] <= 3 * 7  # it gives up splitting early, not 3,999 requests
    assert "nothing refused" in health.detail or "HTTP 400" in health.detail
    relay.mode = "pass"
    assert site.round() == "ok"
    assert not site.forwarder.health().down
    assert (site.outbox.totals().rows, site.outbox.totals().forwarded) == (0, 2000)
    assert sorted(influx.points()) == points(items)


def test_single_readings_refused_in_a_row_become_an_outage_and_requeue_sends_the_few_refused_again(
        tmp_path: Path, site: Site, relay: Relay, influx: InfluxServer) -> None:
    relay.mode = "json"
    items = temps(10)
    for item in items:  # a trickle: one reading per request
        site.store.write(Batch(readings=[item]))
        site.round()
    totals = site.outbox.totals()
    assert totals.quarantined == REFUSED_ROUNDS_AS_OUTAGE  # then it stops refusing and holds the rest
    assert totals.rows == 10 - REFUSED_ROUNDS_AS_OUTAGE
    health = site.forwarder.health()
    assert health.down and health.refused == REFUSED_ROUNDS_AS_OUTAGE
    relay.mode = "pass"
    assert site.round() == "ok"
    assert site.outbox.totals().rows == 0
    rule = ForwardingRule(RuleContext(AlertSettings(), {}, TZ))
    rule.attach(HealthOf(site.forwarder))
    rule.start(0)
    assert [(c.state, c.detail) for c in rule.on_due(1)] == [(True, "refused")]  # the 3 refused, for an hour
    config = tmp_path / "archmon.toml"
    config.write_text(f'[site]\nname = "s"\n[storage]\nsqlite_path = "{site.store.path}"\n'
                      f'[forward.influxdb]\nurl = "{relay.url}"\napi = "v1"\n', encoding="utf-8")
    listed = subprocess.run([sys.executable, "-m", "archmon", "forward", "refused", "--config", str(config)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and f"{REFUSED_ROUNDS_AS_OUTAGE} refused point(s) kept" in listed.stdout
    out = subprocess.run([sys.executable, "-m", "archmon", "forward", "requeue", "--config", str(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"{REFUSED_ROUNDS_AS_OUTAGE} refused point(s) queued again" in out.stdout
    assert site.round() == "ok"
    assert site.outbox.totals().rows == 0
    assert sorted(influx.points()) == points(items)  # every reading exactly once


def test_a_point_the_database_refuses_is_quarantined_and_raises_the_forwarding_alert(
        site: Site, influx: InfluxServer) -> None:
    assert influx.write(f'door,room=paper,sensor=d1,site=other value="open" {T0 - 1000}')[0] == 204
    rule = ForwardingRule(RuleContext(AlertSettings(), {}, TZ))
    rule.attach(HealthOf(site.forwarder))
    rule.start(0)
    assert [c.state for c in rule.on_due(1)] == [False]
    items = temps(100)
    doors = [Reading("d1", "door", 1.0, T0 + 500 + i * 1000, "paper") for i in range(2)]
    site.store.write(Batch(readings=items[:40] + doors + items[40:]))
    assert site.round() == "ok"
    totals = site.outbox.totals()
    assert (totals.forwarded, totals.quarantined, totals.rows) == (100, 2, 0)
    health = site.forwarder.health()
    assert (health.down, health.backlog, health.refused) == (False, False, 2)
    raised = rule.on_due(2)
    assert [(c.state, c.detail) for c in raised] == [(True, "refused")]
    assert [p for p in sorted(influx.points()) if p.measurement != "door"] == points(items)
