"""The alert CLI commands, called through a parser built with ``alerts.cli.add_commands``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from alerts.cli import add_commands
from alerts.engine import AlertEngine
from alerts.store import AlertStore
from archmon.config import load_config
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, write_config_toml


def run(argv: list[str]) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    parser = argparse.ArgumentParser(prog="archmon")
    add_commands(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args(argv)
    return args.func(args)


def test_standards_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["standards", "show", "special", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["humidity"]["high"] == 55 and data["source"].startswith("JGJ 25-2010")
    assert data["stability"]["interpretation"] == "A"
    assert run(["standards", "show", "nope"]) == 2


def test_standards_list_names_every_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["standards", "list"]) == 0
    out = capsys.readouterr().out
    assert "纸质档案库" in out and "ashrae_aa" in out and "光盘库" in out


def _fire_one_alert(config_path: Path) -> None:
    config = load_config(config_path)
    store = AlertStore(config.resolve(config.storage.sqlite_path))
    engine = AlertEngine(config, store)
    engine.feed(Reading("T1", "humidity", 70.0, SHANGHAI_NOON, "A1"))
    engine.advance(SHANGHAI_NOON + 16 * 60_000)
    store.close()


def test_alerts_list_ack_maintenance_and_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config_toml(tmp_path)
    _fire_one_alert(cfg)
    assert run(["alerts", "list", "--active", "--format", "json", "--config", str(cfg)]) == 0
    listed = json.loads(capsys.readouterr().out)
    band = next(a for a in listed if a["rule"] == "band")
    assert band["state"] == "active"
    assert run(["alerts", "ack", str(band["id"]), "--by", "li", "--comment", "checked", "--config", str(cfg)]) == 0
    assert run(["alerts", "ack", "999", "--by", "li", "--comment", "x", "--config", str(cfg)]) == 1
    assert run(["alerts", "maintenance", "A1", "--until", "2099-01-01T00:00", "--reason", "repair",
                "--config", str(cfg)]) == 0
    assert run(["alerts", "maintenance", "B9", "--until", "2099-01-01T00:00", "--reason", "x",
                "--config", str(cfg)]) == 1
    capsys.readouterr()
    assert run(["alerts", "list", "--format", "json", "--config", str(cfg)]) == 0
    after = next(a for a in json.loads(capsys.readouterr().out) if a["id"] == band["id"])
    assert (after["state"], after["acked_by"]) == ("acknowledged", "li")
    assert [c["comment"] for c in after["comments"]] == ["checked"]
    assert run(["audit", "verify", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok")
    assert re.search(r"head [0-9a-f]{64}\)$", out.strip()), out  # the head hash, to record outside the db


def test_audit_verify_detects_an_edited_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config_toml(tmp_path)
    _fire_one_alert(cfg)
    store = AlertStore(tmp_path / "archmon.db")
    count = store.conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
    assert count >= 3
    store.conn.execute("DROP TRIGGER audit_log_no_update")  # an attacker with file access can do this
    store.conn.execute("UPDATE audit_log SET payload = replace(payload, '70.0', '59.0') WHERE seq = 2")
    store.close()
    assert run(["audit", "verify", "--config", str(cfg)]) == 1
    assert "broken at entry 2" in capsys.readouterr().out


def test_audit_rows_cannot_be_updated_or_deleted_through_sql(tmp_path: Path) -> None:
    cfg = write_config_toml(tmp_path)
    _fire_one_alert(cfg)
    store = AlertStore(tmp_path / "archmon.db")
    with pytest.raises(Exception, match="append-only"):
        store.conn.execute("DELETE FROM audit_log WHERE seq = 1")
    store.close()


def test_replay_with_profile_prints_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "r.csv"
    csv_path.write_text("ts,sensor,quantity,value\n2024-03-04T03:00:00,S1,smoke,1\n2024-03-04T03:01:00,S1,smoke,0\n")
    assert run(["replay", "--readings", str(csv_path), "--profile", "paper", "--tz", "Asia/Shanghai"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["rule"], x["state"], x["ts"]) for x in lines] == [
        ("smoke", "active", "2024-03-04T03:00:00.000+08:00"), ("smoke", "cleared", "2024-03-04T03:01:00.000+08:00")]
    assert set(lines[0]) >= {"ts", "alert", "rule", "severity", "room", "sensor", "quantity", "state", "value",
                             "limit"}


def test_replay_reports_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "r.csv"
    csv_path.write_text("ts,sensor,quantity,value\nyesterday,S1,smoke,1\n")
    assert run(["replay", "--readings", str(csv_path), "--profile", "paper"]) == 2
    assert f"{csv_path}:2" in capsys.readouterr().err
