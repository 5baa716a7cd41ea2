"""Data-driven rule cases: readings + config + actions → expected transitions (see casefiles.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.store import AlertStore
from tests.alerts.casefiles import as_compared, load_cases

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, tmp_path: Path) -> None:
    got = as_compared(case.run(tmp_path / "alerts.db"), case.tz)
    expected = case.expected()
    picked = [{key: g.get(key) for key in e} for g, e in zip(got, expected, strict=False)]
    assert picked == expected[: len(picked)]
    assert len(got) == len(expected), f"{case.name}: got {len(got)} transitions, expected {len(expected)}"


def test_every_rule_has_a_case() -> None:
    from alerts.rules import RULES

    covered = {rule for case in CASES for rule in case.spec.get("rules", [])}
    # the rolling warning is tested in test_engine.py; channel health in tests/alerts/notify/test_channel_rule.py;
    # the forwarding backlog in tests/collector/test_forward.py and tests/archmon/test_forward_faults.py;
    # actuator health in tests/alerts/test_actuator_rule.py (and over real devices in tests/alerts/control/)
    assert set(RULES) - covered <= {"stability_24h", "channel", "forwarding", "actuator"}


def _notifications(db: Path) -> list[dict]:
    store = AlertStore(db)
    try:
        return store.notifications()
    finally:
        store.close()


def test_restart_mid_delay_notifies_once(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "restart_mid_delay")
    case.run(tmp_path / "a.db")
    fired = [n for n in _notifications(tmp_path / "a.db") if n["transition"] == "fired"]
    assert [(n["alert_id"], n["level"]) for n in fired] == [(1, 0)]


def test_maintenance_window_is_audited_and_silences_notifications(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "maintenance_window")
    case.run(tmp_path / "a.db")
    store = AlertStore(tmp_path / "a.db")
    try:
        kinds = [row[0] for row in store.conn.execute("SELECT kind FROM audit_log WHERE kind = 'maintenance'")]
        assert kinds == ["maintenance"]
        # smoke (critical) notified during the window; the band alert only after it, at 11:15
        sent = [(n["alert_id"], n["transition"]) for n in store.notifications()]
        assert (1, "fired") in sent and (2, "fired") in sent
        assert store.verify_audit().ok
    finally:
        store.close()


def test_manual_clear_keeps_comments_append_only(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "manual_clear_persisting")
    case.run(tmp_path / "a.db")
    store = AlertStore(tmp_path / "a.db")
    try:
        comments = [(c["by"], c["comment"]) for c in store.comments(1)]
        assert comments == [("wang", "looks fine to me"), ("li", "dehumidifier switched on")]
        with pytest.raises(Exception, match="append-only"):
            store.conn.execute("UPDATE alert_comments SET comment = 'x'")
    finally:
        store.close()


def test_manual_clear_with_default_delay_fires_again_at_once(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "manual_clear_default_delay")
    case.run(tmp_path / "a.db")
    fired = [n["created_ms"] for n in _notifications(tmp_path / "a.db") if n["transition"] == "fired"]
    assert fired == [1_709_604_000_000, 1_709_604_600_000]  # 5 Mar 10:00 (delay served) and 10:10 (re-raised)


def test_maintenance_holds_a_pending_alert_and_keeps_escalations(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "maintenance_pending")
    case.run(tmp_path / "a.db")
    start, end = 1_709_518_500_000, 1_709_521_200_000  # the window 10:05-11:00
    sent = [(n["alert_id"], n["transition"], n["level"], n["created_ms"]) for n in _notifications(tmp_path / "a.db")]
    assert not [s for s in sent if start <= s[3] < end]  # nothing inside the window
    t1 = [s for s in sent if s[0] == 2]
    assert t1[0] == (2, "fired", 0, end)  # T1's first notice: fired at the window's end, not a repeat
    # T2's level-2 escalation fell due at 10:15, inside the window: sent at its end, not used up
    assert (1, "escalate", 2, end) in sent


def test_transitions_are_append_only_and_judgement_updates_are_audited(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "stability_day_detail")  # 3 Mar fails again: a judgement update
    case.run(tmp_path / "a.db")
    store = AlertStore(tmp_path / "a.db")
    try:
        for sql in ("UPDATE alert_transitions SET note = 'x'", "DELETE FROM alert_transitions"):
            with pytest.raises(Exception, match="append-only"):
                store.conn.execute(sql)
        rows = store.conn.execute("SELECT payload FROM audit_log WHERE kind = 'judgement'")
        judged = [json.loads(r[0]) for r in rows]
        assert [(j["detail"], j["before"]["detail"]) for j in judged] == [("A 2024-03-03", "A 2024-03-02")]
        verdict = store.verify_audit()
        assert verdict.ok and verdict.head == store.conn.execute(
            "SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()[0]
    finally:
        store.close()
