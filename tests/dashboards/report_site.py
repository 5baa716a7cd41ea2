"""A realistic archive site over one month (March 2025, Asia/Shanghai) for the printed report's and the
register's tests (the committed samples come from the demo's month: ``scripts/report_samples.py``):
readings every 5 minutes written through ``SqliteStore.write``, alerts with acknowledgements and measures,
doors, access sessions, calibrations.

What happens in it (tests rely on these facts):
- 一号库 A1 (paper, two sensors): a calm daily cycle around 19.5 ℃ / 52 %RH; on 12 March 14:00–17:30 the air
  conditioning fails on ``a1-east`` (up to 25.6 ℃, 63 %RH): a band alert acknowledged by 王五 with the
  measure taken; a door opened after hours on 15 March 21:10 (an unregistered-entry alert).
- 二号库 A2 (special collections, one sensor ``a2-th``): humid spell 22–24 March over 55 %RH (dehumidifier
  comment); the sensor is silent on 20 March 06:00–15:00 (battery), so both duty readings of that day are
  missing and must stay empty; its calibration ran out in February (overdue).
- 室外 OUT: an outdoor sensor (``[reports] outdoor_room``), colder and more humid.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.access import AccessRegister
from alerts.model import Condition
from alerts.store import AlertStore
from archmon.config import Config
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from tests.dashboards.site_config import Calibration, room_toml, sensor_toml, write_site_config

__all__ = ["FIRST_DAY", "GAP", "LAST_DAY", "MONTH", "TZ", "at", "build_site", "write_config"]

TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2025-03"
FIRST_DAY, LAST_DAY = dt.date(2025, 3, 1), dt.date(2025, 3, 31)
STEP_MS = 300_000
GAP = (dt.datetime(2025, 3, 20, 6, 0, tzinfo=TZ), dt.datetime(2025, 3, 20, 15, 0, tzinfo=TZ))


def at(day: int, hh: int, mm: int = 0) -> int:
    """UTC ms of a local time on ``day`` of March 2025."""
    return round(dt.datetime(2025, 3, day, hh, mm, tzinfo=TZ).timestamp() * 1000)


def write_config(folder: Path, *, language: str = "zh", schedule: str = "enabled = false", extra: str = "") -> Config:
    """The site's config file (and nothing else) in ``folder``.

    Args:
        language: the site's language.
        schedule: the body of ``[reports.schedule]``.
        extra: TOML appended (a ``[notify]`` table...).
    """
    return write_site_config(
        folder, name="示范市委组织部档案室", timezone="Asia/Shanghai", language=language, sqlite_path="archmon.db",
        reports=f'prepared_by = "张三"\nreviewed_by = "李四"\noutdoor_room = "OUT"\n[reports.schedule]\n{schedule}',
        rooms=[room_toml("A1", name_zh="一号库", name_en="Store 1", profile="paper"),
               room_toml("A2", name_zh="二号库（特藏）", name_en="Store 2 (special collections)", profile="special"),
               room_toml("OUT", name_zh="室外", name_en="Outdoors", profile="custom",
                         overrides="{ temperature = { low = -40, high = 60 }, humidity = { low = 0, high = 100 } }")],
        sensors=[sensor_toml("a1-east", "A1", name="东墙温湿度",
                             calibrations=_calibrated("2024-06-15", "JL2024-0611", "JL2024-0612")),
                 sensor_toml("a1-west", "A1", name="西墙温湿度",
                             calibrations=_calibrated("2024-09-02", "JL2024-0907", "JL2024-0908")),
                 sensor_toml("a2-th", "A2", name="特藏库温湿度",
                             calibrations=[Calibration("temperature", "2024-02-20", "JL2024-0215")]),
                 sensor_toml("out-th", "OUT", name="室外百叶箱"),
                 sensor_toml("a1-door", "A1", kind="door")],
        extra=extra)


def _calibrated(on: str, temperature: str, humidity: str) -> list[Calibration]:
    """Both quantities calibrated on the same day, with their certificates."""
    return [Calibration("temperature", on, temperature), Calibration("humidity", on, humidity)]


def _climate(sensor: str, ts: int, rng: random.Random) -> tuple[float, float]:
    local = dt.datetime.fromtimestamp(ts / 1000, TZ)
    hour = local.hour + local.minute / 60
    day = local.day + hour / 24
    daily = math.sin((hour - 9) / 24 * 2 * math.pi)
    if sensor == "out-th":
        return 11 + 0.15 * day + 4.5 * daily + rng.gauss(0, 0.3), 72 - 14 * daily + rng.gauss(0, 1.5)
    base_t = {"a1-east": 19.6, "a1-west": 19.2, "a2-th": 17.4}[sensor]
    base_rh = {"a1-east": 52.0, "a1-west": 51.0, "a2-th": 50.0}[sensor]
    t = base_t + 0.45 * daily + 0.3 * math.sin(day / 5) + rng.gauss(0, 0.06)
    rh = base_rh - 1.2 * daily + 1.5 * math.sin(day / 4) + rng.gauss(0, 0.25)
    if sensor == "a1-east" and at(12, 14) <= ts < at(12, 17, 30):  # the air conditioning fails
        rise = min(1.0, (ts - at(12, 14)) / 5_400_000)
        t, rh = t + 6.0 * rise, rh + 11.0 * rise
    if sensor == "a2-th" and at(22, 2) <= ts < at(24, 20):  # a humid spell
        rh += 6.5 * math.sin((ts - at(22, 2)) / (at(24, 20) - at(22, 2)) * math.pi)
    return round(t, 2), round(rh, 1)


def _readings() -> list[Reading]:
    rng = random.Random(2025)
    rooms = {"a1-east": "A1", "a1-west": "A1", "a2-th": "A2", "out-th": "OUT"}
    gap = (round(GAP[0].timestamp() * 1000), round(GAP[1].timestamp() * 1000))
    out = []
    for ts in range(at(1, 0), at(31, 0) + 86_400_000, STEP_MS):
        for sensor, room in rooms.items():
            if sensor == "a2-th" and gap[0] <= ts < gap[1]:
                continue
            t, rh = _climate(sensor, ts + 7_000, rng)
            out.append(Reading(sensor, "temperature", t, ts + 7_000, room))
            out.append(Reading(sensor, "humidity", rh, ts + 7_000, room))
    for day in range(1, 32):  # the door: closed reports every hour, opened for the day's work
        for hh in range(24):
            out.append(Reading("a1-door", "door", 0.0, at(day, hh, 1), "A1"))
        if dt.date(2025, 3, day).weekday() < 5 and day % 3 == 0:
            out.append(Reading("a1-door", "door", 1.0, at(day, 9, 40), "A1"))
            out.append(Reading("a1-door", "door", 0.0, at(day, 10, 5), "A1"))
    out.append(Reading("a1-door", "door", 1.0, at(15, 21, 10), "A1"))
    out.append(Reading("a1-door", "door", 0.0, at(15, 21, 16), "A1"))
    return out


def _alerts(db: Path) -> None:
    store = AlertStore(db)
    try:
        band = Condition("band", "a1-east/temperature/high", "A1", "a1-east", "temperature", True, at(12, 14, 40),
                         24.6, 24.0)
        alert = store.create_alert(band, at(12, 14, 40), "active", ("温度高于上限", "temperature above the band"))
        store.set_state(alert.alert, "acknowledged", at(12, 14, 52), by="王五", note="已到现场")
        store.add_comment(alert.alert, at(12, 14, 52), "王五", "空调压缩机故障，已启用备用机组并通知维修")
        store.set_state(alert.alert, "cleared", at(12, 18, 10))
        store.set_state(alert.alert, "closed", at(12, 18, 10))
        rh = Condition("band", "a1-east/humidity/high", "A1", "a1-east", "humidity", True, at(12, 15, 30), 61.2, 60.0)
        alert = store.create_alert(rh, at(12, 15, 30), "active", ("湿度高于上限", "humidity above the band"))
        store.set_state(alert.alert, "acknowledged", at(12, 15, 41), by="王五")
        store.add_comment(alert.alert, at(12, 15, 41), "王五", "同上，开启除湿机")
        store.set_state(alert.alert, "cleared", at(12, 18, 40))
        store.set_state(alert.alert, "closed", at(12, 18, 40))
        entry = Condition("unregistered_entry", "A1", "A1", "a1-door", "door", True, at(15, 21, 10), 1.0,
                          severity="critical")
        alert = store.create_alert(entry, at(15, 21, 10), "active", ("未登记进入", "unregistered entry"))
        store.set_state(alert.alert, "acknowledged", at(15, 21, 25), by="赵六")
        store.add_comment(alert.alert, at(15, 21, 25), "赵六", "值班员巡查关窗，未登记，已补登记并报告")
        store.set_state(alert.alert, "closed", at(16, 8, 30))
        humid = Condition("band", "a2-th/humidity/high", "A2", "a2-th", "humidity", True, at(22, 16), 56.1, 55.0)
        alert = store.create_alert(humid, at(22, 16), "active", ("湿度高于上限", "humidity above the band"))
        store.set_state(alert.alert, "acknowledged", at(22, 16, 20), by="李四")
        store.add_comment(alert.alert, at(22, 16, 20), "李四", "连续阴雨，已开启除湿机并关闭通风口")
        store.set_state(alert.alert, "cleared", at(24, 19))
        store.set_state(alert.alert, "closed", at(24, 19))
        stale = Condition("stale", "a2-th", "A2", "a2-th", None, True, at(20, 6, 30), severity="minor")
        alert = store.create_alert(stale, at(20, 6, 30), "active", ("传感器离线", "sensor offline"))
        store.set_state(alert.alert, "acknowledged", at(20, 14, 50), by="李四")
        store.add_comment(alert.alert, at(20, 14, 50), "李四", "更换传感器电池")
        store.set_state(alert.alert, "cleared", at(20, 15, 5))
        store.set_state(alert.alert, "closed", at(20, 15, 5))
    finally:
        store.close()
    register = AccessRegister(db)
    try:
        for day in (3, 6, 12, 18, 27):
            session = register.open_session("A1", ["张三", "李四"], "查阅干部档案", f"SP-2025-{day:03d}", "张三",
                                            ts_ms=at(day, 9, 35))
            register.close_session(session.id, "张三", ts_ms=at(day, 10, 10))
    finally:
        register.close()


def build_site(folder: Path, *, language: str = "zh", schedule: str = "enabled = false", extra: str = "") -> Config:
    """The config and the database of the site, in ``folder`` (see the module docstring; arguments as
    :func:`write_config`)."""
    config = write_config(folder, language=language, schedule=schedule, extra=extra)
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=TZ)
    try:
        readings = _readings()
        for start in range(0, len(readings), 5000):
            store.write(Batch(readings=readings[start:start + 5000]))
    finally:
        store.close()
    _alerts(db)
    return config
