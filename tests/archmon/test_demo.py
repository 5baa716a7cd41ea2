"""``archmon demo --http 127.0.0.1:PORT`` as a separate process from an empty data directory: the address and a
one-time password come first, the login page answers within the issue's 60 s, the dashboard shows 30 days
of history after logging in, every simulated sensor (MQTT and serial) reaches SQLite live, logs go to the
log file, and ``archmon status`` and ``archmon export`` (run as separate commands) see it all. In the
controlled basement store the keeper ends the filter change's override 10 s into the live part and the loop
switches the dehumidifier on through the simulated Tasmota plug: the room page shows it running under
automatic control, the audit log has the override's end and the confirmed command, ``archmon control
status`` says ``on``, and the history holds a month of its switches."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.dashboards.site import login
from tests.fixtures.mosquitto import free_port
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SENSORS = {"paper-th", "paper-door", "paper-smoke", "paper-leak", "film-th", "film-door", "reading-th", "annex-th"}
LOGIN_BOUND_S = 60.0  # the bound: a login page within 60 s of starting the demo
DAY_MS = 86_400_000
FIRST_LINE = re.compile(r"archmon demo: dashboard (http://127\.0\.0\.1:\d+)/ — log in as admin with the one-time "
                        r"password (\S+)")


def archmon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archmon", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)


class Demo:
    """``archmon demo`` running as a child process, its output collected line by line."""

    def __init__(self, *args: str) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "archmon", "demo", *args], cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout: float) -> tuple[int, str]:
        code = self.process.wait(timeout)
        self._reader.join(10)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()

    def kill(self) -> None:
        """Kill it if it still runs; close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _span_ms(series: dict) -> int:
    """From the first to the last slot with a value, over every sensor of the chart."""
    filled = [x for i, x in enumerate(series["x"]) if any(s["mean"][i] is not None for s in series["series"])]
    return int((filled[-1] - filled[0]) * 1000)  # the API gives seconds, as uPlot takes them


