"""Small sites for in-process Service tests: a line source on a port that does not exist (nothing is read
from it: tests hand readings to the service's own submit path) and a few sensors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from archmon.domain import Reading
from collector.records import Batch

LINE_PATTERN = "(?P<sensor>\\w+) T=(?P<temperature>[\\d.]+)"


def line_site(tmp_path: Path, *, temperature: int = 5, smoke: int = 1, stop_timeout_s: float = 30,
              high: float | None = None, extra: str = "") -> Path:
    """Write ``archmon.toml`` (sensors ``t0``.. of temperature, ``smoke0``.. of smoke) and return its path.

    No sensor has a calibration on record: the site-wide "no calibration record" warning is off (the tests
    count alerts); ``extra`` may not set ``[alerts.calibration]``.
    """
    path = tmp_path / "archmon.toml"
    band = f"overrides = {{ temperature = {{ high = {high}, delay_s = 0, clear_delay_s = 0 }} }}\n" if high else ""
    path.write_text(
        f'[site]\nname = "t"\n[service]\nstop_timeout_s = {stop_timeout_s}\n[storage]\nsqlite_path = "a.db"\n'
        f'[http]\nenabled = false\n[[rooms]]\nid = "paper"\n{band}'
        f'[[serial]]\nid = "bus"\ndevice = "{tmp_path / "no-port"}"\nprotocol = "line"\n'
        f"line_pattern = '{LINE_PATTERN}'\n"
        + "".join(f'[[sensors]]\nid = "t{i}"\nroom = "paper"\nsource = "bus"\n' for i in range(temperature))
        + "".join(f'[[sensors]]\nid = "smoke{i}"\nroom = "paper"\nsource = "bus"\nkind = "smoke"\n'
                  for i in range(smoke))
        + "[alerts.calibration]\nuncalibrated = false\n" + extra, encoding="utf-8")
    return path


def batch(*readings: Reading) -> Batch:
    out = Batch()
    out.readings.extend(readings)
    return out


def alerts(db: Path) -> list[tuple[str, str, str]]:
    """(rule, sensor, state) of every alert."""
    with sqlite3.connect(db) as conn:
        return [tuple(row) for row in conn.execute("SELECT rule, sensor, state FROM alert_alerts ORDER BY id")]


def service_audit(db: Path) -> list[dict[str, object]]:
    """The service's own audit entries (reloads and refusals), oldest first."""
    import json

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM audit_log WHERE kind = 'config' AND subject = 'service' ORDER BY seq")
        return [json.loads(row[0]) for row in rows]
