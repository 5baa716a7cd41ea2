"""Forwarding to real servers: InfluxDB 1.6 (``/write`` + InfluxQL) and VictoriaMetrics (v2 write API + export).

Readings are written through the real ``SqliteStore`` (the outbox is its write hook) and forwarded by the real
``Forwarder``; what the servers hold is read back and compared point by point: measurement, tags, value and
millisecond timestamp, each exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.config import parse_config
from archmon.domain import Reading
from archmon.errors import ConfigError
from archmon.forward_config import InfluxForwardConfig
from collector.forward import Forwarder, InfluxClient, InfluxReader, Outbox, OutboxLimits
from collector.forward.lines import reading_line
from collector.forward.setup import forward_problems
from collector.records import Batch
from collector.store import SqliteStore
from tests.fixtures.store_stall import refuse_value
from tests.fixtures.tsdb import ExportedPoint, InfluxServer, VictoriaServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.tsdb

TZ = ZoneInfo("Asia/Shanghai")
SITE = "示例 档案馆,一"  # a space, a comma and CJK: escaped in tags, read back as written
HOUR = 3_600_000
BASE = (int(time.time() * 1000) // HOUR - 48) * HOUR


def readings(n: int, *, sensors: int = 5, step_ms: int = 60_000, start: int = BASE) -> list[Reading]:
    """``n`` readings: temperature and humidity of ``sensors`` sensors in two rooms, distinct values."""
    out = []
    for i in range(n):
        sensor = i % sensors
        quantity = "temperature" if (i // sensors) % 2 == 0 else "humidity"
        out.append(Reading(f"th{sensor}", quantity, round(10 + i / 1000, 3), start + (i // sensors) * step_ms,
                           room="paper" if sensor % 2 == 0 else "film"))
    return out


def expected_points(items: list[Reading]) -> list[ExportedPoint]:
    return sorted(ExportedPoint(r.quantity, (("room", r.room), ("sensor", r.sensor), ("site", SITE)), r.value,
                                r.ts_ms) for r in items)


@dataclass
class Site:
    """A store with its outbox hook and a forwarder to one server."""

    store: SqliteStore
    outbox: Outbox
    forwarder: Forwarder
    client: InfluxClient

    def write(self, items: list[Reading], per_tx: int = 500) -> None:
        for start in range(0, len(items), per_tx):
            self.store.write_many([Batch(readings=items[start:start + per_tx])])
            self.forwarder.wake()

    def drained(self) -> bool:
        totals = self.outbox.totals()
        return totals.rows == 0 and totals.overflow_pending == 0


@contextmanager
def site(tmp_path: Path, target: InfluxForwardConfig, limits: OutboxLimits | None = None) -> Iterator[Site]:
    store = SqliteStore(tmp_path / "archmon.db", tz=TZ)
    outbox = Outbox(store.path, site=SITE, limits=limits or OutboxLimits(100_000, 10**8, 50_000, 10**7)).open()
    store.add_write_hook(outbox.enqueue)
    client = InfluxClient(target)
    forwarder = Forwarder(outbox, lambda: client, raw=store.readings, batch_size=target.batch_size,
                          retry_min_s=0.05, retry_max_s=0.5)
    forwarder.start()
    try:
        yield Site(store, outbox, forwarder, client)
    finally:
        forwarder.stop(10)
        outbox.close()
        store.close()


def test_line_protocol_escapes_tags_and_keeps_the_float_exact() -> None:
    line = reading_line(Reading("th 1", "temperature", 0.1 + 0.2, 1767225600123, room="a,b=c"), "站 点")
    assert line == r"temperature,room=a\,b\=c,sensor=th\ 1,site=站\ 点 value=0.30000000000000004 1767225600123"
    assert reading_line(Reading("s", "door", 1.0, 5), "x") == "door,sensor=s,site=x value=1.0 5"  # no empty room tag


def test_a_rolled_back_write_queues_nothing_and_duplicates_are_not_queued_again(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "archmon.db", tz=TZ)
    outbox = Outbox(store.path, site=SITE, limits=OutboxLimits(1000, 10**6, 500, 10**5)).open()
    store.add_write_hook(outbox.enqueue)
    try:
        first = readings(20)
        store.write_many([Batch(readings=first)])
        store.write_many([Batch(readings=first[:10] + readings(5, start=BASE + 10 * HOUR))])  # 10 duplicates
        refuse_value(store.path, 99.5)
        with pytest.raises(sqlite3.IntegrityError):
            store.write_many([Batch(readings=[Reading("th0", "temperature", 1.0, BASE + 20 * HOUR),
                                              Reading("th0", "temperature", 99.5, BASE + 21 * HOUR)])])
        assert store.count_readings() == 25
        lines = [row.line for row in outbox.peek(1000)]
        assert lines == [reading_line(r, SITE) for r in first + readings(5, start=BASE + 10 * HOUR)]
        assert outbox.totals().rows == 25 and outbox.totals().bytes == sum(len(x.encode()) for x in lines)
    finally:
        outbox.close()
        store.close()


def test_influxdb_1_6_gets_every_reading_once_through_write_and_reads_back_through_influxql(
        tmp_path: Path, influx: InfluxServer) -> None:
    target = InfluxForwardConfig(url=influx.url, api="v1", batch_size=700, timeout_s=5)
    items = readings(3000)
    with site(tmp_path, target) as s:
        s.write(items[:2000])
        s.write(items[:100])  # sent again by a source: stored once, queued once
        s.write(items[2000:])
        wait_for(s.drained, "the outbox to drain", timeout=60)
        assert s.outbox.totals().forwarded == 3000
        reader = InfluxReader(s.client, SITE)
        th0 = [(r.ts_ms, r.value) for r in items if r.sensor == "th0" and r.quantity == "temperature"]
        assert reader.series("th0", "temperature", BASE, BASE + 100 * HOUR) == th0
        windows = reader.windows("th0", "temperature", BASE, BASE + 100 * HOUR, every="1h")
        local = s.store.buckets("th0", "temperature", BASE, BASE + 100 * HOUR, "hour")
        assert [(w.start_ms, w.min, w.max, w.count) for w in windows] == [
            (b.start_ms, b.min, b.max, b.count) for b in local]
        assert [w.sum for w in windows] == pytest.approx([b.sum for b in local])
        days = reader.windows("th0", "temperature", BASE, BASE + 100 * HOUR, every="1d", tz="Asia/Shanghai")
        assert [d.start_ms for d in days] == [b.start_ms for b in
                                             s.store.buckets("th0", "temperature", 0, 2**62, "day")]
        assert len(reader.points(BASE, BASE + 100 * HOUR)) == 3000
    assert sorted(influx.points()) == expected_points(items)


def test_victoria_metrics_gets_every_reading_once_through_the_v2_write_api(
        tmp_path: Path, victoria: VictoriaServer) -> None:
    target = InfluxForwardConfig(url=victoria.url, api="v2", bucket="archmon", batch_size=1000, timeout_s=5)
    items = readings(2500)
    with site(tmp_path, target) as s:
        s.write(items)
        wait_for(s.drained, "the outbox to drain", timeout=60)
    assert sorted(victoria.points()) == expected_points(items)


def test_a_point_the_server_refuses_is_quarantined_with_its_reason_and_the_rest_goes_on(
        tmp_path: Path, influx: InfluxServer) -> None:
    # A door series someone else wrote as a string: every float door point is a field type conflict (within the
    # same shard: InfluxDB keeps a field's type per shard, a week here).
    assert influx.write(f'door,room=paper,sensor=d1,site=other value="open" {BASE + 5 * HOUR - 1000}')[0] == 204
    target = InfluxForwardConfig(url=influx.url, api="v1", batch_size=64, timeout_s=5)
    items = readings(300)
    doors = [Reading("d1", "door", float(i % 2), BASE + 5 * HOUR + i * 1000, room="paper") for i in range(3)]
    with site(tmp_path, target) as s:
        s.write(items[:150] + doors + items[150:])
        wait_for(s.drained, "the outbox to drain", timeout=60)
        totals = s.outbox.totals()
        refused = sqlite3.connect(s.store.path).execute("SELECT status, reason, line FROM forward_quarantine "
                                                        "ORDER BY id").fetchall()
    assert (totals.forwarded, totals.quarantined) == (300, 3)
    assert [line for _, _, line in refused] == [reading_line(d, SITE) for d in doors]
    assert all(status == 400 and "field type conflict" in reason for status, reason, _ in refused)
    assert [p for p in sorted(influx.points()) if p.measurement != "door"] == expected_points(items)


def test_a_missing_database_holds_the_outbox_without_refusing_anything_until_it_exists(
        tmp_path: Path, influx: InfluxServer) -> None:
    target = InfluxForwardConfig(url=influx.url, api="v1", database="later", batch_size=100, timeout_s=5)
    items = readings(400)
    with site(tmp_path, target) as s:
        s.write(items)
        wait_for(lambda: s.forwarder.stats()["failures"] >= 3, "failed attempts (404: database not found)")
        health = s.forwarder.health()
        assert (health.down, health.rows, s.outbox.totals().quarantined) == (True, 400, 0)
        assert "database not found" in health.detail
        influx.create_database("later")
        wait_for(s.drained, "the outbox to drain once the database exists", timeout=60)
        assert not s.forwarder.health().down
    assert sorted(influx.points(db="later")) == expected_points(items)


def test_at_the_bound_ingest_keeps_every_reading_and_the_overflow_is_queued_again_from_the_raw_table(
        tmp_path: Path, victoria: VictoriaServer) -> None:
    target = InfluxForwardConfig(url=victoria.url, api="v2", batch_size=50, timeout_s=2)
    victoria.stop()
    items = readings(1000)
    with site(tmp_path, target, limits=OutboxLimits(200, 10**7, 100, 10**6)) as s:
        s.write(items, per_tx=100)
        totals = s.outbox.totals()
        assert s.store.count_readings() == 1000  # the bound never costs the local store a reading
        assert (totals.rows, totals.overflowed, totals.overflow_pending) == (200, 800, 800)
        health = s.forwarder.health()
        assert health.backlog and health.full
        victoria.start()
        wait_for(s.drained, "the outbox and its overflow to drain", timeout=90)
        assert s.outbox.totals().refilled >= 800
    assert sorted(victoria.points()) == expected_points(items)


def test_check_config_reads_the_token_from_env_or_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"forward": {"influxdb": {"url": "http://127.0.0.1:8086", "token_env": "ARCHMON_TEST_INFLUX_TOKEN"}}}
    config = parse_config(base)
    monkeypatch.delenv("ARCHMON_TEST_INFLUX_TOKEN", raising=False)
    assert any("ARCHMON_TEST_INFLUX_TOKEN is not set" in p for p in forward_problems(config))
    assert forward_problems(config, secrets=False) == []
    monkeypatch.setenv("ARCHMON_TEST_INFLUX_TOKEN", "secret")
    assert forward_problems(config) == []
    with pytest.raises(ConfigError, match="token"):
        parse_config({"forward": {"influxdb": {"url": "http://h:8086", "token": "inline"}}})
    with pytest.raises(ConfigError, match="warn_rows"):
        parse_config({"forward": {"influxdb": {"url": "http://h:8086", "outbox_max_rows": 100, "warn_rows": 100}}})


def test_status_shows_the_outbox_its_age_and_what_was_forwarded_in_text_and_json(
        tmp_path: Path, victoria: VictoriaServer, capsys: pytest.CaptureFixture[str]) -> None:
    from archmon.cli import main

    config_path = tmp_path / "archmon.toml"
    config_path.write_text(f'[site]\nname = "{SITE}"\n[[rooms]]\nid = "paper"\n[[rooms]]\nid = "film"\n'
                           f'[forward.influxdb]\nurl = "{victoria.url}"\nwarn_rows = 100\n', encoding="utf-8")
    target = InfluxForwardConfig(url=victoria.url, batch_size=100, timeout_s=2)
    with site(tmp_path, target) as s:
        s.write(readings(300))
        wait_for(s.drained, "the outbox to drain")
        victoria.stop()
        s.write(readings(150, start=BASE + 50 * HOUR))
        wait_for(lambda: s.forwarder.health().down, "the forwarder to see the server gone")
    assert main(["--config", str(config_path), "status", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)["forwarding"]
    assert (report["outbox_rows"], report["forwarded"], report["quarantined"], report["backlog"]) == (150, 300, 0, True)
    assert report["oldest_age_s"] >= 0 and "Connection refused" in report["last_error"]
    assert main(["--config", str(config_path), "status"]) == 0
    text = capsys.readouterr().out
    assert f"forward  influxdb {victoria.url}: state unknown (archmon not running); outbox 150 row(s)" in text
    assert "BACKLOG" in text and "forwarded 300, failed requests 0, refused points 0" in text


def test_check_config_names_an_unreadable_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from archmon.cli import main

    config_path = tmp_path / "archmon.toml"
    config_path.write_text('[forward.influxdb]\nurl = "https://influx.example.org:8086"\n'
                           f'token_file = "{tmp_path / "missing-token"}"\n', encoding="utf-8")
    assert main(["check-config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert "forward.influxdb.token: cannot read secret file" in err and "missing-token" in err


@dataclass
class HealthOf:
    """What the service wiring gives the rule: the forwarder's health."""

    forwarder: Forwarder

    def forward_health(self) -> list[object]:
        return [self.forwarder.health()]


