"""``archmon quarantine``: rejected payloads escaped, unassigned devices as rows, JSON, site-local times."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from archmon.cli import main
from archmon.config import load_config
from collector.pipeline import Pipeline
from collector.records import Batch, QuarantineRecord
from collector.store import SqliteStore
from dashboards.quarantine import printable, quarantine_data

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z = 2025-11-25T00:00:00+08:00
EVIL = b"\x1b[2J\x1b[31mPWNED\r\n- fake row\x07\xff\xe2\x80\xae{}"  # clear screen, colour, fake line, RTL override


def make_site(tmp_path: Path) -> Path:
    config = tmp_path / "archmon.toml"
    config.write_text(
        '[site]\nname = "t"\ntimezone = "Asia/Shanghai"\n[storage]\nsqlite_path = "a.db"\n[[rooms]]\nid = "paper"\n'
        '[[mqtt]]\nid = "b"\n[[mqtt.subscriptions]]\nfilter = "zigbee2mqtt/#"\nformat = "zigbee2mqtt"\n'
        '[[sensors]]\nid = "th1"\nroom = "paper"\nsource = "b"\ntopic = "zigbee2mqtt/th1"\nformat = "zigbee2mqtt"\n',
        encoding="utf-8",
    )
    site = load_config(config)
    store = SqliteStore(tmp_path / "a.db", tz=site.site.tz)
    try:
        pipeline = Pipeline(site, store.write)  # type: ignore[arg-type]
        from archmon.domain import RawMessage

        batch = pipeline.handle_many([
            RawMessage("b", "zigbee2mqtt/th1", EVIL, NOW),
            RawMessage("b", "zigbee2mqtt/new\x1b[1m", b'{"temperature": 18.5, "humidity": 180}', NOW),
        ])
        batch.quarantine.append(QuarantineRecord(NOW + 1, "b", "t/big", b"x" * 300, "too big", "decode"))
        store.write(batch)
        store.write(Batch())
    finally:
        store.close()
    return config


def test_every_control_character_is_escaped() -> None:
    assert printable("a\x1bb\r\n\x7f\x85\u202e\u2028\\") == "a\\x1bb\\x0d\\x0a\\x7f\\x85\\u202e\\u2028\\\\"
    assert printable("温度 21.5 °C") == "温度 21.5 °C"


def test_text_listing_is_safe_and_shows_unassigned_devices_as_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_site(tmp_path)
    assert main(["quarantine", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert all(ch in "\n" or ch.isprintable() for ch in out), repr(out)
    assert "\\x1b[2J\\x1b[31mPWNED\\x0d\\x0a- fake row\\x07\\xff\\u202e{}" in out
    assert "2025-11-25T00:00:00.000+08:00" in out  # the site's zone, with its offset
    assert "… (300 bytes, sha256" in out
    row = next(line for line in out.splitlines() if "zigbee2mqtt/new" in line)
    assert "zigbee2mqtt/new\\x1b[1m" in row and "temperature 18.5 °C" in row
    assert "rejected: humidity 180.0 (humidity: 180 %RH is outside the physical range 0..100)" in row


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_site(tmp_path)
    assert main(["quarantine", "--config", str(config), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == quarantine_data(load_config(config))
    evil = next(q for q in data["quarantine"] if q["topic"] == "zigbee2mqtt/th1")
    assert base64.b64decode(evil["payload_base64"]) == EVIL and evil["payload_size"] == len(EVIL)
    assert evil["received"] == "2025-11-25T00:00:00.000+08:00" and evil["stage"] == "decode"
    (device,) = data["unassigned"]
    assert device["readings"] == [{"quantity": "temperature", "value": 18.5, "unit": "°C", "ts_ms": None}]
    assert device["rejected"][0]["quantity"] == "humidity" and device["messages"] == 1


def test_a_database_of_the_previous_version_with_nan_tokens_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Earlier versions wrote ``NaN``/``Infinity`` into ``last_readings_json``; ``--format json`` must stay JSON."""
    import sqlite3

    config = make_site(tmp_path)
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute(
            "INSERT INTO unassigned VALUES ('b', 'zigbee2mqtt/old', 'zigbee2mqtt', ?, ?, 3, x'7b7d', ?)",
            (NOW - 5000, NOW - 1000, '[{"quantity": "temperature", "value": NaN, "unit": "°C", "ts_ms": null},'
                                      ' {"quantity": "humidity", "value": Infinity, "unit": "%"}]'))
    assert main(["quarantine", "--config", str(config), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda token: pytest.fail(f"{token} in the JSON"))
    old = next(d for d in data["unassigned"] if d["device_topic"] == "zigbee2mqtt/old")
    assert [(r["quantity"], r["value"]) for r in old["readings"]] == [("temperature", "nan"), ("humidity", "inf")]
    assert main(["quarantine", "--config", str(config)]) == 0
    assert "temperature nan °C, humidity inf %" in capsys.readouterr().out


def test_a_repeated_payload_is_listed_with_its_repeat_count(tmp_path: Path) -> None:
    config = make_site(tmp_path)
    site = load_config(config)
    store = SqliteStore(tmp_path / "a.db", tz=site.site.tz)
    try:
        store.write(Batch(quarantine=[QuarantineRecord(NOW + i, "b", "t/big", b"x" * 300, "too big", "decode")
                                      for i in range(2, 5)]))
    finally:
        store.close()
    data = quarantine_data(site)
    assert [q["payload_repeats"] for q in data["quarantine"] if q["topic"] == "t/big"] == [4, 4, 4, 4]
    assert all(base64.b64decode(q["payload_base64"]) == b"x" * 300 for q in data["quarantine"] if q["topic"] == "t/big")
