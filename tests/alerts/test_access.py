"""The access register (三不查阅) and the unregistered-entry rule, with the real engine and store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerts.access import AccessError, AccessRegister, attach_register
from alerts.audit import verify_audit
from alerts.engine import AlertEngine
from alerts.store import AlertStore
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000


@pytest.fixture
def register(tmp_path: Path) -> AccessRegister:
    reg = AccessRegister(tmp_path / "archmon.db")
    yield reg
    reg.close()


def test_a_session_needs_two_different_people_a_purpose_and_an_approval(register: AccessRegister) -> None:
    with pytest.raises(AccessError, match="at least 2 different people"):
        register.open_session("A1", ["张三"], "查阅", "2024-01", "keeper")
    with pytest.raises(AccessError, match="at least 2 different people"):
        register.open_session("A1", ["张三", " 张三 "], "查阅", "2024-01", "keeper")
    with pytest.raises(AccessError, match="purpose"):
        register.open_session("A1", ["张三", "李四"], "  ", "2024-01", "keeper")
    with pytest.raises(AccessError, match="approval"):
        register.open_session("A1", ["张三", "李四"], "查阅", "", "keeper")
    session = register.open_session("A1", ["张三、李四"], "干部档案查阅", "审-2024-017", "keeper", ts_ms=1000)
    assert session.people == ("张三", "李四")  # names in one string, separated the Chinese way
    assert register.sessions(open_only=True) == [session]


def test_one_open_session_per_room_and_closing_is_recorded(register: AccessRegister) -> None:
    first = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=1000)
    with pytest.raises(AccessError, match="already has an open access session"):
        register.open_session("A1", ["c", "d"], "p", "n2", "keeper", ts_ms=2000)
    register.open_session("A2", ["c", "d"], "p", "n2", "keeper", ts_ms=2000)  # another room is fine
    closed = register.close_session(first.id, "keeper2", note="done", ts_ms=5000)
    assert (closed.closed_ms, closed.closed_by, closed.note) == (5000, "keeper2", "done")
    with pytest.raises(AccessError, match="closed already"):
        register.close_session(first.id, "keeper2")
    with pytest.raises(KeyError):
        register.close_session(999, "keeper2")
    assert register.open_at("A1", 3000) == closed
    assert register.open_at("A1", 6000) is None
    assert register.open_at("A1", 999) is None
    assert [s.id for s in register.sessions(room="A1", start_ms=0, end_ms=10_000)] == [first.id]


def test_every_open_and_close_is_in_the_audit_chain(register: AccessRegister, tmp_path: Path) -> None:
    session = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=1000)
    register.close_session(session.id, "keeper", ts_ms=2000)
    conn = sqlite3.connect(tmp_path / "archmon.db")
    kinds = [row[0] for row in conn.execute("SELECT kind FROM audit_log ORDER BY seq")]
    verdict = verify_audit(conn)
    conn.close()
    assert kinds == ["access_open", "access_close"]
    assert verdict.ok and verdict.entries == 2


def _engine(tmp_path: Path) -> tuple[AlertEngine, AccessRegister, AlertStore]:
    config = site_config(tmp_path)
    store = AlertStore(tmp_path / "archmon.db")
    engine = AlertEngine(config, store)
    register = AccessRegister(tmp_path / "archmon.db")
    assert attach_register(engine, register) == 1
    return engine, register, store


def _unregistered(transitions: list) -> list[tuple[str, str | None]]:
    return [(t.state, t.sensor) for t in transitions if t.rule == "unregistered_entry"]


def test_a_door_opening_without_a_session_raises_unregistered_entry_and_closing_clears_it(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        opened = engine.feed(Reading("D1", "door", 1.0, SHANGHAI_NOON, "A1"))
        assert _unregistered(opened) == [("active", "D1")]
        alert = store.alert(next(t.alert for t in opened if t.rule == "unregistered_entry"))
        assert "未登记" in alert["title_zh"] and "no registered access" in alert["title_en"]
        closed = engine.feed(Reading("D1", "door", 0.0, SHANGHAI_NOON + MIN, "A1"))
        assert _unregistered(closed) == [("cleared", "D1")]
    finally:
        register.close()
        store.close()


def test_a_door_opening_inside_a_session_raises_nothing(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=SHANGHAI_NOON - MIN)
        out = engine.feed(Reading("D1", "door", 1.0, SHANGHAI_NOON, "A1"))
        out += engine.feed(Reading("D1", "door", 0.0, SHANGHAI_NOON + MIN, "A1"))
        assert _unregistered(out) == []
    finally:
        register.close()
        store.close()


def test_a_late_reading_is_judged_by_the_sessions_open_when_the_door_opened(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        # a session that covered 12:00-12:10 is closed by the time the door reading of 12:05 arrives
        session = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=SHANGHAI_NOON)
        register.close_session(session.id, "keeper", ts_ms=SHANGHAI_NOON + 10 * MIN)
        covered = engine.feed(Reading("D1", "door", 1.0, SHANGHAI_NOON + 5 * MIN, "A1"))
        covered += engine.feed(Reading("D1", "door", 0.0, SHANGHAI_NOON + 6 * MIN, "A1"))
        assert _unregistered(covered) == []
        # an opening at 12:20, after the session was closed, is unregistered
        early = engine.feed(Reading("D1", "door", 1.0, SHANGHAI_NOON + 20 * MIN, "A1"))
        assert _unregistered(early) == [("active", "D1")]
    finally:
        register.close()
        store.close()


def test_without_a_register_the_rule_judges_nothing(tmp_path: Path) -> None:
    config = site_config(tmp_path)
    store = AlertStore(tmp_path / "archmon.db")
    try:
        engine = AlertEngine(config, store)
        assert _unregistered(engine.feed(Reading("D1", "door", 1.0, SHANGHAI_NOON, "A1"))) == []
    finally:
        store.close()
