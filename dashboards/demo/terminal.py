"""What ``archmon demo`` shows on the terminal: the dashboard's address and password first, the history's
progress on one line, the live script, then a live one-line summary with every alert on a line of its own.

On a terminal the summary and the progress rewrite one line (``\\r``, cut to the terminal's width); into a
file or a pipe they are printed as lines, the summary every :data:`PIPED_SUMMARY_S` seconds. Logs do not come
here: they go to the demo's log file.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from alerts.messages import SEVERITY_NAMES, STATE_NAMES
from alerts.model import Transition
from archmon.timeutil import local_text
from collector.backfill import BackfillResult
from dashboards.demo.scenario import LiveScenario, ScriptedEvent

__all__ = ["PIPED_SUMMARY_S", "SHOWN_STATES", "Terminal", "alert_line", "summary_line"]

PIPED_SUMMARY_S = 10.0
SHOWN_STATES = frozenset({"active", "acknowledged", "cleared"})
"""Alert transitions shown (pending, cancelled and closed stay on the dashboard)."""
WIDTH = 200
"""Longest rewritten line when the terminal's width is unknown (it is cut to the terminal's width)."""


def summary_line(report: dict[str, Any], tz: ZoneInfo) -> str:
    """The live one-line summary of a status report (``dashboards.status.status_report``)."""
    parts = []
    for s in report["sensors"]:
        v = s["values"]
        if "temperature" in v:
            text = f"{v['temperature']:.1f}°C/{v.get('humidity', float('nan')):.0f}%"
        elif "door" in v:
            text = "OPEN" if v["door"] else "closed"
        elif "smoke" in v:
            text = "SMOKE" if v["smoke"] else "ok"
        elif "leak" in v:
            text = "LEAK" if v["leak"] else "ok"
        else:
            text = "-"
        parts.append(f"{s['sensor']} {text}")
    counters = report["counters"]
    open_alerts = sum((report.get("alerts") or {}).get("open", {}).values())
    now = report.get("now_local") or ""
    clock = now[11:19] + now[23:]  # 08:00:03+08:00: the site's time with its offset
    return (f"[{clock}] stored {counters.get('stored', 0)} quarantined {counters.get('quarantined', 0)} "
            f"alerts open {open_alerts} | " + " | ".join(parts))


def alert_line(transition: Transition, tz: ZoneInfo) -> str:
    """One alert transition as a line: time, state, severity, title, value and limit."""
    state_zh, state_en = STATE_NAMES.get(transition.state, (transition.state, transition.state))
    severity = SEVERITY_NAMES.get(transition.severity, ("", transition.severity))[1]
    word = "ALERT" if transition.state == "active" else state_en
    value = "" if transition.value is None else f" value {transition.value:g}"
    limit = "" if transition.limit is None else f" limit {transition.limit:g}"
    by = f" by {transition.by}" if transition.by else ""
    return (f"[{local_text(transition.ts_ms, tz, date=False)}] {word} {state_zh} #{transition.alert} {severity} "
            f"{transition.rule}: {transition.title}{value}{limit}{by}")


class Terminal:
    """The demo's terminal output.

    Args:
        tz: the site's zone (every time shown in it, with its offset).
        out: where to write (stdout).
    """

    def __init__(self, tz: ZoneInfo, out: TextIO | None = None) -> None:
        self.tz = tz
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.width = shutil.get_terminal_size((WIDTH + 1, 24)).columns - 1 if self.tty else WIDTH
        self._open_line = False
        self._quarter = 0
        self._summary_at = 0.0

    def line(self, text: str) -> None:
        """A line that stays (the summary line, if shown, is rewritten after it)."""
        if self._open_line:
            self.out.write("\r" + " " * self.width + "\r")
            self._open_line = False
        self.out.write(text + "\n")
        self.out.flush()

    def _rewrite(self, text: str) -> None:
        self.out.write("\r" + text[: self.width].ljust(self.width))  # one row: \r cannot climb back a wrap
        self.out.flush()
        self._open_line = True

    def progress(self, done: BackfillResult, total: int) -> None:
        """The history's progress: one rewritten line on a terminal, a line per quarter otherwise."""
        share = min(100, 100 * done.offered // max(1, total))
        text = f"history: {share:3d} % ({done.offered:,} readings, {done.stored:,} stored)"
        if self.tty:
            self._rewrite(text)
        elif share // 25 > self._quarter:
            self._quarter = share // 25
            self.line(text)

    def summary(self, report: dict[str, Any], *, final: bool = False) -> None:
        """The live one-line summary."""
        text = summary_line(report, self.tz)
        if self.tty and not final:
            self._rewrite(text)
            return
        now = time.monotonic()
        if final or now - self._summary_at >= PIPED_SUMMARY_S:
            self._summary_at = now
            self.line(text)

    def alert(self, transition: Transition) -> None:
        """An alert transition, if it is one people watch here (:data:`SHOWN_STATES`)."""
        if transition.state in SHOWN_STATES:
            self.line(alert_line(transition, self.tz))

    def event(self, event: ScriptedEvent, scenario: LiveScenario) -> None:
        """A scripted event that starts now."""
        at = local_text(scenario.event_time(event), self.tz, date=False)
        expect = f" (expect: {', '.join(event.alerts)})" if event.alerts else ""
        self.line(f"[{at}] scripted: {event.text}{expect}")

    def script(self, scenario: LiveScenario) -> None:
        """The live part's schedule, once at its start."""
        start = local_text(scenario.start_ms, self.tz, date=False)
        self.line(f"live from {start}, in real time; scripted events:")
        for event in scenario.script:
            at = local_text(scenario.event_time(event), self.tz, date=False)
            then = f" → {', '.join(event.alerts)}" if event.alerts else ""
            after = f"{event.at_s:g} s" if event.at_s < 60 else f"{event.at_s / 60:g} min"
            self.line(f"  +{after} ({at}) {event.text}{then}")
