"""A real site for the dashboard tests: config file on disk, SQLite file filled through the real store,
the real alert engine (its access register attached by ``build_app``, as for the live service), the event
hub, and the app served by uvicorn on a free loopback port."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from alerts.access import AccessRegister
from alerts.service import AlertService
from archmon.config import load_config
from archmon.domain import Reading
from archmon.hub import EventHub
from archmon.timeutil import now_ms
from collector.records import Batch, UnassignedRecord
from collector.store import SqliteStore
from dashboards.web import WebServer, build_app
from dashboards.web.ratelimit import LoginLimiter

CONFIG = """
[site]
name = "测试档案馆"
timezone = "Asia/Shanghai"
language = "zh"

[storage]
sqlite_path = "archmon.db"

[[rooms]]
id = "A1"
name_zh = "一号库房"
name_en = "Store 1"
profile = "paper"

[[rooms]]
id = "A2"
name_zh = "胶片母片库"
name_en = "Film masters"
profile = "film_master"

[[rooms]]
id = "B1"
name_zh = "特藏库"
name_en = "Special collections"
profile = "special"

[[mqtt]]
id = "broker"
host = "127.0.0.1"
port = 1

{sensors}
"""

SENSORS = [("T1", "A1", "temperature_humidity"), ("D1", "A1", "door"), ("S1", "A1", "smoke"),
           ("L1", "A1", "leak"), ("T2", "A2", "temperature_humidity"), ("D2", "A2", "door"),
           ("T3", "B1", "temperature_humidity")]
PASSWORDS = {"admin": "admin-password-1", "oper": "operator-password-1", "viewer": "viewer-password-1"}
MINUTE = 60_000
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""Real argon2id with the default salt and hash lengths, at 1 MiB and one pass instead of 64 MiB, three passes and
four lanes: every Site hashes six passwords and every login verifies one; at the default cost that work was a
large share of the dashboard tests' time and proves nothing more about the dashboard (the service's own
``UserStore`` keeps the default, as ``archmon run`` and ``archmon demo`` in other tests show)."""
CALIBRATED_ON = (dt.date.today() - dt.timedelta(days=60)).isoformat()
"""The T/H sensors' configured calibration: recent, so no calibration-due warning joins the tests' alerts."""


def sensor_tables(sensors: list[tuple[str, str, str]] = SENSORS) -> str:
    return "\n".join(
        f'[[sensors]]\nid = "{sid}"\nroom = "{room}"\nkind = "{kind}"\nsource = "broker"\n'
        f'topic = "zigbee2mqtt/{sid}"\nformat = "zigbee2mqtt"\nexpected_interval_s = 60\n'
        + (f'[sensors.calibration.temperature]\noffset = 0.1\ncalibrated_on = "{CALIBRATED_ON}"\n'
           if kind.startswith("temp") else "")
        for sid, room, kind in sensors)


class Client(httpx.Client):
    """An httpx client that may be used in ``with`` after it has logged in."""

    def __enter__(self) -> Client:
        return self


class Site:
    """Everything running; ``close()`` stops it."""

    def __init__(self, tmp_path: Path, *, config_text: str | None = None, limiter: LoginLimiter | None = None,
                 trusted_proxies: list[str] | None = None, reload_alerts: bool = False) -> None:
        self.dir = tmp_path
        self.config_path = tmp_path / "archmon.toml"
        self.config_path.write_text(config_text or CONFIG.replace("{sensors}", sensor_tables()), encoding="utf-8")
        self.config = load_config(self.config_path)
        self.db = self.config.resolve(self.config.storage.sqlite_path)
        self.store = SqliteStore(self.db, tz=self.config.site.tz)
        self.hub = EventHub()
        self.alerts = AlertService(self.config, self.db, hub=self.hub)
        self.register = AccessRegister(self.db, hub=self.hub)  # as the dashboard's own: live cards follow
        self.reloads: list[object] = []

        def reload(config: object) -> None:  # what the service's reload callback does, recorded
            self.reloads.append(config)
            if reload_alerts:
                self.alerts.reload(config)  # type: ignore[arg-type]

        self.app = build_app(self.config, hub=self.hub, db_path=self.db, alerts=self.alerts, reload=reload,
                             limiter=limiter, hasher=TEST_HASHER)
        self.ctx = self.app.state.ctx
        for name, password in PASSWORDS.items():
            role = {"oper": "operator"}.get(name, name)
            self.ctx.users.add(name, role, password, by="test")
        self.server = WebServer(self.app, "127.0.0.1", 0, trusted_proxies=trusted_proxies or [])
        self.server.start()
        self.url = self.server.url

    def store_readings(self, readings: list[Reading]) -> None:
        """Store through the real store, judge with the real engine, then tell the hub (as the service does)."""
        stored = self.store.write_many([Batch(readings=list(readings))])[0].stored
        self.alerts.on_readings(stored)
        self.hub.publish("readings", stored)

    def store_unassigned(self, topic: str, payload: bytes = b'{"temperature": 21.5}') -> None:
        batch = Batch(unassigned=[UnassignedRecord(now_ms(), "broker", topic, "zigbee2mqtt", payload,
                                                   '[{"quantity": "temperature", "value": 21.5}]')])
        self.store.write_many([batch])

    def history(self, hours: float = 24, step_min: int = 10, *, end_ms: int | None = None) -> None:
        """Plausible climate for every T/H sensor (A1 drifting above its band at the end)."""
        import math

        end = now_ms() if end_ms is None else end_ms
        steps = int(hours * 60 / step_min)
        rows: list[Reading] = []
        for i in range(steps, -1, -1):
            ts = end - i * step_min * MINUTE
            phase = 2 * math.pi * (i * step_min / 1440)
            rows += [Reading("T1", "temperature", round(20 + 0.7 * math.sin(phase), 2), ts, "A1"),
                     Reading("T1", "humidity", round(52 + 2 * math.cos(phase), 2), ts, "A1"),
                     Reading("T2", "temperature", round(14 + 0.3 * math.sin(phase), 2), ts, "A2"),
                     Reading("T2", "humidity", round(40 + 1.5 * math.sin(phase), 2), ts, "A2"),
                     Reading("T3", "temperature", round(17 + 0.6 * math.cos(phase), 2), ts, "B1"),
                     Reading("T3", "humidity", round(50 + 1.0 * math.sin(phase), 2), ts, "B1")]
        for sid, room in (("D1", "A1"), ("S1", "A1"), ("L1", "A1"), ("D2", "A2")):
            rows.append(Reading(sid, "door" if sid.startswith("D") else {"S": "smoke", "L": "leak"}[sid[0]], 0.0,
                                end - MINUTE, room))
        self.store.write_many([Batch(readings=rows)])

    def client(self, user: str | None = None) -> Client:
        """An HTTP client, logged in as ``user`` (None: anonymous)."""
        client = Client(base_url=self.url, follow_redirects=False, timeout=30)
        if user is not None:
            login(client, user, PASSWORDS[user])
        return client

    def close(self) -> None:
        self.server.stop()
        self.alerts.stop()
        self.register.close()
        self.store.close()
        self.ctx.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post("/login", data={"name": name, "password": password, "csrf": csrf_of(page.text), "next": "/"})
