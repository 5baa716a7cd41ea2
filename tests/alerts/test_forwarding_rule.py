"""The ``forwarding`` rule (a polled-health rule like ``channel`` and ``actuator``): a backlog over the warning
level raises one alert per target, the outbox reaching its bound is reported again with detail ``full``, a
target gone from the configuration while its alert was open is cleared, and a reload keeps what was reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alerts.engine import AlertEngine
from alerts.rules.forwarding import ForwardingRule
from alerts.store import AlertStore
from tests.alerts.helpers import SHANGHAI_NOON, site_config


@dataclass
class Health:
    target: str
    rows: int
    backlog: bool = False
    full: bool = False
    detail: str = ""
    refused: int = 0


@dataclass
class Forwarding:
    healths: list[Health]

    def forward_health(self) -> list[Health]:
        return list(self.healths)


def test_backlog_then_full_then_target_removed(tmp_path: Path) -> None:
    config = site_config(tmp_path, alerts={"rules": {"stale": {"enabled": False}}})
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(config, store)
    try:
        [rule] = [r for r in engine.rules if isinstance(r, ForwardingRule)]
        engine.advance(SHANGHAI_NOON)
        forwarding = Forwarding([Health("influxdb", 10)])
        rule.attach(forwarding)
        assert engine.advance(SHANGHAI_NOON + 5_000) == []  # under the warning level: nothing to say
        forwarding.healths[0] = Health("influxdb", 50_000, backlog=True)
        out = engine.advance(SHANGHAI_NOON + 10_000)
        assert [(t.rule, t.sensor, t.room, t.state) for t in out] == [("forwarding", "influxdb", "", "active")]
        forwarding.healths[0] = Health("influxdb", 60_000, backlog=True)
        assert engine.advance(SHANGHAI_NOON + 15_000) == []  # more rows, same state: no news
        forwarding.healths[0] = Health("influxdb", 100_000, backlog=True, full=True)
        engine.advance(SHANGHAI_NOON + 20_000)
        alert = store.open_alert("forwarding:influxdb")
        assert alert is not None
        assert alert["detail"] == "full"  # the bound reached is news although the alert was already open
        renewed = AlertEngine(config, store, series=engine.series)  # a reload
        renewed.take_over(engine)
        [again] = [r for r in renewed.rules if isinstance(r, ForwardingRule)]
        assert again.source is forwarding
        assert renewed.advance(SHANGHAI_NOON + 25_000) == []  # what was reported is kept: nothing repeated
        forwarding.healths.clear()  # forwarding switched off by the reload's configuration
        out = renewed.advance(SHANGHAI_NOON + 30_000)
        assert [(t.sensor, t.state) for t in out][:1] == [("influxdb", "cleared")]
    finally:
        store.close()


def test_points_refused_in_the_last_hour_raise_it_without_a_backlog_and_it_clears_after(tmp_path: Path) -> None:
    config = site_config(tmp_path, alerts={"rules": {"stale": {"enabled": False}}})
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(config, store)
    try:
        [rule] = [r for r in engine.rules if isinstance(r, ForwardingRule)]
        engine.advance(SHANGHAI_NOON)
        forwarding = Forwarding([Health("influxdb", 0, refused=2)])
        rule.attach(forwarding)
        out = engine.advance(SHANGHAI_NOON + 5_000)
        assert [(t.sensor, t.state) for t in out] == [("influxdb", "active")]
        alert = store.open_alert("forwarding:influxdb")
        assert alert is not None and alert["detail"] == "refused"
        forwarding.healths[0] = Health("influxdb", 0)  # an hour on, nothing refused since
        out = engine.advance(SHANGHAI_NOON + 10_000)
        assert [(t.sensor, t.state) for t in out][:1] == [("influxdb", "cleared")]
    finally:
        store.close()