def test_the_backlog_alert_rule_rises_at_the_warning_level_and_clears_below_it(
        tmp_path: Path, victoria: VictoriaServer) -> None:
    from alerts.model import RuleContext
    from alerts.rules.forwarding import ForwardingRule
    from alerts.settings import AlertSettings

    target = InfluxForwardConfig(url=victoria.url, batch_size=100, timeout_s=2)
    victoria.stop()
    with site(tmp_path, target, limits=OutboxLimits(1000, 10**7, 100, 10**6)) as s:
        rule = ForwardingRule(RuleContext(AlertSettings(), {}, TZ))
        rule.attach(HealthOf(s.forwarder))
        rule.start(0)
        s.write(readings(99))
        assert [c.state for c in rule.on_due(1)] == [False]  # the first look reports the state
        s.write(readings(1, start=BASE + 90 * HOUR))
        raised = rule.on_due(2)
        assert [(c.state, c.detail, c.sensor, c.value) for c in raised] == [(True, "backlog", "influxdb", 100.0)]
        assert rule.on_due(3) == []  # only changes are news
        victoria.start()
        wait_for(s.drained, "the outbox to drain")
        assert [(c.state, c.detail) for c in rule.on_due(4)] == [(False, "")]


def test_raw_retention_keeps_readings_an_overflow_range_still_needs(tmp_path: Path) -> None:
    from archmon.app.forwarding import Forwarding

    config = parse_config({"site": {"name": SITE}, "storage": {"sqlite_path": str(tmp_path / "archmon.db")},
                           "forward": {"influxdb": {"url": "http://127.0.0.1:9", "outbox_max_rows": 100}}})
    store = SqliteStore(tmp_path / "archmon.db", tz=TZ)
    forwarding = Forwarding(config, store, store.path)  # not started: nothing drains
    try:
        now = BASE + 48 * HOUR
        old = readings(150, start=now - 20 * 24 * HOUR)
        store.write_many([Batch(readings=old[:100])])
        store.write_many([Batch(readings=old[100:])])  # over the bound: an overflow range 20 days back
        assert forwarding.outbox.totals().overflow_pending == 50
        assert forwarding.retention_days(8, now) >= 21
        assert forwarding.retention_days(0, now) == 0  # forever stays forever
    finally:
        forwarding.stop(1)
        store.close()


def test_the_victoria_metrics_the_tests_run_is_the_one_docs_operations_tells_to_run(tmp_path: Path) -> None:
    # Its default retention (one month) and its 2-day future limit drop points while answering 204; the doc's
    # command must carry the flags that keep them, and the tests must run exactly those.
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    command = next(line for line in doc.splitlines() if line.startswith("victoria-metrics "))
    flags = {flag for flag in command.split() if flag.startswith("-") and not flag.startswith("-storageDataPath")}
    assert {"-retentionPeriod=100y", "-dedup.minScrapeInterval=1ms"} <= flags
    assert flags <= set(VictoriaServer(tmp_path)._command())  # not started: its command line only
