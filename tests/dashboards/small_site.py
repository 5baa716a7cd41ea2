"""A small Europe/Berlin site for report tests with hand-made readings: rooms A1 and A2 (profile paper:
14–24 ℃, 45–60 %RH, mould from 65 %RH), sensors added as TOML, readings written through ``SqliteStore.write``
and the report built from the store's summaries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from archmon.config import Config
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from dashboards.reports import ComplianceReport, ReportRequest, build_report
from tests.dashboards import site_config

__all__ = ["TZ", "local_ms", "report", "sensor_toml", "small_site", "write"]

TZ = ZoneInfo("Europe/Berlin")


def sensor_toml(sensor: str, room: str, interval_s: int) -> str:
    """The TOML of one serial-line sensor."""
    return site_config.sensor_toml(sensor, room, interval_s=interval_s)


def small_site(folder: Path, sensors: str, *, reports: str = "") -> Config:
    """The site's config in ``folder`` with ``sensors`` (TOML) and a ``[reports]`` body."""
    return site_config.write_site_config(
        folder, name="Berlin", timezone="Europe/Berlin", language="en", reports=reports,
        rooms=[site_config.room_toml("A1", name_zh="一号库", profile="paper"),
               site_config.room_toml("A2", name_zh="二号库", profile="paper")],
        sensors=[sensors])


def local_ms(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    """UTC ms of a Berlin wall time."""
    return round(dt.datetime(y, m, d, hh, mm, ss, tzinfo=TZ).timestamp() * 1000)


def write(config: Config, readings: Sequence[Reading], chunk: int = 500) -> None:
    """Store the readings in batches of ``chunk``."""
    store = SqliteStore(config.resolve(config.storage.sqlite_path), tz=TZ)
    try:
        for i in range(0, len(readings), chunk):
            store.write(Batch(readings=list(readings[i:i + chunk])))
    finally:
        store.close()


def report(config: Config, first: dt.date, last: dt.date, rooms: tuple[str, ...] | None = None) -> ComplianceReport:
    """The report of ``first``..``last`` made long after it (every duty time expected)."""
    store = SqliteStore(config.resolve(config.storage.sqlite_path), tz=TZ, readonly=True)
    try:
        return build_report(config, store, ReportRequest(first, last, rooms, "en", "test", 2_000_000_000_000))
    finally:
        store.close()
