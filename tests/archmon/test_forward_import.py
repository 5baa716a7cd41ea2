"""Every writer of the site file queues what it stores for forwarding, not only ``archmon run``.

``archmon import`` (a real subprocess) while ``archmon run`` forwards to a real InfluxDB 1.6: the imported
history reaches InfluxDB exactly, point by point, next to the live stream. :func:`collector.backfill.backfill`
(what the demo's history and the importer use) queues every reading it stores when forwarding is on.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archmon.config import load_config
from collector.backfill import HistoricalReading, backfill
from collector.forward.outbox import read_totals
from collector.store import SqliteStore
from tests.archmon.forwarding import SITE, Stream, start, wait_drained, write_site
from tests.archmon.operations import ROOT, query
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.tsdb import ExportedPoint, InfluxServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.tsdb

MINUTE = 60_000
BASE_MS = (int(time.time()) - 86_400) * 1000
LOGGER = '[[sensors]]\nid = "logger"\nroom = "paper"\nsource = "import"\nexpected_interval_s = 60\n'


def with_logger(config: Path) -> Path:
    """The forwarding site's config with an import-only sensor ``logger``."""
    config.write_text(config.read_text().replace("[forward.influxdb]", LOGGER + "[forward.influxdb]"))
    return config


def logger_csv(path: Path, start_ms: int, count: int) -> list[tuple[int, float]]:
    """A CSV of ``count`` minutely temperatures from ``start_ms``; returns ``(ts, value)`` of each."""
    rows = [(start_ms + i * MINUTE, round(20 + i / 100, 2)) for i in range(count)]
    path.write_text("ts,temperature\n" + "".join(
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts / 1000))},{value}\n" for ts, value in rows))
    return rows


def test_imported_history_is_forwarded_by_the_running_service(
        tmp_path: Path, mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    config = with_logger(write_site(tmp_path, mosquitto.port, f'url = "{influx.url}"\napi = "v1"\n'))
    db = tmp_path / "archmon.db"
    history = logger_csv(tmp_path / "logger.csv", BASE_MS - 3 * 86_400_000, 300)
    stream = Stream(mosquitto.port, BASE_MS)
    process = start(config, tmp_path / "run.log")
    try:
        stream.publish(range(50))
        wait_drained(db, 50)
        out = subprocess.run([sys.executable, "-m", "archmon", "import", str(tmp_path / "logger.csv"),
                              "--sensor", "logger", "--columns", "ts=ts,temperature=temperature",
                              "--config", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "300 stored" in out.stdout
        stream.publish(range(50, 80))
        expected = sorted(stream.expected(80) + [
            ExportedPoint("temperature", (("room", "paper"), ("sensor", "logger"), ("site", SITE)), value, ts)
            for ts, value in history])
        wait_for(lambda: sorted(influx.points()) == expected, "live and imported readings in InfluxDB", timeout=60)
        assert "queued for forwarding" in out.stderr
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        stream.close()
    assert query(db, "SELECT rows, forwarded FROM forward_totals")[0] == (0, 380)


def test_backfill_queues_what_it_stores_when_forwarding_is_on(tmp_path: Path) -> None:
    config = load_config(with_logger(write_site(tmp_path, 1883, 'url = "http://127.0.0.1:9"\napi = "v1"\n')))
    db = tmp_path / "archmon.db"
    store = SqliteStore(db, tz=config.site.tz)
    try:
        items = [HistoricalReading("logger", "temperature", BASE_MS + i * MINUTE, 20.0 + i / 10) for i in range(40)]
        first = backfill(config, store, items[:30], source="demo-history", batch_size=7)
        again = backfill(config, store, items, source="demo-history", batch_size=7)  # 30 already stored
    finally:
        store.close()
    assert (first.stored, again.stored, again.duplicates) == (30, 10, 30)
    with SqliteStore(db, tz=config.site.tz, readonly=True)._readers.read() as conn:
        totals = read_totals(conn)
        lines = [str(line) for (line,) in conn.execute("SELECT line FROM forward_outbox ORDER BY seq")]
    assert totals.rows == 40  # each stored reading once; the duplicates not queued again
    assert [int(line.rsplit(" ", 1)[1]) for line in lines] == [r.ts_ms for r in items]
