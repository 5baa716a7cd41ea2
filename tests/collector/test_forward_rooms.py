"""Forwarded points carry the room a reading is stored under, and the outbox bound's overflow ranges.

A sensor that moved rooms and then delivers a late reading (a device buffer, a spool replayed): the store
files the reading under the room assigned at its timestamp, and InfluxDB must get it under that room too,
whether it is queued at once or queued again from the raw table after the outbox was at its bound; otherwise
one reading is two points in two series. Overflow ranges are kept per sensor, so one far-off late reading at
the bound does not make a refill re-send (and raw retention hold back) everything in between. Real
``SqliteStore``, ``Outbox``, ``Forwarder`` and InfluxDB 1.6.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.domain import Reading
from archmon.forward_config import InfluxForwardConfig
from collector.forward import Forwarder, InfluxClient, Outbox, OutboxLimits
from collector.records import Batch
from collector.store import SqliteStore
from tests.fixtures.tsdb import InfluxServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.tsdb

TZ = ZoneInfo("Asia/Shanghai")
M = 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


class Site:
    """A store, its outbox and a forwarder thread to InfluxDB."""

    def __init__(self, tmp_path: Path, url: str, limits: OutboxLimits) -> None:
        self.store = SqliteStore(tmp_path / "archmon.db", tz=TZ)
        self.outbox = Outbox(self.store.path, site="s", limits=limits).open()
        self.store.add_write_hook(self.outbox.enqueue)
        client = InfluxClient(InfluxForwardConfig(url=url, api="v1", batch_size=5, timeout_s=2))
        self.forwarder = Forwarder(self.outbox, lambda: client, raw=self.store.readings, batch_size=5,
                                   retry_min_s=0.05, retry_max_s=0.2)

    def write(self, *readings: Reading) -> None:
        self.store.write(Batch(readings=list(readings)))
        self.forwarder.wake()

    def drained(self) -> bool:
        totals = self.outbox.totals()
        return totals.rows == 0 and totals.overflow_pending == 0

    def local(self, sensor: str) -> list[tuple[int, str, float]]:
        return sorted((ts, room, value) for ts, room, s, _, value in self.store.readings(0, 2**62) if s == sensor)


@contextmanager
def running(tmp_path: Path, url: str, limits: OutboxLimits) -> Iterator[Site]:
    site = Site(tmp_path, url, limits)
    site.forwarder.start()
    try:
        yield site
    finally:
        site.forwarder.stop(10)
        site.outbox.close()
        site.store.close()


def remote(influx: InfluxServer, sensor: str) -> list[tuple[int, str, float]]:
    return sorted((p.ts_ms, dict(p.tags)["room"], p.value) for p in influx.points() if ("sensor", sensor) in p.tags)


def test_a_late_reading_of_a_moved_sensor_is_forwarded_under_the_room_it_is_stored_in(
        tmp_path: Path, influx: InfluxServer) -> None:
    with running(tmp_path, influx.url, OutboxLimits(12, 10**9, 6, 10**8)) as site:
        site.write(*(Reading("th1", "temperature", 20.0 + i, T0 + i * M, "paper") for i in range(10)))
        wait_for(site.drained, "the first readings forwarded")
        site.write(Reading("th1", "temperature", 40.0, T0 + 20 * M, "film"))  # moved to film from minute 20
        # a late reading from minute 15, carrying the sensor's current room as the pipeline gives it
        site.write(Reading("th1", "temperature", 35.0, T0 + 15 * M, "film"))
        wait_for(site.drained, "the move and the late reading forwarded")
        assert remote(influx, "th1") == site.local("th1")
        assert (T0 + 15 * M, "paper", 35.0) in site.local("th1")
        # the outbox at its bound while InfluxDB is down, its overflow spanning minute 15: the refill
        # queues th1's readings of that range again from the raw table, under the same room
        influx.stop()
        site.write(*(Reading("th2", "temperature", 10.0 + i, T0 + (14 + i) * M, "paper") for i in range(12)))
        site.write(Reading("th2", "temperature", 50.0, T0 + 13 * M, "paper"),
                   Reading("th1", "temperature", 36.0, T0 + 16 * M, "film"),
                   Reading("th2", "temperature", 51.0, T0 + 40 * M, "paper"))
        assert site.outbox.totals().overflow_pending == 3
        influx.start()
        wait_for(site.drained, "the outbox and its overflow forwarded")
        assert site.outbox.totals().refilled >= 3
        assert remote(influx, "th1") == site.local("th1")  # one point per reading, each in its stored room
        assert remote(influx, "th2") == site.local("th2")


def test_at_the_bound_a_far_late_reading_gets_its_own_range_and_the_refill_resends_only_what_overflowed(
        tmp_path: Path, influx: InfluxServer) -> None:
    hour = 60 * M
    with running(tmp_path, influx.url, OutboxLimits(10, 10**9, 5, 10**8)) as site:
        history = [Reading("th1", "temperature", 15.0 + i / 100, T0 - 30 * 24 * hour + i * hour, "paper")
                   for i in range(30 * 24)]
        for start in range(0, len(history), 10):  # a month of th1, forwarded as it comes
            site.write(*history[start:start + 10])
            wait_for(site.drained, "th1's month forwarded")
        influx.stop()
        site.write(*(Reading("th2", "temperature", 10.0 + i, T0 + i * M, "paper") for i in range(10)))
        overflow = [Reading("th2", "temperature", 30.0, T0 + 40 * M, "paper"),
                    Reading("th3", "humidity", 55.0, T0 - 20 * 24 * hour, "film"),  # a device buffer's oldest
                    Reading("th2", "temperature", 31.0, T0 - 10 * 24 * hour, "paper")]
        site.write(*overflow)
        totals = site.outbox.totals()
        assert (totals.overflowed, totals.overflow_pending, totals.overflow_lo_ts) == (3, 3, T0 - 20 * 24 * hour)
        influx.start()
        wait_for(site.drained, "the outbox and its overflow forwarded")
        # the refill queued the 3 readings again, not th1's month in between
        assert site.outbox.totals().refilled == 3
        for sensor in ("th1", "th2", "th3"):
            assert remote(influx, sensor) == site.local(sensor)