def _live_sensors(db: Path, since_ms: int) -> set[str]:
    """Sensors with a reading stored at or after ``since_ms``."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute("SELECT DISTINCT s.sensor FROM readings r JOIN series s ON s.id = r.series_id "
                            "WHERE r.ts >= ?", (since_ms,)).fetchall()
    return {str(row[0]) for row in rows}


def test_demo_serves_its_history_at_once_and_goes_live(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    port = free_port()
    demo = Demo("--duration", "300", "--data-dir", str(data), "--http", f"127.0.0.1:{port}")  # SIGTERM ends it
    try:
        wait_for(lambda: bool(demo.lines), "the first line", timeout=LOGIN_BOUND_S)
        found = FIRST_LINE.fullmatch(demo.lines[0])
        assert found, demo.lines[:3]
        url, password = found[1], found[2]
        assert url == f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/login"), "the login page", timeout=LOGIN_BOUND_S - (time.monotonic()
                                                                                             - demo.started))
        print(f"login page after {time.monotonic() - demo.started:.1f} s")
        with httpx.Client(base_url=url, timeout=20) as client:
            assert login(client, "admin", password).status_code == 303
            for quantity in ("temperature", "humidity"):
                series = client.get("/api/rooms/paper/series", params={"range": "30d", "quantity": quantity})
                assert series.status_code == 200 and series.json()["resolution"] == "hour"
                assert _span_ms(series.json()) >= 29 * DAY_MS, quantity
            page = client.get("/rooms/film", params={"range": "30d"})
            assert page.status_code == 200 and "胶片母片库" in page.text
            history = client.get("/api/alerts", params={"state": "history"}).json()
            assert history["total"] >= 10  # a month of alerts, judged at their own times
            assert len(client.get("/api/access").json()) >= 20  # and of access sessions
            wait_for(lambda: _device_running(client), "the basement store's dehumidifier shown running", timeout=40)
        wait_for(lambda: any(line.startswith("live from ") for line in demo.lines), "the live part")
        live_ms = int(time.time() * 1000)  # the history ended before it was announced: later readings are live
        wait_for(lambda: _live_sensors(data / "archmon.db", live_ms) == SENSORS, "every sensor stored live", 120)
        demo.process.send_signal(signal.SIGTERM)  # the live part ends as at the end of --duration
        code, stderr = demo.wait(120)
    finally:
        demo.kill()
    assert code == 0, stderr[-3000:]
    out = demo.lines
    assert any(re.match(r"history: [\d,]+ readings of 8 sensors over 30 days stored", line) for line in out), out
    assert any(line.startswith("live from ") for line in out)
    assert any(re.match(r"^\[\d\d:\d\d:\d\d\+08:00\] stored \d+", line) for line in out), out[-5:]
    assert not [line for line in out if re.search(r" (INFO|WARNING|ERROR) [\w.]+: ", line)]  # logs go to the file
    log = (data / "archmon-demo.log").read_text(encoding="utf-8")
    assert "log times are in Asia/Shanghai (UTC+08:00)" in log.splitlines()[0]
    assert f"dashboard on http://127.0.0.1:{port}" in log
    assert str(data / "archmon-demo.log") in out[1] and str(data / "archmon.db") in out[1]
    _check_with_other_commands(data, password)
    _check_the_dehumidifier(data)


def _device_running(client: httpx.Client) -> bool:
    page = client.get("/rooms/annex", params={"range": "24h"}).text
    found = re.search(r'<li id="device-annex-dehum">(.*?)</li>', page, re.DOTALL)
    return bool(found) and '<span class="device-state on">运行</span>' in found[1] and "自动控制" in found[1]


def _check_the_dehumidifier(data: Path) -> None:
    conn = sqlite3.connect(data / "archmon.db")
    try:
        rows = [(ts, actor, json.loads(payload)) for ts, actor, payload in conn.execute(
            "SELECT ts_ms, actor, payload FROM audit_log WHERE kind = 'control' AND subject = 'actuator:annex-dehum' "
            "ORDER BY seq")]
        switches = conn.execute("SELECT count(*), sum(state) FROM control_switches WHERE how = 'command'").fetchone()
    finally:
        conn.close()
    events = [(p["event"], p.get("state"), p.get("reason"), actor) for _, actor, p in rows]
    end = max(i for i, e in enumerate(events) if e[0] == "override_end")
    assert events[end][3] == "张伟"  # the keeper ended the filter change's override...
    assert ("readback", "off", None, "device") in events[:end]  # (the live service read the plug back first)
    assert events[end + 1:end + 3] == [("command", "on", "demand", "system"), ("confirmed", "on", "demand", "system")]
    assert rows[end + 2][0] - rows[end][0] < 15_000  # ...and the loop switched it on at its next ticks
    assert switches[0] >= 100 and switches[1] >= 50  # a month of automatic switching in the history
    status = archmon("control", "status", "--config", str(data / "archmon.toml"), "--format", "json")
    assert status.returncode == 0, status.stderr
    (device,) = json.loads(status.stdout)
    assert device["device"] == "annex-dehum" and device["state"] == "on" and device["override"] is None


def _check_with_other_commands(data: Path, password: str) -> None:
    from dashboards.web import UserStore

    users = UserStore(data / "archmon.db")
    try:
        assert users.verify("admin", password) is not None and users.verify("admin", "admin") is None
    finally:
        users.close()
    config = str(data / "archmon.toml")
    status = archmon("status", "--config", config, "--format", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    by_sensor = {s["sensor"]: s for s in report["sensors"]}
    assert set(by_sensor) == SENSORS
    for sensor in SENSORS:
        assert by_sensor[sensor]["state"] == "ok", by_sensor[sensor]
    assert 10 < by_sensor["film-th"]["values"]["temperature"] < 20  # Modbus RTU, Renke preset
    assert 15 < by_sensor["reading-th"]["values"]["temperature"] < 30  # ASCII line sensor
    assert 40 <= by_sensor["paper-th"]["values"]["humidity"] <= 65  # Zigbee2MQTT
    assert report["counters"].get("quarantined", 0) == 0
    sources = {s["source"]: s for s in report["sources"]}
    assert all(sources[name]["counters"].get(key, 0) > 0 for name, key in
               (("demo-broker", "received"), ("rs485", "delivered"), ("logger", "delivered")))  # live, every kind

    text = archmon("status", "--config", config)
    assert "times in Asia/Shanghai (UTC+08:00)" in text.stdout
    assert re.search(r"^paper-door +paper +ok +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00 ", text.stdout, re.MULTILINE)

    export = archmon("export", "--config", config, "--from", "2000-01-01", "--to", "2100-01-01", "--format", "csv")
    assert export.returncode == 0, export.stderr
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    assert rows and list(rows[0]) == ["ts", "site", "room", "sensor", "quantity", "value"]
    assert {r["sensor"] for r in rows} == SENSORS
    assert {r["room"] for r in rows} == {"paper", "film", "reading", "annex"}
    assert any(r["sensor"] == "paper-door" and float(r["value"]) == 1.0 for r in rows)


def test_a_second_demo_starts_a_fresh_site_and_keeps_the_previous_one(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    for _ in range(2):
        demo = Demo("--duration", "1", "--data-dir", str(data), "--http", "off")
        try:
            code, stderr = demo.wait(120)
        finally:
            demo.kill()
        assert code == 0, stderr[-3000:]
    assert "the previous demo's data is in" in demo.lines[1]
    assert (data / "previous" / "archmon.db").is_file() and (data / "archmon.db").is_file()
    foreign = tmp_path / "site"
    foreign.mkdir()
    (foreign / "archmon.db").write_bytes(b"")
    run = archmon("demo", "--duration", "1", "--data-dir", str(foreign), "--http", "off")
    assert run.returncode == 2 and "did not make" in run.stderr
    assert (foreign / "archmon.db").exists() and not (foreign / "previous").exists()

