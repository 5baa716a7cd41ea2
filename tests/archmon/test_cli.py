"""The ``archmon`` command: decode, and the sample config documenting every option."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from archmon import config as config_module
from archmon.cli import build_parser, main
from archmon.logsetup import setup_logging, use_zone

ROOT = Path(__file__).resolve().parents[2]


def test_decode_prints_one_json_object_per_reading(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["decode", "--format", "zigbee2mqtt", "--topic", "zigbee2mqtt/store_th",
                 "--payload", '{"temperature": 20.5, "humidity": "51.2", "last_seen": 1764000000000}'])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {"device": "store_th", "quantity": "temperature", "value": 20.5, "unit": "°C",
         "ts": "2025-11-24T16:00:00.000Z"},
        {"device": "store_th", "quantity": "humidity", "value": 51.2, "unit": "%RH",
         "ts": "2025-11-24T16:00:00.000Z"},
    ]


def test_decode_availability_and_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Offline")))
    assert main(["decode", "--format", "tasmota", "--topic", "tele/th_01/LWT"]) == 0
    assert json.loads(capsys.readouterr().out) == {"device": "th_01", "availability": "offline"}


def test_decode_fahrenheit_is_converted(capsys: pytest.CaptureFixture[str]) -> None:
    payload = '{"Time":"2026-01-05T08:00:00","AM2301":{"Temperature":68.0,"Humidity":50.0},"TempUnit":"F"}'
    assert main(["decode", "--format", "tasmota", "--topic", "tele/th_01/SENSOR", "--payload", payload,
                 "--tz", "Asia/Shanghai"]) == 0
    rows = {r["quantity"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["temperature"]["value"] == pytest.approx(20.0)
    assert rows["temperature"]["ts"] == "2026-01-05T00:00:00.000Z"  # device local time, Asia/Shanghai default


def test_decode_failure_exits_1_with_one_line() -> None:
    run = subprocess.run([sys.executable, "-m", "archmon", "decode", "--format", "zigbee2mqtt",
                          "--topic", "zigbee2mqtt/x", "--payload", "{broken"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert run.returncode == 1
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1 and "zigbee2mqtt" in run.stderr


def test_decode_unknown_format_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--format", "nope", "--topic", "a", "--payload", "1"]) == 1
    assert "nope" in capsys.readouterr().err


def _fields(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        names.add(name)
        annotation = info.annotation
        for arg in (*getattr(annotation, "__args__", ()), annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _fields(arg)
    return names


def test_sample_config_mentions_every_option() -> None:
    text = (ROOT / "docs" / "archmon.sample.toml").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", text)) | {
        part for table in re.findall(r"\[+([a-z_.]+)", text) for part in table.split(".")}
    missing = _fields(config_module.Config) - mentioned - {"alerts"}
    assert not missing, f"docs/archmon.sample.toml does not document: {sorted(missing)}"


def _every_parser(parser: argparse.ArgumentParser, name: str = "archmon") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                found += _every_parser(child, f"{name} {child_name}")
    return found


def test_every_help_says_where_the_config_file_is_looked_for(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARCHMON_CONFIG", raising=False)
    parsers = _every_parser(build_parser())
    assert {"archmon run", "archmon status", "archmon alerts list", "archmon alerts"} <= {n for n, _ in parsers}
    for name, parser in parsers:
        text = parser.format_help()
        assert "--config FILE, else $ARCHMON_CONFIG, else ./archmon.toml" in text, name
        assert f"$ARCHMON_CONFIG is not set, so without --config: {tmp_path / 'archmon.toml'}" in text, name
    monkeypatch.setenv("ARCHMON_CONFIG", "/etc/archmon/archmon.toml")
    text = build_parser().format_help()
    assert "$ARCHMON_CONFIG = /etc/archmon/archmon.toml, so without --config: /etc/archmon/archmon.toml" in text


def test_log_lines_carry_their_offset_and_name_their_zone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    handler = setup_logging("INFO", stream=stream)
    try:
        use_zone(ZoneInfo("Asia/Shanghai"))
        logging.getLogger("archmon.test").warning("something")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    first, second = stream.getvalue().splitlines()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00 INFO archmon: log times are in "
                    r"Asia/Shanghai \(UTC\+08:00\)", first), first
    assert re.match(r"\S+\+08:00 WARNING archmon.test: something$", second), second


def test_under_systemd_log_lines_carry_their_syslog_priority(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with open(tmp_path / "journal", "w", encoding="utf-8") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        handler = setup_logging("INFO", stream=stream)
        try:
            logging.getLogger("archmon.test").error("broken")
            logging.getLogger("archmon.test").info("fine")
        finally:
            logging.getLogger().removeHandler(handler)
            logging.getLogger().setLevel(logging.WARNING)
    lines = (tmp_path / "journal").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("<3>") and lines[0].endswith("ERROR archmon.test: broken")
    assert lines[1].startswith("<6>")
