"""Engine behaviour not covered by the case folders: notifications, restarts, rolling stability, registry."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import alerts.rules
from alerts.engine import AlertEngine
from alerts.rules import RULES, Rule
from alerts.store import AlertStore
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000


def test_every_rule_module_is_registered() -> None:
    registered = set(RULES.values())
    for info in pkgutil.iter_modules(alerts.rules.__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"alerts.rules.{info.name}")
        own = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Rule) and c.__module__ == module.__name__]
        assert len(own) == 1, f"{info.name}: one rule class per module"
        assert own[0] in registered, f"{info.name}: {own[0].__name__} is not in RULES"
        assert RULES[own[0].name] is own[0], f"{info.name}: registered under another name"


def _engine(tmp_path: Path, **alerts_settings) -> tuple[AlertEngine, AlertStore]:
    config = site_config(tmp_path, alerts=alerts_settings)
    store = AlertStore(tmp_path / "alerts.db")
    return AlertEngine(config, store), store


def test_repeat_and_escalation_until_acknowledged(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, notify={"repeat_s": {"critical": 900}, "escalation_after_s": [1800, 3600]})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("S1", "smoke", 1.0, t0, "A1"))
    engine.advance(t0 + 40 * MIN)
    sent = [(n["transition"], n["level"], (n["created_ms"] - t0) // MIN) for n in store.notifications()
            if n["alert_id"] == 1]
    # at 30 min the escalation is the notification; the repeat due then is not sent twice
    assert sent == [("fired", 0, 0), ("repeat", 0, 15), ("escalate", 1, 30)]
    engine.acknowledge(1, "duty officer", "on my way", t0 + 41 * MIN)
    engine.advance(t0 + 120 * MIN)
    assert len([n for n in store.notifications() if n["alert_id"] == 1]) == 3  # acked: nothing more
    store.close()


def test_restart_after_firing_does_not_renotify(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, notify={"repeat_s": {"critical": 0}, "escalation_after_s": [3600]})
    t0 = SHANGHAI_NOON
    engine.feed(Reading("S1", "smoke", 1.0, t0, "A1"))
    store.close()  # crash: nothing checkpointed
    store = AlertStore(tmp_path / "alerts.db")
    engine = AlertEngine(site_config(tmp_path, alerts={"notify": {"repeat_s": {"critical": 0},
                                                                   "escalation_after_s": [3600]}}), store)
    transitions = engine.feed(Reading("S1", "smoke", 1.0, t0 + MIN, "A1"))
    assert transitions == []
    engine.advance(t0 + 61 * MIN)
    sent = [(n["transition"], n["level"]) for n in store.notifications() if n["alert_id"] == 1]
    assert sent == [("fired", 0), ("escalate", 1)]
    assert [a["rule"] for a in store.alerts() if a["rule"] == "smoke"] == ["smoke"]
    store.close()


def test_rolling_stability_warns_before_the_day_ends(tmp_path: Path) -> None:
    enabled = {name: {"enabled": name == "stability_24h"} for name in RULES}
    engine, store = _engine(tmp_path, rules=enabled)
    t0 = SHANGHAI_NOON
    out = engine.feed(Reading("T1", "temperature", 20.0, t0, "A1"))
    out += engine.feed(Reading("T1", "temperature", 21.5, t0 + 60 * MIN, "A1"))
    assert out == []
    out = engine.feed(Reading("T1", "temperature", 22.5, t0 + 120 * MIN, "A1"))
    assert [(t.rule, t.state, t.value) for t in out] == [("stability_24h", "active", 2.5)]
    store.close()


def test_rule_memory_survives_a_graceful_restart(tmp_path: Path) -> None:
    enabled = {name: {"enabled": name == "stability"} for name in RULES}
    engine, store = _engine(tmp_path, rules=enabled)
    t0 = SHANGHAI_NOON
    engine.feed(Reading("T1", "temperature", 20.0, t0, "A1"))
    engine.checkpoint()
    store.close()
    store = AlertStore(tmp_path / "alerts.db")
    engine = AlertEngine(site_config(tmp_path, alerts={"rules": enabled}), store)
    engine.feed(Reading("T1", "temperature", 23.0, t0 + 60 * MIN, "A1"))
    out = engine.advance(t0 + 13 * 60 * MIN)  # past local midnight
    assert [(t.rule, t.state, t.value) for t in out] == [("stability", "active", 3.0)]
    store.close()


def test_unknown_sensor_is_ignored(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path)
    assert engine.feed(Reading("ghost", "smoke", 1.0, SHANGHAI_NOON, "A1")) == []
    store.close()
