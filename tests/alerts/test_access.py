"""The access register (三不查阅) and the unregistered-entry rule, with the real engine, stores and register.

The rule is judged in readings' own time order (out-of-order readings), after a grace for the session,
across a configuration reload (``AlertService.reload``) and across a restart (rebuild from the store).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerts.access import AccessError, AccessRegister, attach_register, person_key
from alerts.audit import verify_audit
from alerts.engine import AlertEngine
from alerts.service import AlertService
from alerts.store import AlertStore
from archmon.domain import Reading
from archmon.hub import EventHub
from archmon.timeutil import now_ms
from collector.records import Batch
from collector.store import SqliteStore
from tests.alerts.helpers import SHANGHAI_NOON, site_config

SEC = 1000
MIN = 60_000
T = SHANGHAI_NOON
GRACE = 60 * SEC  # the default [alerts.access] grace_s


@pytest.fixture
def register(tmp_path: Path) -> AccessRegister:
    reg = AccessRegister(tmp_path / "archmon.db")
    yield reg
    reg.close()


def test_a_session_needs_two_different_people_a_purpose_and_an_approval(register: AccessRegister) -> None:
    with pytest.raises(AccessError, match="at least 2 different people") as refused:
        register.open_session("A1", ["张三"], "查阅", "2024-01", "keeper")
    assert refused.value.code == "access_people" and refused.value.params["n"] == 2
    with pytest.raises(AccessError, match="at least 2 different people"):
        register.open_session("A1", ["张三", " 张三 "], "查阅", "2024-01", "keeper")
    with pytest.raises(AccessError, match="purpose") as refused:
        register.open_session("A1", ["张三", "李四"], "  ", "2024-01", "keeper")
    assert refused.value.code == "access_purpose_missing"
    with pytest.raises(AccessError, match="approval"):
        register.open_session("A1", ["张三", "李四"], "查阅", "\u200b", "keeper")  # invisible is empty
    session = register.open_session("A1", ["张三、李四"], "干部档案查阅", "审-2024-017", "keeper", ts_ms=1000)
    assert session.people == ("张三", "李四")  # names in one string, separated the Chinese way
    assert register.sessions(open_only=True) == [session]


@pytest.mark.parametrize("one, other", [
    ("张三", "张三\u200b"),  # zero-width space
    ("张三", "\u202e张三"),  # a bidi override
    ("张三", "张 三"),
    ("张三", "张\u3000三"),  # ideographic space
    ("Alice", "Ａｌｉｃｅ"),  # full-width
    ("Alice", "ALICE"),
    ("José", "Jose\u0301"),  # composed and decomposed accent
    ("José", "Jose"),
])
def test_one_person_cannot_count_twice_with_a_lookalike_of_their_name(register: AccessRegister, one: str,
                                                                      other: str) -> None:
    assert person_key(one) == person_key(other)
    with pytest.raises(AccessError, match="at least 2 different people"):
        register.open_session("A1", [one, other], "查阅", "审-1", "keeper")


def test_traditional_and_simplified_names_are_different_names_and_invisible_characters_are_not_stored(
        register: AccessRegister) -> None:
    # the decision (see person_key): scripts are not folded
    assert person_key("张三") != person_key("張三")
    session = register.open_session("A1", ["张\u200b三", "李四\u2029"], "查阅", "审-1", "keeper")
    assert session.people == ("张三", "李四")
    assert register.sessions()[0].people == ("张三", "李四")


def test_one_open_session_per_room_and_closing_is_recorded(register: AccessRegister) -> None:
    first = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=1000)
    with pytest.raises(AccessError, match="already has an open access session") as busy:
        register.open_session("A1", ["c", "d"], "p", "n2", "keeper", ts_ms=2000)
    assert (busy.value.code, busy.value.params) == ("access_busy", {"room": "A1", "id": first.id})
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
    # the rule's question: a session open at some moment of [start, end]
    assert register.registered("A1", 500, 1000) and register.registered("A1", 5000, 9000)
    assert not register.registered("A1", 5001, 9000) and not register.registered("A1", 0, 999)


def test_every_open_and_close_is_in_the_audit_chain_and_on_the_hub(tmp_path: Path) -> None:
    hub = EventHub()
    sub = hub.subscribe(["access"], name="test")
    register = AccessRegister(tmp_path / "archmon.db", hub=hub)
    try:
        session = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=1000)
        closed = register.close_session(session.id, "keeper", ts_ms=2000)
    finally:
        register.close()
    assert [e.data for e in sub.drain()] == [session, closed]
    conn = sqlite3.connect(tmp_path / "archmon.db")
    kinds = [row[0] for row in conn.execute("SELECT kind FROM audit_log ORDER BY seq")]
    verdict = verify_audit(conn)
    conn.close()
    assert kinds == ["access_open", "access_close"]
    assert verdict.ok and verdict.entries == 2


# -- the rule ------------------------------------------------------------------------------------
def _config(tmp_path: Path, **access: float):  # type: ignore[no-untyped-def]
    return site_config(tmp_path, alerts={"access": access} if access else None)


def _engine(tmp_path: Path, **access: float) -> tuple[AlertEngine, AccessRegister, AlertStore]:
    store = AlertStore(tmp_path / "archmon.db")
    engine = AlertEngine(_config(tmp_path, **access), store)
    register = AccessRegister(tmp_path / "archmon.db")
    assert attach_register(engine, register) == 1
    return engine, register, store


def _unregistered(transitions: list) -> list[tuple[str, str | None]]:
    return [(t.state, t.sensor) for t in transitions if t.rule == "unregistered_entry"]


def _door(value: float, ts: int, sensor: str = "D1") -> Reading:
    return Reading(sensor, "door", value, ts, "A1")


def test_a_door_opening_without_a_session_raises_unregistered_entry_after_the_grace(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        assert _unregistered(engine.feed(_door(1.0, T))) == []  # within the grace nothing yet
        assert _unregistered(engine.advance(T + GRACE - 1)) == []
        opened = engine.advance(T + GRACE)
        assert _unregistered(opened) == [("active", "D1")]
        alert = store.alert(next(t.alert for t in opened if t.rule == "unregistered_entry"))
        assert "未登记" in alert["title_zh"] and "no registered access" in alert["title_en"]
        closed = engine.feed(_door(0.0, T + 2 * MIN))
        assert _unregistered(closed) == [("cleared", "D1")]
    finally:
        register.close()
        store.close()


def test_a_door_opening_inside_a_session_raises_nothing(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=T - MIN)
        out = engine.feed(_door(1.0, T)) + engine.advance(T + 2 * GRACE)
        out += engine.feed(_door(0.0, T + 3 * MIN))
        assert _unregistered(out) == []
    finally:
        register.close()
        store.close()


@pytest.mark.parametrize("after_s, alerted", [(20, False), (60, False), (61, True)])
def test_a_session_opened_within_the_grace_after_the_door_registers_it(tmp_path: Path, after_s: int,
                                                                       alerted: bool) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        out = engine.feed(_door(1.0, T))
        register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=T + after_s * SEC)
        out += engine.feed(_door(1.0, T + 30 * SEC)) + engine.advance(T + 2 * MIN)
        out += engine.feed(_door(0.0, T + 10 * MIN))
        assert _unregistered(out) == ([("active", "D1"), ("cleared", "D1")] if alerted else [])
    finally:
        register.close()
        store.close()


def test_the_grace_is_configurable(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path, grace_s=0)
    try:
        engine.feed(_door(1.0, T))
        assert _unregistered(engine.advance(T)) == [("active", "D1")]
    finally:
        register.close()
        store.close()


def test_a_late_reading_is_judged_by_the_sessions_open_when_the_door_opened(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        # a session that covered 12:00-12:10 is closed by the time the door reading of 12:05 arrives
        session = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=T)
        register.close_session(session.id, "keeper", ts_ms=T + 10 * MIN)
        covered = engine.feed(_door(1.0, T + 5 * MIN)) + engine.feed(_door(0.0, T + 6 * MIN))
        covered += engine.advance(T + 15 * MIN)
        assert _unregistered(covered) == []
        # an opening at 12:20, after the session was closed, is unregistered
        late = engine.feed(_door(1.0, T + 20 * MIN)) + engine.advance(T + 22 * MIN)
        assert _unregistered(late) == [("active", "D1")]
    finally:
        register.close()
        store.close()


def test_an_opening_that_arrives_after_newer_readings_is_judged(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        out = engine.feed(_door(0.0, T + 10 * MIN))  # the newest arrives first
        out += engine.feed(_door(1.0, T + 5 * MIN))  # the opening, out of order
        out += engine.feed(_door(0.0, T + 6 * MIN))
        out += engine.advance(T + 11 * MIN)
        # raised at once and cleared at once: the door is closed by now; the entry is notified and recovered
        assert _unregistered(out) == [("active", "D1"), ("cleared", "D1")]
        assert engine.counters.late_readings == 2
    finally:
        register.close()
        store.close()


def test_a_late_closed_reading_inside_an_open_stretch_makes_the_next_reading_an_opening(tmp_path: Path) -> None:
    engine, register, store = _engine(tmp_path)
    try:
        session = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=T - MIN)
        register.close_session(session.id, "keeper", ts_ms=T + 5 * MIN)
        out = engine.feed(_door(1.0, T)) + engine.feed(_door(1.0, T + 20 * MIN))  # registered, still open
        out += engine.advance(T + 21 * MIN)
        assert _unregistered(out) == []
        # the door was in fact closed at 12:10: the reading of 12:20 was a new, unregistered opening
        out = engine.feed(_door(0.0, T + 10 * MIN)) + engine.advance(T + 22 * MIN)
        assert _unregistered(out) == [("active", "D1")]
        # and a late "open" inside that open stretch is no new opening
        out = engine.feed(_door(1.0, T + 21 * MIN)) + engine.advance(T + 30 * MIN)
        assert _unregistered(out) == []
    finally:
        register.close()
        store.close()


def test_a_reload_through_the_alert_service_keeps_the_rule_its_register_and_open_doors(tmp_path: Path) -> None:
    config = _config(tmp_path, grace_s=0)
    db = tmp_path / "archmon.db"
    service = AlertService(config, db)
    register = AccessRegister(db)
    try:
        assert attach_register(service.engine, db) == 1  # by path: nothing to close
        service.tick()  # the service ticks at start
        now = now_ms()
        session = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=now - 10 * MIN)
        service.on_readings([_door(1.0, now - 9 * MIN)])  # a registered entry
        register.close_session(session.id, "keeper", ts_ms=now - 5 * MIN)
        service.tick()
        service.reload(config)
        service.reload(config)  # twice: the second engine takes it from the first new one
        rule = next(r for r in service.engine.rules if r.name == "unregistered_entry")
        assert rule.sessions is not None and rule.snapshot()["open"] == ["D1"]
        # a heartbeat of the door left open since the registered entry is no new entry
        service.on_readings([_door(1.0, now - 2 * MIN)])
        service.on_readings([_door(0.0, now - 90 * SEC)])
        assert _unregistered_alerts(service.store) == []
        # an opening after the reload, with no session, is alerted
        service.on_readings([_door(1.0, now - MIN)])
        service.tick()
        assert [a["state"] for a in _unregistered_alerts(service.store)] == ["active"]
    finally:
        register.close()
        service.stop()


def test_the_alert_service_attaches_the_register_itself_even_through_a_reload_before_its_first_tick(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, grace_s=0)
    db = tmp_path / "archmon.db"
    service = AlertService(config, db)  # no dashboard: nobody else attaches it
    try:
        service.reload(config)  # before the first tick: the old engine's clock is not set yet
        rule = next(r for r in service.engine.rules if r.name == "unregistered_entry")
        assert rule.sessions is not None
        service.tick()
        now = now_ms()
        service.on_readings([_door(0.0, now - 3 * MIN)])
        service.on_readings([_door(1.0, now - MIN)])  # opened with no session
        service.tick()
        assert [a["state"] for a in _unregistered_alerts(service.store)] == ["active"]
    finally:
        service.stop()


def _unregistered_alerts(store: AlertStore) -> list[dict]:
    return [a for a in store.alerts() if a["rule"] == "unregistered_entry"]


def _restart(tmp_path: Path, readings: SqliteStore, at: int) -> tuple[AlertEngine, AlertStore]:
    """A new engine on the same file, rebuilt from the readings store (register attached first)."""
    store = AlertStore(tmp_path / "archmon.db")
    engine = AlertEngine(_config(tmp_path), store)
    attach_register(engine, tmp_path / "archmon.db")
    engine.rebuild(readings, at)
    return engine, store


def _stored(readings: SqliteStore, engine: AlertEngine, store: AlertStore, *rows: Reading) -> list:
    readings.write(Batch(readings=list(rows)))
    with store.batch():
        return engine.feed_many(rows)


def test_a_door_left_open_across_a_restart_is_no_new_entry(tmp_path: Path) -> None:
    readings = SqliteStore(tmp_path / "archmon.db", tz=site_config(tmp_path).site.tz)
    engine, register, store = _engine(tmp_path)
    try:
        session = register.open_session("A1", ["a", "b"], "p", "n1", "keeper", ts_ms=T - MIN)
        out = _stored(readings, engine, store, _door(0.0, T - 30 * MIN), _door(1.0, T))
        out += engine.advance(T + 2 * MIN)
        register.close_session(session.id, "keeper", ts_ms=T + 5 * MIN)
        out += _stored(readings, engine, store, _door(1.0, T + 10 * MIN))  # heartbeat: still open
        assert _unregistered(out) == []
        store.close()
        engine, store = _restart(tmp_path, readings, T + 11 * MIN)
        out = engine.advance(T + 11 * MIN)  # the opening of the door open now is judged again: registered
        out += _stored(readings, engine, store, _door(1.0, T + 12 * MIN)) + engine.advance(T + 15 * MIN)
        assert _unregistered(out) == []
        out = _stored(readings, engine, store, _door(0.0, T + 16 * MIN), _door(1.0, T + 20 * MIN))
        assert _unregistered(out + engine.advance(T + 22 * MIN)) == [("active", "D1")]  # a new entry is
    finally:
        register.close()
        store.close()
        readings.close()


def test_an_opening_whose_grace_a_restart_interrupted_is_judged_after_it_once(tmp_path: Path) -> None:
    readings = SqliteStore(tmp_path / "archmon.db", tz=site_config(tmp_path).site.tz)
    engine, register, store = _engine(tmp_path)
    try:
        _stored(readings, engine, store, _door(0.0, T - 30 * MIN), _door(1.0, T - 10 * MIN))
        out = engine.advance(T - 5 * MIN) + _stored(readings, engine, store, _door(0.0, T - 4 * MIN))
        assert _unregistered(out) == [("active", "D1"), ("cleared", "D1")]  # judged: the marker says so
        _stored(readings, engine, store, _door(1.0, T), _door(0.0, T + 20 * SEC))  # down before its grace
        store.close()
        engine, store = _restart(tmp_path, readings, T + 5 * MIN)
        out = engine.advance(T + 5 * MIN)
        assert _unregistered(out) == [("active", "D1"), ("cleared", "D1")]  # the interrupted one, not the first
        assert len(_unregistered_alerts(store)) == 1  # the same alert fired again (anti-flap), no second one
        store.close()
        engine, store = _restart(tmp_path, readings, T + 6 * MIN)
        assert _unregistered(engine.advance(T + 6 * MIN)) == []  # judged once
    finally:
        register.close()
        store.close()
        readings.close()


def test_without_a_register_the_rule_judges_nothing(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "archmon.db")
    try:
        engine = AlertEngine(site_config(tmp_path), store)
        assert _unregistered(engine.feed(_door(1.0, T)) + engine.advance(T + 10 * MIN)) == []
    finally:
        store.close()
