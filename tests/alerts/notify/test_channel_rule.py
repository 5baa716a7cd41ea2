"""The ``channel`` rule: a channel that is down raises "notification channel down"; back up, it clears."""

from __future__ import annotations

from pathlib import Path

from alerts.engine import AlertEngine
from alerts.notify.health import HealthBoard
from alerts.rules.channel import ChannelRule
from alerts.store import AlertStore
from tests.alerts.helpers import SHANGHAI_NOON, site_config


def test_down_fires_once_back_up_clears_and_nothing_without_a_board(tmp_path: Path) -> None:
    config = site_config(tmp_path, alerts={"rules": {"stale": {"enabled": False}}})
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(config, store)
    try:
        [rule] = [r for r in engine.rules if isinstance(r, ChannelRule)]
        engine.advance(SHANGHAI_NOON)
        assert rule.next_due() is None  # no notifier: the rule never looks
        board = HealthBoard({"modem": "gsm_modem", "mail": "smtp"}, down_after_failures=2, down_after_s=60)
        rule.attach(board)
        board.record_send("mail", "accepted", "250 ok", SHANGHAI_NOON)
        for i in range(2):
            board.record_send("modem", "failed", "+CMS ERROR: 331", SHANGHAI_NOON + i)
        out = engine.advance(SHANGHAI_NOON + 5_000)
        assert [(t.rule, t.sensor, t.state, t.room) for t in out] == [("channel", "modem", "active", "")]
        assert out[0].detail == "+CMS ERROR: 331" and out[0].severity == "major"
        assert engine.advance(SHANGHAI_NOON + 60_000) == []  # still down: one alert, no news
        board.record_send("modem", "accepted", "+CMGS: 4", SHANGHAI_NOON + 61_000)
        out = engine.advance(SHANGHAI_NOON + 70_000)
        assert [(t.sensor, t.state) for t in out][:1] == [("modem", "cleared")]
        requests = [(n["transition"], n["severity"]) for n in store.notifications()]
        assert requests == [("fired", "major"), ("recovered", "major")]
    finally:
        store.close()


def test_a_check_that_keeps_failing_makes_a_channel_down_after_down_after_s() -> None:
    board = HealthBoard({"modem": "gsm_modem"}, down_after_failures=3, down_after_s=120)
    assert board.record_check("modem", False, "SIM not inserted", {"sim": "not inserted"}, 0).state == "failing"
    assert board.record_check("modem", False, None, {"sim": "not inserted"}, 119_999).state == "failing"
    h = board.record_check("modem", False, None, {}, 120_000)
    assert h.state == "down" and h.detail == "SIM not inserted"
    assert board.record_check("modem", True, None, {"sim": "READY"}, 121_000).state == "ok"
    assert board.record_send("modem", "rate_limited", "x", 123_000).state == "ok"
    # a message that cannot even be built (no phone number) says nothing about the channel
    assert board.record_send("modem", "rejected", "not a phone number", 123_500, channel_fault=False).state == "ok"
