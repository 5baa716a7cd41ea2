"""``archmon user`` and ``archmon access`` through the real CLI entry point and a real config file."""

from __future__ import annotations

import io
import json
import sqlite3
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


def test_api_tokens_are_listed_revoked_expire_and_end_with_a_new_password(config_file: Path, monkeypatch,
                                                                          capsys) -> None:
    import httpx

    from tests.dashboards.site import Site

    base = ["-c", str(config_file)]
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-secret-1\n"))
    assert main(["user", "add", "robot", "--role", "viewer", "--password-stdin", *base]) == 0
    capsys.readouterr()
    assert main(["user", "token", "robot", "--label", "nightly export", *base]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["user", "token", "robot", "--label", "one day", "--expires-days", "1", *base]) == 0
    second = capsys.readouterr().out.strip()
    assert main(["user", "token", "--list", "--format", "json", *base]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["label"], t["last_used_ms"]) for t in listed] == [("one day", None), ("nightly export", None)]
    assert listed[0]["expires_ms"] is not None and listed[1]["expires_ms"] is None
    assert all(first not in json.dumps(t) for t in listed)  # the secret is never listed
    site = Site(config_file.parent, config_text=config_file.read_text(encoding="utf-8"))
    try:
        with httpx.Client(base_url=site.url) as client:
            def status(token: str) -> int:
                return client.get("/api/rooms", headers={"Authorization": f"Bearer {token}"}).status_code

            assert status(first) == 200 and status(second) == 200
            used = {t.label: t.last_used_ms for t in site.ctx.users.tokens("robot")}
            assert used["nightly export"] is not None  # last use recorded
            assert main(["user", "token", "--revoke", listed[1]["id"], *base]) == 0
            assert status(first) == 401 and status(second) == 200
            assert main(["user", "token", "--revoke", "ffffffffffff", *base]) == 2
            # an expired token is refused
            site.ctx.users._conn.execute("UPDATE web_api_tokens SET expires_ms = 1")
            assert status(second) == 401
            site.ctx.users._conn.execute("UPDATE web_api_tokens SET expires_ms = NULL")
            assert status(second) == 200
            monkeypatch.setattr("sys.stdin", io.StringIO("another-secret-2\n"))
            assert main(["user", "passwd", "robot", "--password-stdin", *base]) == 0
            assert status(second) == 401  # a password reset revokes every token of the user
            assert site.ctx.users.tokens("robot") == []
    finally:
        site.close()
    conn = sqlite3.connect(config_file.parent / "archmon.db")
    try:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM audit_log WHERE kind LIKE 'token_%' ORDER BY seq")]
        assert kinds == ["token_add", "token_add", "token_revoke"]
        payload = json.loads(conn.execute("SELECT payload FROM audit_log WHERE kind = 'user_password'").fetchone()[0])
        assert payload == {"tokens_revoked": 1}
    finally:
        conn.close()
