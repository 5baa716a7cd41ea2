"""The demo's live part: real time, the history's curves going on, and four scripted events minutes apart.

Times are counted from the live start (when the collector starts, right after the history is written):

==========  ==========================================================================================
 +2 min     纸质档案库 paper store: the dehumidifier fails; RH climbs 10 %RH over 6 minutes and stays up for
            about 20 minutes. A swing over 5 %RH within an hour raises the rate-of-change alert and the
            24 h range over 5 %RH the 24 h-stability alert as soon as they happen; RH above 60 % for
            longer than the room's 5-minute delay raises the humidity-high alert (+9 to +12 min), cleared
            10 minutes after RH is back under 58 % (about +34 min). The rate alert clears once the swing has
            left its 1-hour window, the 24 h-stability one a day later.
 +5 min     胶片母片库 film store: a registered visit (the session is opened 20 s before the door) leaves the
            door open when the session is closed at +7 min: the door-open alert after its 10 minutes
            (+15 min); the door is shut at +19 min.
 +8 min     paper store: the smoke detector's test button is pressed for 30 s: the smoke alert (critical)
            at once, cleared when the detector is quiet again.
 +11 min    paper store: somebody enters without registering (door open 3 minutes): the unregistered-entry
            alert once the 60 s grace is over, cleared when the door closes.
==========  ==========================================================================================

The controlled basement store (:mod:`dashboards.demo.controlled`) has two events of its own, which raise no
alert: at +10 s the keeper ends the override of the filter change and the loop switches the dehumidifier on
(RH rose above 53 % while it was off); at +45 min humid air comes in for half an hour and RH rises until
the dehumidifier switches on again.

Outside working hours (08:30-17:30 on weekdays, the site's defaults) the two openings also raise the
door-after-hours alert, as they would in a real store. Visits of the doors' schedule (working hours, a few
a day) go on during the live part, each registered by the keepers (``sessions``), except during the
script. Nothing runs faster than the clock: every alert is raised at the real time its condition holds.

:class:`LiveScenario` is pure apart from :meth:`step`, which does what is due at the time it is given
(opens and closes the access sessions, returns the events that started), so a test drives it at any
times without waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from zoneinfo import ZoneInfo

from alerts.access import AccessRegister
from dashboards.demo.controlled import BACK_S, LIVE_SPELL_S
from dashboards.demo.history import SessionPlan, history_sessions
from dashboards.demo.rooms import Span
from dashboards.demo.site import DemoSite
from devices.simulators.climate import Excursion

__all__ = ["SCRIPT", "LiveScenario", "ScriptedEvent"]

_MINUTE = 60_000
LIVE_SESSIONS_DAYS = 7


class ScriptedEvent(NamedTuple):
    """One event of the live script.

    Attributes:
        at_s: seconds after the live start.
        key: ``rh_excursion``, ``door_left_open``, ``smoke_test`` or ``unregistered_entry``.
        room: where it happens.
        text: what happens, in Chinese and English.
        alerts: the alerts it raises (rule names, in the order they fire).
    """

    at_s: float
    key: str
    room: str
    text: str
    alerts: tuple[str, ...]


SCRIPT: tuple[ScriptedEvent, ...] = (
    ScriptedEvent(BACK_S, "dehumidifier_back", "annex",
                  "地下档案库更换滤网完毕，去湿机恢复自动控制并开启 / basement store: filter changed, the dehumidifier "
                  "is back under automatic control and switches on", ()),
    ScriptedEvent(120, "rh_excursion", "paper",
                  "纸质档案库除湿机故障，湿度上升 / paper store: the dehumidifier fails, RH rises",
                  ("rate", "stability_24h", "band")),
    ScriptedEvent(300, "door_left_open", "film",
                  "胶片母片库登记入库后门未关 / film store: a registered visit leaves the door open", ("door_open",)),
    ScriptedEvent(480, "smoke_test", "paper", "纸质档案库烟感测试 30 秒 / paper store: smoke detector test, 30 s",
                  ("smoke",)),
    ScriptedEvent(660, "unregistered_entry", "paper", "纸质档案库未登记入库 / paper store: entered without registering",
                  ("unregistered_entry",)),
    ScriptedEvent(LIVE_SPELL_S, "humid_spell", "annex",
                  "地下档案库潮湿空气进入，湿度上升，去湿机自动开启 / basement store: humid air comes in, RH rises, "
                  "the dehumidifier switches on", ()),
)
"""The live script (see the module docstring)."""

SCRIPT_MS = 45 * _MINUTE
"""How long after the live start the script's events last (the door, smoke, entry and humidity-high alerts are
cleared by then; the rate and 24 h-stability ones once the excursion has left their 1 h and 24 h windows)."""


class LiveScenario:
    """The site from the live start on, with the scripted events (module docstring) placed in real time.

    Args:
        site: the site the history used (its curves go on).
        start_ms: the live start (UTC epoch ms).
        tz: the site's zone (approval numbers of the sessions).
    """

    def __init__(self, site: DemoSite, start_ms: int, tz: ZoneInfo) -> None:
        self.start_ms = start_ms
        self.script = SCRIPT
        at = {event.key: start_ms + int(event.at_s * 1000) for event in SCRIPT}
        quiet = (Span(start_ms - 15 * _MINUTE, start_ms + SCRIPT_MS),)
        rh = at["rh_excursion"]
        film_open = Span(at["door_left_open"], at["door_left_open"] + 14 * _MINUTE)
        paper_open = Span(at["unregistered_entry"], at["unregistered_entry"] + 3 * _MINUTE)
        smoke = Span(at["smoke_test"], at["smoke_test"] + 30_000)
        self.site = site.replace(
            rooms={"paper": site.rooms["paper"].with_excursions(
                [Excursion(rh, rh + 25 * _MINUTE, 6 * _MINUTE, 0.3, 10.0, "dehumidifier_failure")])},
            doors={"film": site.doors["film"].with_openings([film_open], quiet=quiet),
                   "paper": site.doors["paper"].with_openings([paper_open], quiet=quiet)},
            smoke={"paper": site.smoke["paper"].with_spans([smoke])},
        )
        visit = SessionPlan("film", film_open.start_ms - 20_000, film_open.start_ms + 2 * _MINUTE, ("王芳", "刘洋"),
                            "档案整理入库 file new records", "DA-LIVE-01", "王芳")
        scheduled = history_sessions(self.site, start_ms, start_ms + LIVE_SESSIONS_DAYS * 86_400_000, tz,
                                     unregistered=0.0, skip=frozenset({film_open, paper_open}))
        self.sessions: list[SessionPlan] = sorted([visit, *scheduled], key=lambda plan: plan.open_ms)
        """The access sessions the keepers register during the live part (the script's visit included)."""
        self._announced = 0
        self._opened: dict[SessionPlan, int] = {}
        self._closed: set[SessionPlan] = set()

    def values(self, room: str, ts_ms: int) -> dict[str, float]:
        """What the room's sensors read at ``ts_ms``."""
        return self.site.values(room, ts_ms)

    def event_time(self, event: ScriptedEvent) -> int:
        """When ``event`` starts (UTC epoch ms)."""
        return self.start_ms + int(event.at_s * 1000)

    def step(self, now_ms: int, register: AccessRegister | None = None) -> list[ScriptedEvent]:
        """Do what is due at ``now_ms``: open and close the access sessions due (each once, stamped with its
        own time), and return the scripted events that started since the last call."""
        if register is not None:
            for plan in self.sessions:
                if plan.open_ms > now_ms:
                    break
                if plan not in self._opened and plan not in self._closed:
                    session = register.open_session(plan.room, plan.people, plan.purpose, plan.approval, plan.by,
                                                    ts_ms=plan.open_ms)
                    self._opened[plan] = session.id
            for plan in [p for p in self._opened if p.close_ms <= now_ms]:
                register.close_session(self._opened.pop(plan), plan.by, ts_ms=plan.close_ms)
                self._closed.add(plan)
        started: list[ScriptedEvent] = []
        while self._announced < len(self.script) and self.event_time(self.script[self._announced]) <= now_ms:
            started.append(self.script[self._announced])
            self._announced += 1
        return started

    def upcoming(self) -> Sequence[ScriptedEvent]:
        """The events not started yet."""
        return self.script[self._announced:]
