"""The demo's history written once per test module (about 6 s), copied for each test that changes it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from archmon.config import Config, load_config
from archmon.domain import Reading
from dashboards.demo.controlled import ROOM as CONTROLLED_ROOM
from dashboards.demo.controlled import SENSOR as CONTROLLED_SENSOR
from dashboards.demo.controlled import LiveControlledRoom
from dashboards.demo.month import HistorySummary, write_history
from dashboards.demo.site import SENSORS, demo_config

TZ = ZoneInfo("Asia/Shanghai")
END_MS = int(datetime(2025, 11, 25, 10, 0, tzinfo=TZ).timestamp() * 1000)
"""A Tuesday, 10:00: the live script that follows runs in working hours."""
DAY_MS = 86_400_000


class WrittenHistory(NamedTuple):
    """A data directory with the demo's configuration and its judged month of history."""

    folder: Path
    config: Config
    summary: HistorySummary

    @property
    def db(self) -> Path:
        return self.folder / "archmon.db"

    def copy(self, into: Path) -> WrittenHistory:
        """The same history in another folder (for a test that adds to it)."""
        into.mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            shutil.copy2(path, into / path.name)
        return WrittenHistory(into, demo_site_config(into), self.summary)


def demo_site_config(folder: Path) -> Config:
    path = folder / "archmon.toml"
    if not path.exists():
        path.write_text(demo_config(path, mqtt_port=1883, modbus_port="/dev/null", line_port="/dev/null",
                                    interval=10.0), encoding="utf-8")
    return load_config(path)


def write_demo_history(folder: Path, end_ms: int = END_MS) -> WrittenHistory:
    folder.mkdir(parents=True, exist_ok=True)
    config = demo_site_config(folder)
    summary = write_history(config, folder / "archmon.db", end_ms)
    return WrittenHistory(folder, config, summary)


def live_readings(values: object, ts_ms: int, controlled: LiveControlledRoom | None = None) -> Iterator[Reading]:
    """What every demo sensor reports at ``ts_ms``, from ``values(room, ts)`` (a scenario's), at its resolution;
    with ``controlled``, the controlled room's sensor too."""
    for sensor in SENSORS:
        room_values = values(sensor.room, ts_ms)  # type: ignore[operator]
        for quantity in sensor.quantities:
            yield Reading(sensor.id, quantity, round(room_values[quantity], sensor.decimals), ts_ms, sensor.room)
    if controlled is not None:
        now = controlled.values(ts_ms)
        for quantity in ("temperature", "humidity"):
            yield Reading(CONTROLLED_SENSOR, quantity, now[quantity], ts_ms, CONTROLLED_ROOM)
