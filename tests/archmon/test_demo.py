"""``archmon demo --duration 30``: every simulated sensor (MQTT and serial) reaches SQLite,
visible through ``archmon status`` and ``archmon export`` run as separate commands."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SENSORS = {"paper-th", "paper-door", "paper-smoke", "film-th", "film-door", "reading-th"}


def archmon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archmon", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)


def test_demo_stores_readings_from_every_simulated_sensor(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    run = archmon("demo", "--duration", "30", "--data-dir", str(data), "--http", "127.0.0.1:0")
    assert run.returncode == 0, run.stderr[-3000:]
    assert str(data / "archmon.db") in run.stdout
    # first of all, where the dashboard is and a one-time administrator password that works
    first = run.stdout.splitlines()[0]
    found = re.fullmatch(r"archmon demo: dashboard (http://127\.0\.0\.1:\d+)/ — log in as admin with the one-time "
                         r"password (\S+)", first)
    assert found, first
    assert f"dashboard on {found[1]}" in run.stderr
    from dashboards.web import UserStore

    users = UserStore(data / "archmon.db")
    try:
        assert users.verify("admin", found[2]) is not None and users.verify("admin", "admin") is None
    finally:
        users.close()
    config = str(data / "archmon.toml")

    status = archmon("status", "--config", config, "--format", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    by_sensor = {s["sensor"]: s for s in report["sensors"]}
    assert set(by_sensor) == SENSORS
    for sensor in SENSORS:
        assert by_sensor[sensor]["last_seen"] is not None, sensor
        assert by_sensor[sensor]["state"] == "ok", by_sensor[sensor]
    assert 10 < by_sensor["film-th"]["values"]["temperature"] < 20  # Modbus RTU, Renke preset
    assert 15 < by_sensor["reading-th"]["values"]["temperature"] < 30  # ASCII line sensor
    assert 40 <= by_sensor["paper-th"]["values"]["humidity"] <= 65  # Zigbee2MQTT
    assert report["counters"].get("quarantined", 0) == 0
    assert report["counters"]["stored"] > 6 * 10

    text = archmon("status", "--config", config)
    assert "paper-door" in text.stdout and "counters received" in text.stdout
    assert "times in Asia/Shanghai (UTC+08:00)" in text.stdout
    assert re.search(r"^paper-door +paper +ok +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00 ", text.stdout, re.MULTILINE)
    # the demo's own lines show the site's time with its offset, its log names the zone first
    assert re.search(r"^\[\d\d:\d\d:\d\d\+08:00\] stored \d+", run.stdout, re.MULTILINE), run.stdout[-2000:]
    assert "log times are in Asia/Shanghai (UTC+08:00)" in run.stderr.splitlines()[0]

    export = archmon("export", "--config", config, "--from", "2000-01-01", "--to", "2100-01-01", "--format", "csv")
    assert export.returncode == 0, export.stderr
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    assert rows and list(rows[0]) == ["ts", "site", "room", "sensor", "quantity", "value"]
    assert {r["sensor"] for r in rows} == SENSORS
    assert {(r["sensor"], r["quantity"]) for r in rows} >= {
        ("paper-th", "temperature"), ("paper-th", "humidity"), ("paper-door", "door"), ("paper-smoke", "smoke"),
        ("film-th", "temperature"), ("film-th", "humidity"), ("film-door", "door"),
        ("reading-th", "temperature"), ("reading-th", "humidity")}
    assert {r["room"] for r in rows} == {"paper", "film", "reading"}
    # The scripted opening of the paper-store door shows up as a door reading of 1.
    assert any(r["sensor"] == "paper-door" and float(r["value"]) == 1.0 for r in rows)
