"""What people do through the live engine: acknowledge, clear by hand, open and end maintenance windows, and
the one query that takes what they changed through the store (here or from another process).

A mixin of :class:`~alerts.engine.AlertEngine`; the store-only versions (the CLI in another process) are in
:mod:`alerts.actions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alerts._steps import Budget
from alerts.actions import acknowledge, clear_by_hand
from alerts.model import Transition
from alerts.rules.calibration_due import CalibrationDueRule

if TYPE_CHECKING:
    from alerts._lifecycle import Lifecycle
    from alerts.rules.base import Rule
    from alerts.store import AlertStore

__all__ = ["PeopleActions"]


class PeopleActions:
    """Acknowledge, clear, maintenance on the engine's store and clock (mixin of ``AlertEngine``)."""

    store: AlertStore
    lifecycle: Lifecycle
    _clock: int | None
    rules: list[Rule]

    if TYPE_CHECKING:  # the engine's own
        def advance(self, now_ms: int, *, budget: int | None = None) -> list[Transition]: ...

        def _run_due(self, now_ms: int, budget: Budget) -> list[Transition]: ...

    def acknowledge(self, alert_id: int, by: str, comment: str, now_ms: int | None = None) -> list[Transition]:
        """Acknowledge an alert: active → acknowledged, cleared → closed; the comment is appended.

        Raises:
            KeyError: unknown alert id.
            ValueError: the alert is closed or was cancelled.
        """
        return acknowledge(self.store, alert_id, by, comment, self._now(now_ms))

    def clear(self, alert_id: int, by: str, comment: str, now_ms: int | None = None) -> list[Transition]:
        """Clear an alert by hand at ``now_ms`` (timers due until then run first). If its condition still
        holds it is raised again at once (its delay was served already).

        Raises:
            KeyError: unknown alert id.
            ValueError: the alert is not active or acknowledged.
        """
        ts = self._now(now_ms)
        out = self.advance(ts)  # the clock moves to the clear first: a re-raise is stamped with it, not before
        out.extend(clear_by_hand(self.store, alert_id, by, comment, ts))
        out.extend(self._take_changes())
        return out

    def maintenance(self, room: str, until_ms: int, reason: str, by: str, start_ms: int | None = None) -> int:
        """Open a maintenance window for a room (silences its non-critical rules); returns its id."""
        ts = self._now(start_ms)
        return self.store.add_maintenance(room, ts, until_ms, reason, by, ts)

    def end_maintenance(self, window_id: int, by: str, comment: str = "",
                        now_ms: int | None = None) -> list[Transition]:
        """End a maintenance window now (audited): conditions it silenced and still violated are judged as
        when a window expires, and escalations it held back are sent.

        Raises:
            KeyError: unknown window.
            ValueError: no name, or the window is over already.
        """
        ts = self._now(now_ms)
        self.store.end_maintenance(window_id, by, comment, ts)
        out = self.advance(max(ts, self._clock or ts))
        out.extend(self._run_due(self._clock or ts, Budget(None)))  # the keys it released, at its end
        return out

    def _take_changes(self) -> list[Transition]:
        """What people changed through the store, in one query: windows ended early and alerts cleared by
        hand (the lifecycle's), calibration records added (the calibration-due rule's)."""
        changes = self.store.pending_changes()
        out = self.lifecycle.take_changes(changes, self._clock)
        if changes.calibrations:
            records = self.store.calibration_records_by_id(changes.calibrations)
            for rule in self.rules:
                if isinstance(rule, CalibrationDueRule):
                    for cond in rule.on_records(records, self._clock or 0):
                        out.extend(self.lifecycle.apply(cond, self._clock))
            self.store.take_calibrations(changes.calibrations)
        return out

    # -- time ------------------------------------------------------------------------------------
    def _now(self, ts: int | None) -> int:
        if ts is not None:
            return ts
        if self._clock is None:
            raise RuntimeError("engine time unknown: pass now_ms")
        return self._clock

