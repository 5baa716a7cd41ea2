"""The alert CLI commands, called through a parser built with ``alerts.cli.add_commands``."""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.cli import add_commands
from alerts.engine import AlertEngine
from alerts.store import AlertStore
from archmon.config import load_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.alerts.helpers import SHANGHAI_NOON, write_config_toml

SHANGHAI = ZoneInfo("Asia/Shanghai")
ISO_LOCAL = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00"


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


def _in_hours(hours: float) -> str:
    """An ISO time ``hours`` from now, without offset (read in the site's zone)."""
    return datetime.fromtimestamp(now_ms() / 1000 + hours * 3600, SHANGHAI).strftime("%Y-%m-%dT%H:%M")


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
    assert run(["alerts", "maintenance", "A1", "--until", _in_hours(2), "--reason", "repair",
                "--config", str(cfg)]) == 0
    assert run(["alerts", "maintenance", "B9", "--until", _in_hours(2), "--reason", "x",
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


def test_maintenance_list_and_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config_toml(tmp_path)
    config = ["--config", str(cfg)]
    assert run(["alerts", "maintenance", "A1", "--until", _in_hours(2), "--reason", "filter change",
                "--by", "zhang", *config]) == 0
    opened = capsys.readouterr().out
    assert re.fullmatch(rf"maintenance window 1: room A1 from {ISO_LOCAL} until {ISO_LOCAL}\n", opened), opened
    assert run(["alerts", "maintenance", "A1", "--start", _in_hours(24), "--until", _in_hours(30),
                "--reason", "repainting", "--by", "wang", *config]) == 0
    capsys.readouterr()
    assert run(["alerts", "maintenance", "--list", *config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["编号", "库房", "开始", "结束", "操作人", "原因"]  # the site's language
    assert run(["alerts", "maintenance", "--list", "--lang", "en", *config]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["id", "room", "start", "end", "by", "reason"]
    assert run(["alerts", "maintenance", "--list", "--format", "json", *config]) == 0
    windows = json.loads(capsys.readouterr().out)
    assert [(w["id"], w["by"], w["reason"]) for w in windows] == [(1, "zhang", "filter change"),
                                                                   (2, "wang", "repainting")]
    assert all(re.fullmatch(ISO_LOCAL, w[key]) for w in windows for key in ("start_at", "end_at", "until_at"))
    assert [line.split()[:2] + line.split()[4:] for line in lines[1:]] == [
        ["1", "A1", "zhang", "filter", "change"], ["2", "A1", "wang", "repainting"]]
    assert all(re.search(rf"{ISO_LOCAL}\s+{ISO_LOCAL}", line) for line in lines[1:])
    assert not re.search(r"\d{13}", "\n".join(lines))  # never raw milliseconds
    assert run(["alerts", "maintenance", "--list", "--room", "B9", *config]) == 1
    assert "known rooms: A1" in capsys.readouterr().err

    assert run(["alerts", "maintenance", "--end", "1", *config]) == 2  # who ends it?
    assert "--by" in capsys.readouterr().err
    assert run(["alerts", "maintenance", "--end", "1", "--by", "li", "--comment", "done early", *config]) == 0
    assert re.fullmatch(rf"maintenance window 1: room A1 ended at {ISO_LOCAL} \(was until {ISO_LOCAL}\); "
                        r"its rules are judged again\n", capsys.readouterr().out)
    assert run(["alerts", "maintenance", "--end", "1", "--by", "li", *config]) == 1
    assert capsys.readouterr().err.strip() == "archmon: maintenance window 1 is over already"
    assert run(["alerts", "maintenance", "--end", "7", "--by", "li", *config]) == 1
    assert run(["alerts", "maintenance", "--list", "--room", "A1", *config]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["2"]  # 1 is over

    store = AlertStore(tmp_path / "archmon.db")
    ended = store.maintenance_window(1)
    assert ended is not None and (ended["ended_by"], ended["end_comment"]) == ("li", "done early")
    assert ended["end_ms"] == ended["ended_ms"] < ended["until_ms"]
    assert store.maintenance_until("A1", now_ms()) is None  # the engine sees the room judged again
    kinds = [r[0] for r in store.conn.execute("SELECT kind FROM audit_log WHERE kind LIKE 'maintenance%' ORDER BY seq")]
    assert kinds == ["maintenance", "maintenance", "maintenance_end"]
    assert store.verify_audit().ok
    store.close()


NO_REASON = "archmon: alerts maintenance: --reason is required and must not be empty"


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["A1", "--until", "tomorrow", "--reason", "x"], 1,
     "archmon: --until: not an ISO-8601 time: 'tomorrow' (e.g. 2024-03-04T17:30)"),
    (["A1", "--until", "+2h", "--start", "2024-13-01", "--reason", "x"], 1,
     "archmon: --start: not an ISO-8601 time: '2024-13-01' (e.g. 2024-03-04T17:30)"),
    (["A1", "--until", "IN2H", "--reason", "  "], 1, NO_REASON),
    (["A1", "--until", "IN2H"], 1, NO_REASON),
    (["B9", "--until", "IN2H", "--reason", "x"], 1, "archmon: unknown room 'B9' (known rooms: A1)"),
    (["A1", "--reason", "x"], 2, "archmon: alerts maintenance: --until is required to open a window"),
    (["--list", "--end", "1"], 2, "archmon: alerts maintenance: give one of ROOM (open a window), --list or --end ID, "
                                  "not --list and --end"),
    ([], 2, "archmon: alerts maintenance: give one of ROOM (open a window), --list or --end ID, not nothing"),
    (["--end", "1", "--by", "li", "--reason", "x"], 2, "archmon: alerts maintenance: --reason does not go with --end"),
])
def test_maintenance_refuses_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  argv: list[str], code: int, message: str) -> None:
    cfg = write_config_toml(tmp_path)
    argv = [_in_hours(2) if a == "IN2H" else a for a in argv]
    assert run(["alerts", "maintenance", *argv, "--config", str(cfg)]) == code
    err = capsys.readouterr().err
    assert err == message + "\n"
    store = AlertStore(tmp_path / "archmon.db")
    assert store.maintenance_windows(0) == []
    store.close()


def test_maintenance_longer_than_30_days_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config_toml(tmp_path)
    typo = _in_hours(24 * 365 * 10)  # 2034 for 2024
    assert run(["alerts", "maintenance", "A1", "--until", typo, "--reason", "x", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"archmon: --until {ISO_LOCAL} makes a window of 36\d\d days \(more than 30\): "
                        r"check the date, or add --force", err), err
    assert run(["alerts", "maintenance", "A1", "--until", _in_hours(24 * 29), "--reason", "x",
                "--config", str(cfg)]) == 0
    assert run(["alerts", "maintenance", "A1", "--until", typo, "--reason", "rebuilding", "--force",
                "--config", str(cfg)]) == 0
    past = datetime.fromtimestamp(now_ms() / 1000 - 3600, SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    assert run(["alerts", "maintenance", "A1", "--until", past, "--reason", "x", "--config", str(cfg)]) == 1
    assert "is not after now" in capsys.readouterr().err


def _one_fired_one_cancelled(config_path: Path) -> None:
    """A humidity alert that fired and a temperature one cancelled before its delay (like a door opening
    in working hours)."""
    config = load_config(config_path)
    store = AlertStore(config.resolve(config.storage.sqlite_path))
    engine = AlertEngine(config, store)
    t0 = SHANGHAI_NOON
    engine.feed(Reading("T1", "humidity", 70.0, t0, "A1"))  # band (15 min) and mould (24 h) go pending
    engine.feed(Reading("T1", "humidity", 70.0, t0 + 16 * 60_000, "A1"))  # band fires
    engine.feed(Reading("T1", "temperature", 10.0, t0 + 17 * 60_000, "A1"))  # pending ...
    engine.feed(Reading("T1", "temperature", 20.0, t0 + 18 * 60_000, "A1"))  # ... cancelled
    store.close()


def test_alerts_list_leaves_out_cancelled_rows_unless_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config_toml(tmp_path)
    _one_fired_one_cancelled(cfg)
    config = ["--config", str(cfg)]

    def listed(*argv: str) -> list[tuple[str, str]]:
        assert run(["alerts", "list", "--format", "json", *argv, *config]) == 0
        return [(a["ident"], a["state"]) for a in json.loads(capsys.readouterr().out)]

    cancelled = ("band:T1/temperature/low", "cancelled")
    assert cancelled in listed("--all")
    assert cancelled not in listed() and ("band:T1/humidity/high", "active") in listed()
    assert ("mould:T1", "pending") in listed()  # pending now: shown
    assert {state for _, state in listed("--active")} <= {"pending", "active", "acknowledged"}
    assert listed("--active", "--all") == listed("--active")
    assert run(["alerts", "list", *config]) == 0
    text = capsys.readouterr().out
    assert "已撤销" not in text and "告警中" in text
    assert run(["alerts", "list", "--all", *config]) == 0
    assert "已撤销" in capsys.readouterr().out


def test_alerts_list_state_names_follow_the_alert_language(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from alerts.messages import STATE_NAMES

    cfg = write_config_toml(tmp_path)
    _one_fired_one_cancelled(cfg)
    assert run(["alerts", "list", "--all", "--config", str(cfg)]) == 0  # the site's language: zh
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[3] for line in lines} >= {"待触发", "告警中", "已撤销"}
    # docs/alerts.md names the states: 待触发 (pending), 告警中, 已确认, 已恢复, 已关闭, 已撤销
    assert [zh for zh, _ in STATE_NAMES.values()] == ["待触发", "告警中", "已确认", "已恢复", "已关闭", "已撤销"]
    assert [en for _, en in STATE_NAMES.values()] == list(STATE_NAMES)
    docs = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text(encoding="utf-8")
    for state, (zh, en) in STATE_NAMES.items():
        assert f"| {state} | {zh} | {en} |" in docs, state
    with cfg.open("a", encoding="utf-8") as fh:
        fh.write('[alerts]\nlanguage = "en"\n')  # alert texts in English at a Chinese site
    assert run(["alerts", "list", "--all", "--config", str(cfg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[3] for line in lines} >= {"pending", "active", "cancelled"}
    assert any("relative humidity above the upper limit" in line for line in lines)


def test_alerts_list_has_a_header_and_local_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config_toml(tmp_path)
    config = ["--config", str(cfg)]
    assert run(["alerts", "list", *config]) == 0  # no database yet: a heading and a line saying so
    assert capsys.readouterr().out.splitlines()[1:] == ["没有告警"]
    _one_fired_one_cancelled(cfg)
    assert run(["alerts", "list", *config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["编号", "更新时间", "级别", "状态", "标题"]
    assert all(re.match(rf"\s*\d+\s+{ISO_LOCAL}\s+(重要|次要|紧急|提示)\s", line) for line in lines[1:]), lines
    assert run(["alerts", "list", "--lang", "en", *config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "updated", "severity", "state", "title"]
    assert any(re.search(r"\bmajor\s+active\s+A1 T1: relative humidity above", line) for line in lines)
    assert not re.search(r"\d{13}", "\n".join(lines))  # never raw milliseconds
    assert run(["alerts", "list", "--format", "json", *config]) == 0
    band = next(a for a in json.loads(capsys.readouterr().out) if a["ident"] == "band:T1/humidity/high")
    assert band["updated_at"] == datetime.fromtimestamp(band["updated_ms"] / 1000, SHANGHAI).isoformat(
        timespec="seconds")
    assert re.fullmatch(ISO_LOCAL, band["opened_at"]) and "cleared_at" not in band  # never cleared: no time


def test_listing_reads_while_the_engine_holds_its_write_lock(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config_toml(tmp_path)
    _fire_one_alert(cfg)
    assert run(["alerts", "list", "--active", "--format", "json", "--config", str(cfg)]) == 0
    before = [(a["id"], a["state"]) for a in json.loads(capsys.readouterr().out)]
    assert "active" in dict(before).values()
    store = AlertStore(tmp_path / "archmon.db")
    try:
        with store.tx() as conn:  # the engine in the middle of a transaction, holding the write lock
            conn.execute("UPDATE alert_alerts SET state = 'closed'")
            assert run(["alerts", "list", "--active", "--format", "json", "--config", str(cfg)]) == 0
            listed = json.loads(capsys.readouterr().out)
            assert [(a["id"], a["state"]) for a in listed] == before  # the last committed snapshot, at once
    finally:
        store.close()
