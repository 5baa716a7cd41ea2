"""Judging the demo's history: the real alert engine in simulated time, on the readings as they are stored.

:class:`HistoryJudge` is ``collector.backfill``'s ``on_stored`` listener. It feeds what each batch stored to
an :class:`~alerts.engine.AlertEngine` on the demo's database (the alert store the live service uses), in
time order, and in between does what people did at their times (``alerts.replay`` runs the engine the same
way, without a wall clock): the keepers open and close access sessions (the unregistered-entry rule looks
them up), and acknowledge most alerts with a comment, 12-40 minutes after they fire in working hours or
the next working morning otherwise (one in five is left for its close time, and so are those of the last
hour, still waiting for somebody when the demo goes live). Every transition is stored
with its own time, so the alerts page, the room charts' alert markers and the audit log have a month of
content.

Run it on a fresh database only, before the live service starts: the live ``AlertService`` then loads
what it left (open alerts, lifecycle phases, rule markers such as the last day judged and the last door
opening judged) and rebuilds its windows from the stored readings, as after any restart, so nothing is
judged twice and nothing it raised is raised again.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple

from alerts.access import AccessRegister, attach_register
from alerts.engine import AlertEngine
from alerts.model import Transition
from alerts.store import AlertStore
from archmon.config import Config
from archmon.domain import Reading
from collector.records import WriteResult
from dashboards.demo.history import SessionPlan, stable_rng

__all__ = ["ACK_COMMENTS", "HistoryJudge"]

log = logging.getLogger(__name__)

FLUSH_MS = 10 * 60_000
"""Readings judged together at most span this much simulated time (less than the shortest wait for an ack)."""
ACK_MIN_MS = 12 * 60_000
UNATTENDED_MS = 3_600_000
ACK_COMMENTS = {
    "band": "已通知空调维保，正在处理 / HVAC service called, being handled",
    "rate": "温湿度变化过快，已检查空调 / fast change, HVAC checked",
    "stability": "当日波动超限，已记录原因 / the day's fluctuation exceeded the limit, cause recorded",
    "stability_24h": "24 小时波动超限，已检查 / 24 h fluctuation over the limit, checked",
    "smoke": "月度烟感测试 / monthly smoke detector test",
    "unregistered_entry": "已补登记，提醒先登记后入库 / registered afterwards, reminded to register first",
    "door_open": "已关门 / door closed",
}
"""What the keeper writes when acknowledging an alert of each rule (others are left alone)."""


class _Action(NamedTuple):
    ts_ms: int
    seq: int
    kind: str  # open, close, ack
    plan: SessionPlan | None = None
    alert: int = 0


class HistoryJudge:
    """Judges stored history in simulated time (see the module docstring).

    Args:
        config: the demo configuration.
        db_path: the demo's database (fresh: no alert judged there yet).
        sessions: the access sessions to register, with their times.
        end_ms: the end of the history (nobody acknowledges an alert in its last hour).
        keeper: who acknowledges alerts.
    """

    def __init__(self, config: Config, db_path: Path, sessions: Sequence[SessionPlan], *, end_ms: int,
                 keeper: str = "张伟") -> None:
        self.config = config
        self.keeper = keeper
        self.end_ms = end_ms
        self.store = AlertStore(db_path)
        self.engine = AlertEngine(config, self.store)
        self.register = AccessRegister(db_path)
        attach_register(self.engine, self.register)
        self.transitions: list[Transition] = []
        self.acknowledged = 0
        self._seq = itertools.count()
        self._actions: list[_Action] = []
        for plan in sessions:
            self._push(plan.open_ms, "open", plan=plan)
            self._push(plan.close_ms, "close", plan=plan)
        self._sessions: dict[SessionPlan, int] = {}
        self._pending: list[Reading] = []

    def _push(self, ts_ms: int, kind: str, *, plan: SessionPlan | None = None, alert: int = 0) -> None:
        heapq.heappush(self._actions, _Action(ts_ms, next(self._seq), kind, plan, alert))

    def __call__(self, written: WriteResult) -> None:
        """``on_stored``: judge what a batch stored (in the order given: time order)."""
        for reading in written.stored:
            self.feed(reading)

    def feed(self, reading: Reading) -> None:
        """Judge one reading after every action due before it."""
        if self._actions and self._actions[0].ts_ms <= reading.ts_ms:
            self._flush()
            while self._actions and self._actions[0].ts_ms <= reading.ts_ms:
                self._act(heapq.heappop(self._actions))
        elif self._pending and reading.ts_ms - self._pending[0].ts_ms >= FLUSH_MS:
            self._flush()
        self._pending.append(reading)

    def finish(self, end_ms: int) -> list[Transition]:
        """Judge what is left, do the actions due until ``end_ms``, run the timers to it; close the stores.

        Returns:
            Every transition of the history, in order.
        """
        try:
            self._flush()
            while self._actions and self._actions[0].ts_ms <= end_ms:
                self._act(heapq.heappop(self._actions))
            with self.store.batch():
                self._keep(self.engine.advance(end_ms))
        finally:
            self.close()
        log.info("demo history judged: %d alert transition(s), %d acknowledged", len(self.transitions),
                 self.acknowledged)
        return self.transitions

    def close(self) -> None:
        """Close the alert store and the register (idempotent)."""
        self.register.close()
        self.store.close()

    def _flush(self) -> None:
        if not self._pending:
            return
        readings, self._pending = self._pending, []
        with self.store.batch():
            self._keep(self.engine.feed_many(readings))

    def _act(self, action: _Action) -> None:
        with self.store.batch():
            self._keep(self.engine.advance(action.ts_ms))
        plan = action.plan
        if action.kind == "open" and plan is not None:
            session = self.register.open_session(plan.room, plan.people, plan.purpose, plan.approval, plan.by,
                                                 ts_ms=plan.open_ms)
            self._sessions[plan] = session.id
        elif action.kind == "close" and plan is not None and plan in self._sessions:
            self.register.close_session(self._sessions.pop(plan), plan.by, ts_ms=plan.close_ms)
        elif action.kind == "ack":
            try:
                comment = ACK_COMMENTS[self._rule_of(action.alert)]
                self._keep(self.engine.acknowledge(action.alert, self.keeper, comment, action.ts_ms))
                self.acknowledged += 1
            except ValueError:  # closed by itself meanwhile (cleared, nobody acknowledged within its close time)
                pass

    def _rule_of(self, alert_id: int) -> str:
        alert = self.store.alert(alert_id)
        return "" if alert is None else str(alert["rule"])

    def _keep(self, transitions: list[Transition]) -> None:
        self.transitions.extend(transitions)
        for transition in transitions:
            if transition.state == "active" and transition.rule in ACK_COMMENTS:
                when = self._ack_time(transition)
                if when is not None and when < self.end_ms - UNATTENDED_MS:
                    self._push(when, "ack", alert=transition.alert)

    def _ack_time(self, transition: Transition) -> int | None:
        """When the keeper acknowledges an alert that fired at its time (None: left for its close time)."""
        rng = stable_rng("ack", transition.alert, transition.ts_ms)
        if rng.random() < 0.2:
            return None
        hours = self.engine.settings.working_hours
        tz = self.config.site.tz
        fired = datetime.fromtimestamp(transition.ts_ms / 1000, tz)
        if hours.is_working_time(fired):
            return transition.ts_ms + ACK_MIN_MS + rng.randint(0, 28) * 60_000
        day = fired.date() + timedelta(days=0 if fired.time() < hours.start else 1)
        for _ in range(10):  # the next working morning
            morning = datetime.combine(day, time(8, 40), tzinfo=tz) + timedelta(minutes=rng.randint(0, 20))
            if hours.is_working_time(morning):
                return max(int(morning.timestamp() * 1000), transition.ts_ms + ACK_MIN_MS)
            day += timedelta(days=1)
        return None
