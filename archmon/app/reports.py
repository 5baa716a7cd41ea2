"""The scheduled reports of ``archmon run``: one APScheduler job, hourly at minute 7 in the site's zone and once
shortly after the start, running :meth:`dashboards.reports.schedule.ReportSchedule.tick` with the
configuration in force (a reload applies at the next run). The step is idempotent: it makes what is due and
missing and mails what was not mailed, so a missed run (a stop, a crash) is made up at the next one."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from archmon.config import Config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms

__all__ = ["FIRST_RUN_S", "add_report_job"]

log = logging.getLogger("archmon.app")

FIRST_RUN_S = 120.0
"""After a start, the first run waits this long: the service is collecting before it spends time on PDFs."""


def add_report_job(scheduler: Any, config_of: Callable[[], Config], *, clock: Callable[[], int] = now_ms,
                   first_run_s: float = FIRST_RUN_S) -> None:
    """Add the ``reports`` job to ``scheduler``.

    Args:
        scheduler: the service's APScheduler scheduler.
        config_of: the configuration in force (read at each run).
        clock: now in UTC epoch ms (tests inject the month's end).
        first_run_s: delay of the first run after the start.
    """
    from dashboards.reports.schedule import ReportSchedule

    def run() -> None:
        try:
            ReportSchedule(config_of(), clock=clock).tick()
        except ConfigError as exc:  # (check-config names these too) the next run tries again
            log.error("reports: the schedule cannot run: %s", "; ".join(exc.problems))

    tz = config_of().site.tz
    scheduler.add_job(run, CronTrigger(minute=7, timezone=tz), id="reports", replace_existing=True,
                      next_run_time=dt.datetime.now(tz) + dt.timedelta(seconds=first_run_s))
