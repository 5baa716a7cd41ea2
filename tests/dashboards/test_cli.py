"""``archmon user`` and ``archmon access`` through the real CLI entry point and a real config file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from archmon.cli import main
from dashboards.web.users import UserStore, one_time_admin
from tests.dashboards.site import CONFIG, sensor_tables


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "archmon.toml"
    path.write_text(CONFIG.replace("{sensors}", sensor_tables()), encoding="utf-8")
    return path


def test_user_add_reads_the_password_from_stdin_and_never_has_a_default(config_file: Path, monkeypatch,
                                                                      capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-secret-1\n"))
    assert main(["user", "add", "keeper", "--role", "admin", "--password-stdin", "-c", str(config_file)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "add", "weak", "--password-stdin", "-c", str(config_file)]) == 2
    assert "too short" in capsys.readouterr().err
    assert main(["user", "list", "--format", "json", "-c", str(config_file)]) == 0
    users = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["role"]) for u in users] == [("keeper", "admin")]
    store = UserStore(config_file.parent / "archmon.db")
    try:
        assert store.verify("keeper", "a-long-secret-1") is not None
        assert store.verify("keeper", "") is None
        assert main(["user", "disable", "keeper", "-c", str(config_file)]) == 0
        assert store.verify("keeper", "a-long-secret-1") is None
    finally:
        store.close()


def test_access_open_close_list(config_file: Path, capsys) -> None:
    base = ["-c", str(config_file)]
    assert main(["access", "open", "A1", "--person", "张三", "--purpose", "查阅", "--approval", "A-1", *base]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["access", "open", "ZZ", "--person", "a", "--person", "b", "--purpose", "p", "--approval", "n",
                 *base]) == 2
    assert main(["access", "open", "A1", "--person", "张三", "--person", "李四", "--purpose", "查阅",
                 "--approval", "A-1", "--by", "keeper", *base]) == 0
    capsys.readouterr()
    assert main(["access", "list", "--open", "--format", "json", *base]) == 0
    sessions = json.loads(capsys.readouterr().out)
    assert [(s["room"], s["people"], s["opened_by"]) for s in sessions] == [("A1", ["张三", "李四"], "keeper")]
    assert main(["access", "close", str(sessions[0]["id"]), "--by", "keeper", *base]) == 0
    assert main(["access", "list", "--open", "--format", "json", *base]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == []


def test_the_one_time_admin_password_is_new_each_time(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "a.db")
    try:
        first = one_time_admin(store)
        second = one_time_admin(store)
        assert first != second and len(second) >= 16
        assert store.verify("admin", first) is None and store.verify("admin", second).role == "admin"
    finally:
        store.close()
