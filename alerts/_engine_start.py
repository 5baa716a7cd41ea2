"""What the engine does at a start: rebuild windows and rule memory from the readings store, then judge what
the store holds that the last run had not judged (the catch-up, :mod:`alerts.catchup`), and readings a stop
ran out of time for. A mixin of :class:`alerts.engine.AlertEngine`."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING

from alerts.catchup import CatchUp, Unjudged, catch_up, judge_stored_late
from alerts.model import HistoryRef, Transition
from alerts.rebuild import ReadingHistory, RebuildReport, rebuild
from archmon.domain import Reading

if TYPE_CHECKING:
    from alerts._series import SeriesTable

__all__ = ["StartUp"]


class StartUp:
    """Rebuild and catch-up (mixin of ``AlertEngine``)."""

    series: SeriesTable
    history: HistoryRef
    unjudged: list[Unjudged]
    _marks: array

    def rebuild(self, history: ReadingHistory, now_ms: int) -> RebuildReport:
        """Rebuild windows and rule memory from the readings store (at start, before the first reading), and
        find the readings it holds that the engine had not judged when it stopped (judge them with
        :meth:`catch_up`).

        Args:
            history: the readings store's read API (``collector.store.SqliteStore`` or
                :class:`alerts.history.MemoryHistory`).
            now_ms: the time of the start.

        Returns:
            What was rebuilt (series, queries, time).
        """
        report = rebuild(self, history, now_ms)
        self._marks = array("q", self.series.judged_saved)
        return report

    def catch_up(self, now_ms: int) -> list[Transition]:
        """Judge the readings :meth:`rebuild` found stored after their series' watermarks, at ``now_ms`` (see
        :mod:`alerts.catchup`); call inside ``store.batch()`` before anything else is judged."""
        pending, self.unjudged = self.unjudged, []
        return catch_up(self, pending, now_ms)

    def start_catch_up(self, now_ms: int) -> CatchUp:
        """Begin judging the readings :meth:`rebuild` found stored after their series' watermarks, in steps
        (``CatchUp.step(budget)`` until ``done``; see :mod:`alerts.catchup`); call before anything else is
        judged."""
        pending, self.unjudged = self.unjudged, []
        return CatchUp(self, pending, now_ms, self.history.source)

    def judge_backlog(self, readings: Iterable[Reading]) -> list[Transition]:
        """Judge readings an earlier run stored but did not get to (its stop ran out of time): those after
        their series' watermark at this start were caught up already; the older ones are judged as late
        readings, without placing them in the windows again."""
        return judge_stored_late(self, readings, self._marks)
