"""What people change through the store, taken by the lifecycle: maintenance windows ended early and alerts
cleared by hand (here or in another process: the CLI, the dashboard). A mixin of
:class:`alerts._lifecycle.Lifecycle`, which owns the phases this changes."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from alerts.model import Condition, Transition
from alerts.store import AlertStore, PendingChanges
from archmon.timeutil import to_iso

if TYPE_CHECKING:
    from alerts._lifecycle import KeyState
    from alerts._requests import NotificationRequests
    from alerts._timers import TimerQueue

__all__ = ["PeopleChanges"]

log = logging.getLogger("alerts._lifecycle")


class PeopleChanges:
    """Hand clears and ended maintenance windows (mixin of ``Lifecycle``)."""

    store: AlertStore
    states: dict[str, KeyState]
    timers: TimerQueue
    requests: NotificationRequests

    if TYPE_CHECKING:  # the lifecycle's own
        def _save(self, ks: KeyState) -> None: ...

        def _reraise(self, ks: KeyState, cond: Condition, ts: int) -> list[Transition]: ...

        def _arm_close(self, alert_id: int, rule: str, cleared_ms: int) -> list[Transition]: ...

    def take_changes(self, changes: PendingChanges, clock_ms: int | None) -> list[Transition]:
        """Take what people changed through the store (here or in another process; the engine's one query,
        ``AlertStore.pending_changes``): maintenance windows ended early, then alerts cleared by hand."""
        for window in changes.windows:
            self._window_ended(window, clock_ms)
        return self._manual_clears(changes.alerts, clock_ms) if changes.alerts else []

    def _window_ended(self, window: dict, clock_ms: int | None) -> None:
        """A maintenance window was ended early: every key it holds is judged again at the new end (a ``hold``
        timer, as when a window expires), and escalations it held back fall due then."""
        self.store.take_ended_window(window["id"])
        room = window["room"]
        end = max(window["end_ms"], clock_ms or window["end_ms"])
        until = self.store.maintenance_until(room, end)  # another window of the room may go on
        release = end if until is None else until
        log.info("maintenance window %s of room %s ended early by %s: silenced keys judged again at %s",
                 window["id"], room, window["ended_by"], to_iso(release))
        for ks in self.states.values():
            if ks.held_until is None or ks.last is None or ks.last.room != room or ks.held_until == release:
                continue
            ks.held_until = release
            self._save(ks)
            self.timers.push(release, "hold", ks.ident)
        self.requests.window_ended(room, end)

    def _manual_clears(self, alerts: list[dict], clock_ms: int | None) -> list[Transition]:
        """Take alerts cleared by hand: re-raise a condition that still holds, otherwise let the cleared alert
        wait for its close time."""
        out: list[Transition] = []
        for alert in alerts:
            self.store.set_manual_clear(alert["id"], False)
            ks = self.states.get(alert["ident"])
            if ks is not None and ks.alert_id == alert["id"] and ks.phase in ("active", "clearing"):
                ks.phase = "normal"
                self._save(ks)
                if ks.last is not None and ks.last.state:
                    log.warning("alert %s cleared by hand while %s still holds: raising it again", alert["id"],
                                ks.ident)
                    now = clock_ms or alert["cleared_ms"]
                    out.extend(self._reraise(ks, dataclasses.replace(ks.last, ts_ms=now), now))
            after = self.store.alert(alert["id"])
            if after is not None and after["state"] == "cleared":
                out.extend(self._arm_close(after["id"], after["rule"], after["cleared_ms"]))
        return out

