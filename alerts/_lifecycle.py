"""The lifecycle of every alert: phases of each ``rule:key`` and the alert rows they drive.

Phase of one ``rule:key`` (persisted in ``alert_conditions``)::

    normal --violated--> pending --delay elapsed--> active --fine past margin--> clearing
       ^                    |                         ^                            |
       |     fine (cancel)  |                         +--------violated/hold-------+
       +--------------------+<--------------------------- clear delay elapsed -----+

Alert row (``alert_alerts``):

- pending → active (delay elapsed; no delay: created active) or → cancelled (ended before the delay and
  never fired; a re-fire that had fired before goes back to cleared);
- active → acknowledged (someone acknowledges) → cleared → closed at the same moment;
- active → cleared → closed (acknowledged, or ``close_after_s`` elapsed without firing again), or
  → pending/active again (the condition returns before the close: same alert).

A cleared alert stays open (and a returning condition re-opens it: anti-flap) until it is acknowledged or
has stayed cleared for ``close_after_s`` (site setting, per rule overridable); a condition that returns
after that opens a new alert. The close time is derived from the persisted ``cleared_ms``, so it survives
a restart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from alerts._lifecycle_changes import PeopleChanges
from alerts._requests import NotificationRequests
from alerts._timers import Timer, TimerQueue
from alerts.messages import title
from alerts.model import Condition, Transition, is_exempt
from alerts.settings import AlertSettings
from alerts.store import AlertStore
from archmon.timeutil import to_iso

__all__ = ["KINDS", "KeyState", "Lifecycle"]

log = logging.getLogger(__name__)

KINDS = ("delay", "clear", "hold", "close")
LATE_NOTE_MS = 60_000
"""A delay served this much (or more) before the clock it is judged at names its device time in the detail."""


@dataclass(slots=True)
class KeyState:
    """Lifecycle state of one ``rule:key``."""

    ident: str
    phase: str = "normal"  # normal | pending | active | clearing
    since_ms: int = 0  # the phase's start on the engine's clock: its timer falls due at since_ms + wait_ms
    wait_ms: int = 0  # delay (pending) or clear delay (clearing) in force
    alert_id: int | None = None
    held_until: int | None = None  # a violation silenced by a maintenance window until then
    last: Condition | None = None
    device_since: int = 0  # the violation's start in its readings' own time (pending, active, clearing)
    device_clear: int = 0  # the clearing's start in its readings' own time (clearing)


class Lifecycle(PeopleChanges):
    """Moves conditions through their phases and alerts through their states; every change is persisted.

    Args:
        store: the alert store.
        settings: the site's alert settings (``close_after_s``).
        language: language of new alerts' titles.
        timers: the engine's timer queue (``delay``, ``clear``, ``hold``, ``close`` timers go there).
        requests: where notification requests go.
        room_names: room id -> ``(name_zh, name_en)`` for titles.
    """

    def __init__(self, store: AlertStore, settings: AlertSettings, language: str, timers: TimerQueue,
                 requests: NotificationRequests, room_names: dict[str, tuple[str, str]] | None = None,
                 tz: ZoneInfo | None = None) -> None:
        self.store = store
        self.tz = tz
        self.room_names = room_names or {}
        self.settings = settings
        self.language = language
        self.timers = timers
        self.requests = requests
        self.states: dict[str, KeyState] = {}
        # rule -> keys whose conditions can change something even when not violated: every key not known
        # to be normal and unsilenced. For any other key a condition that is fine (False) or within the
        # margin (None) changes nothing, so rules may leave it out (see ``Rule.quiet``).
        self._watched: dict[str, set[str]] = {}
        self._firing: dict[str, dict[str, int]] = {}  # rule -> key -> device start, of alerts on now
        self.device_clock = False
        """Judging stored readings at start (the catch-up): the phases they start begin at their device time
        on the engine's clock too (their arrival is not known), so a delay served before the crash fires."""

    # -- entry points ----------------------------------------------------------------------------
    def load(self) -> None:
        """Resume persisted phases, delays, maintenance holds and close times (after a restart)."""
        for row in self.store.conditions():
            last = Condition(**json.loads(row["last"])) if row["last"] else None
            ks = KeyState(row["ident"], row["phase"], row["since_ms"], row["wait_ms"], row["alert_id"],
                          row["held_until"], last)
            started = None if last is None else last.since_ms  # (saved with the violation's device start)
            ks.device_since = ks.since_ms if started is None else started
            ks.device_clear = ks.since_ms
            self.states[ks.ident] = ks
            self._watch(ks)
            if ks.phase == "pending":
                self.timers.push(ks.since_ms + ks.wait_ms, "delay", ks.ident)
            elif ks.phase == "clearing":
                self.timers.push(ks.since_ms + ks.wait_ms, "clear", ks.ident)
            if ks.held_until is not None:
                self.timers.push(ks.held_until, "hold", ks.ident)
        for alert in self.store.cleared_alerts():
            self._arm_close(alert["id"], alert["rule"], alert["cleared_ms"])

    def apply(self, cond: Condition, clock_ms: int | None) -> list[Transition]:
        """Take one condition reported by a rule.

        Its transitions are stamped no earlier than the engine's clock. A delay or clear delay it starts runs
        on the engine's clock from when the condition arrived (a device whose clock lags must not fire on the
        first tick: its next reading, a minute later, must still be able to cancel a one-reading spike), and
        is also served by the readings' own time: a later condition of the key, still violated (or still
        fine, for a clear delay), whose device time is at least the delay after the device time it began,
        fires it at once. A backlog delivered in device order after the clock moved on thus raises what the
        same readings raised live, without trusting the device's clock against the engine's.
        """
        ts = max(cond.ts_ms, clock_ms or cond.ts_ms)
        arrived = cond.ts_ms if self.device_clock else ts
        ks = self.states.get(cond.ident)
        if ks is None:
            if not cond.state:
                return []
            ks = self.states[cond.ident] = KeyState(cond.ident)
            self.watched(cond.rule).add(cond.key)
        out: list[Transition] = []
        if cond.state and cond.since_ms is not None and cond.since_ms != ks.device_since:
            if ks.phase == "pending":
                self._restart(ks, cond.since_ms)
            elif ks.phase in ("active", "clearing"):  # the alert on now is about the run from there (a late
                ks.device_since = cond.since_ms  # fine reading split off its start: raised as a past one)
                self._save(ks)
        if ks.phase == "pending" and self._served(ks, cond):  # violated for the delay in its own time
            out.extend(self._activate(ks, ts, ks.device_since + ks.wait_ms))
        elif ks.phase == "clearing" and self._served(ks, cond):  # fine for the clear delay in its own time
            out.extend(self._clear(ks, ts, ks.device_clear + ks.wait_ms))
        if cond.state is None:
            if ks.phase == "clearing":
                ks.phase = "active"
                self._save(ks)
            return out
        previous, ks.last = ks.last, cond
        if cond.state:
            if ks.phase == "normal":
                since = cond.ts_ms if cond.since_ms is None else cond.since_ms
                return [*out, *self._start(ks, cond, ts, since, arrived - (cond.ts_ms - since))]
            if ks.phase in ("active", "clearing"):
                self._rejudged(ks, previous, cond, ts)
            if ks.phase == "clearing":
                ks.phase = "active"
                self._save(ks)
            return out
        if ks.held_until is not None:
            ks.held_until = None
            self._save(ks)
        if ks.phase == "pending":
            return [*out, *self._cancel(ks, ts)]
        if ks.phase == "active":
            ks.phase, ks.since_ms, ks.wait_ms = "clearing", min(arrived, ts), int(cond.clear_delay_s * 1000)
            ks.device_clear = cond.ts_ms
            if ks.wait_ms == 0:
                return [*out, *self._clear(ks, ts)]
            self._save(ks)
            self.timers.push(ks.since_ms + ks.wait_ms, "clear", ks.ident)
        return out

    @staticmethod
    def _served(ks: KeyState, cond: Condition) -> bool:
        """Whether ``cond``'s device time is at least the phase's wait after the phase began, in device time."""
        began = ks.device_clear if ks.phase == "clearing" else ks.device_since
        return ks.wait_ms > 0 and cond.ts_ms - began >= ks.wait_ms

    def on_timer(self, timer: Timer, clock_ms: int | None = None) -> list[Transition]:
        """A ``delay``, ``clear``, ``hold`` or ``close`` timer fell due (the engine's clock at ``clock_ms``: a
        delay served in device time behind the clock is stamped at the clock, its device time in the detail)."""
        due, kind, ref = timer
        if kind == "close":
            return self._on_close_timer(due, int(ref))
        ks = self.states.get(ref)
        if ks is None:
            return []
        stamp = max(due, clock_ms or due)
        if kind == "delay" and ks.phase == "pending" and ks.since_ms + ks.wait_ms == due:
            return self._activate(ks, stamp, due)
        if kind == "clear" and ks.phase == "clearing" and ks.since_ms + ks.wait_ms == due:
            return self._clear(ks, stamp, due)
        if kind == "hold" and ks.held_until == due:
            ks.held_until = None
            self._save(ks)
            if ks.last is not None and ks.last.state and ks.phase == "normal":
                log.info("maintenance ended for %s with the condition still violated", ks.ident)
                return self._start(ks, ks.last, stamp, stamp, stamp)  # its delay starts at the window's end
            if ks.last is not None and ks.last.state and ks.phase == "pending":
                log.info("maintenance ended for %s, its delay served during the window: firing", ks.ident)
                return self._activate(ks, stamp)
        return []

    # -- phases ----------------------------------------------------------------------------------
    def watched(self, rule: str) -> set[str]:
        """The keys of ``rule`` whose conditions count even when not violated (a live set)."""
        return self._watched.setdefault(rule, set())

    def firing(self, rule: str) -> dict[str, int]:
        """The keys of ``rule`` whose alert is on now (active, clearing), each with the device time its
        violation began (a live map)."""
        return self._firing.setdefault(rule, {})

    def _watch(self, ks: KeyState) -> None:
        """Stop watching a key once it is normal and unsilenced (it is watched from its creation)."""
        rule, _, key = ks.ident.partition(":")
        if ks.phase == "normal" and ks.held_until is None:
            self.watched(rule).discard(key)
        else:
            self.watched(rule).add(key)
        if ks.phase in ("active", "clearing"):
            self.firing(rule)[key] = ks.device_since
        else:
            self.firing(rule).pop(key, None)

    def _save(self, ks: KeyState) -> None:
        self._watch(ks)
        last = ks.last
        if last is not None and last.since_ms != ks.device_since:  # the device start goes with it
            last = dataclasses.replace(last, since_ms=ks.device_since)
        self.store.save_condition(ks.ident, ks.phase, ks.since_ms, ks.wait_ms, ks.alert_id, ks.held_until, last)

    def _hold(self, ks: KeyState, cond: Condition, ts: int) -> bool:
        """Put a violated key on hold if its room is in maintenance at ``ts`` (smoke and leak never are);
        the ``hold`` timer judges it again when the window ends. Returns whether it is held."""
        if is_exempt(cond.rule, cond.severity):
            return False
        until = self.store.maintenance_until(cond.room, ts)
        if until is None:
            return False
        if ks.held_until != until:
            ks.held_until = until
            self._save(ks)
            self.timers.push(until, "hold", ks.ident)
            log.info("%s violated during maintenance of room %s: silenced until %s", ks.ident, cond.room,
                     to_iso(until))
        return True

    def _start(self, ks: KeyState, cond: Condition, ts: int, since: int, clock_since: int) -> list[Transition]:
        """A violation of a normal key that began at ``since`` (its readings' own time; ``clock_since`` on the
        engine's clock), judged at ``ts`` (the clock): pending for its delay, or active at once without one
        (or when its readings show it lasted the delay already)."""
        if self._hold(ks, cond, ts):
            return []
        ks.device_since = since
        since = min(clock_since, ts)
        ks.held_until = None
        delay = int(cond.delay_s * 1000)
        existing = self.store.open_alert(cond.ident)
        out: list[Transition] = []
        if existing is not None and existing["state"] in ("active", "acknowledged"):
            ks.phase, ks.alert_id = "active", existing["id"]  # lifecycle row lost: resume the open alert
            self._save(ks)
            return out
        if existing is not None:  # cleared and not yet closed: the same alert again (anti-flap)
            first = self.store.set_state(existing["id"], "pending", ts, value=cond.value, limit=cond.limit,
                                         detail=cond.detail or None, note="re-fired")
        else:
            first = self.store.create_alert(cond, ts, "pending", title(cond, self.language, self.room_names))
        ks.alert_id = first.alert
        if delay > 0:  # with no delay the alert goes straight to active: pending is not reported
            out.append(first)
        ks.phase, ks.since_ms, ks.wait_ms = "pending", since, delay
        if delay == 0:
            out.extend(self._activate(ks, ts))
            return out
        if self._served(ks, cond):
            out.extend(self._activate(ks, ts, ks.device_since + delay))
            return out
        self._save(ks)
        self.timers.push(since + delay, "delay", ks.ident)
        return out

    def _restart(self, ks: KeyState, since: int) -> None:
        """A late reading moved the start of a pending violation to ``since`` (device time): its delay runs
        from there, the timer on the engine's clock moved by as much (a timer at the new end; the old one
        finds the key changed and does nothing)."""
        log.info("%s: a late reading moved the violation's start to %s; its delay runs from there", ks.ident,
                 to_iso(since, self.tz))
        ks.since_ms += since - ks.device_since
        ks.device_since = since
        self._save(ks)
        self.timers.push(since + ks.wait_ms, "delay", ks.ident)

    def _rejudged(self, ks: KeyState, previous: Condition | None, cond: Condition, ts: int) -> None:
        """Still violated, judged on something new (another day, offline after silent): update the alert."""
        if ks.alert_id is None or not cond.detail or (previous is not None and previous.detail == cond.detail):
            return
        self.store.update_judgement(ks.alert_id, ts, value=cond.value, limit=cond.limit, detail=cond.detail)

    def _reraise(self, ks: KeyState, cond: Condition, ts: int) -> list[Transition]:
        """An alert cleared by hand while its condition still holds: its delay was served already, so it is
        active again at once (with its ``fired`` request), unless a maintenance window holds it."""
        assert ks.alert_id is not None
        if self._hold(ks, cond, ts):
            return []
        ks.held_until = None
        ks.phase, ks.since_ms, ks.wait_ms = "active", ts, 0
        self._save(ks)
        transition = self.store.set_state(ks.alert_id, "active", ts, value=cond.value, limit=cond.limit,
                                          detail=cond.detail or None,
                                          note="cleared by hand while the condition holds: raised again")
        self.requests.fired(transition)
        return [transition]

    def _activate(self, ks: KeyState, ts: int, due: int | None = None) -> list[Transition]:
        """The delay of a pending key is served (at ``due``, device time; judged at ``ts``): fire, unless a
        maintenance window holds it (then the ``hold`` timer fires it at the window's end if it is still
        violated)."""
        assert ks.alert_id is not None and ks.last is not None
        if self._hold(ks, ks.last, ts):
            return []
        ks.held_until = None
        ks.phase = "active"
        self._save(ks)
        transition = self.store.set_state(ks.alert_id, "active", ts, value=ks.last.value, limit=ks.last.limit,
                                          detail=self._detail(ks.last, ts, due))
        self.requests.fired(transition)
        return [transition]

    def _cancel(self, ks: KeyState, ts: int) -> list[Transition]:
        assert ks.alert_id is not None and ks.last is not None
        alert = self.store.alert(ks.alert_id)
        back = "cleared" if alert and alert["fire_count"] > 0 else "cancelled"
        ks.phase = "normal"
        self._save(ks)
        out = [self.store.set_state(ks.alert_id, back, ts, value=ks.last.value, limit=ks.last.limit,
                                    detail=ks.last.detail or None, note="condition ended before the delay")]
        if back == "cleared":
            out.extend(self._arm_close(ks.alert_id, ks.last.rule, ts))
        return out

    def _clear(self, ks: KeyState, ts: int, due: int | None = None) -> list[Transition]:
        assert ks.alert_id is not None and ks.last is not None
        ks.phase = "normal"
        self._save(ks)
        alert = self.store.alert(ks.alert_id)
        out = [self.store.set_state(ks.alert_id, "cleared", ts, value=ks.last.value, limit=ks.last.limit,
                                    detail=self._detail(ks.last, ts, due))]
        acknowledged = alert is not None and alert["state"] == "acknowledged"
        if acknowledged:
            out.append(self.store.set_state(ks.alert_id, "closed", ts, note="cleared after acknowledgement"))
        self.requests.request(out[0], "recovered")
        if not acknowledged:
            out.extend(self._arm_close(ks.alert_id, ks.last.rule, ts))
        return out

    def _detail(self, cond: Condition, ts: int, due: int | None) -> str | None:
        """The condition's detail, with the device time a delay was served at when that is well behind the
        clock the transition is stamped with (a backlog judged after the clock moved on)."""
        if due is None or ts - due < LATE_NOTE_MS:
            return cond.detail or None
        when = f"device time {to_iso(due, self.tz)}"
        return f"{cond.detail} ({when})" if cond.detail else when

    # -- closing ---------------------------------------------------------------------------------
    def _arm_close(self, alert_id: int, rule: str, cleared_ms: int) -> list[Transition]:
        """An alert is cleared since ``cleared_ms``: close it now if its rule says 0 s, else arm the timer."""
        wait = self.settings.close_after_ms(rule)
        if wait == 0:
            return self._on_close_timer(cleared_ms, alert_id)
        self.timers.push(cleared_ms + wait, "close", str(alert_id))
        return []

    def _on_close_timer(self, due: int, alert_id: int) -> list[Transition]:
        alert = self.store.alert(alert_id)
        if alert is None or alert["state"] != "cleared":
            return []  # closed by an acknowledgement, or fired again
        wait = self.settings.close_after_ms(alert["rule"])
        if alert["cleared_ms"] + wait > due:
            return []  # cleared again since this timer was armed: a later timer closes it
        return [self.store.set_state(alert_id, "closed", due, note=f"cleared for {wait / 1000:g} s")]
