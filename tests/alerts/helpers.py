"""Small builders shared by the alert tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archmon.config import Config, parse_config

SHANGHAI_NOON = 1_709_524_800_000  # 2024-03-04T12:00:00+08:00 (a Monday)


def site_config(tmp_path: Path, *, alerts: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
                profile: str = "paper", sensors: tuple[str, ...] = ("T1", "S1", "D1"),
                timezone: str = "Asia/Shanghai") -> Config:
    """A one-room configuration with an MQTT source and the given sensors (all of the default kind).

    None of them has a calibration on record: the site-wide "no calibration record" warning of an attached
    calibration-due rule is off unless ``alerts`` sets ``calibration`` (tests of other rules count alerts).
    """
    data = {
        "site": {"name": "test", "timezone": timezone},
        "storage": {"sqlite_path": str(tmp_path / "archmon.db")},
        "rooms": [{"id": "A1", "name_zh": "一号库房", "profile": profile, "overrides": overrides or {}}],
        "mqtt": [{"id": "broker"}],
        "sensors": [
            {"id": s, "room": "A1", "source": "broker", "topic": f"zigbee2mqtt/{s}", "format": "zigbee2mqtt",
             "expected_interval_s": 60}
            for s in sensors
        ],
        "alerts": {"calibration": {"uncalibrated": False}, **(alerts or {})},
    }
    return parse_config(data)


def write_config_toml(tmp_path: Path) -> Path:
    """A real archmon.toml on disk (for the CLI)."""
    path = tmp_path / "archmon.toml"
    path.write_text(
        f"""
[site]
timezone = "Asia/Shanghai"
[storage]
sqlite_path = "{tmp_path / 'archmon.db'}"
[[rooms]]
id = "A1"
profile = "paper"
[[mqtt]]
id = "broker"
[[sensors]]
id = "T1"
room = "A1"
source = "broker"
topic = "zigbee2mqtt/T1"
format = "zigbee2mqtt"
""",
        encoding="utf-8",
    )
    return path
