"""Service wiring: builds stores, the pipeline, sources and schedules from a Config and runs them.

This package (with ``archmon/cli.py``) is the one place in the core that imports the other packages. One
module per concern: ``service`` (the :class:`Service`: build, start, counters, reload), ``checks`` (what
``check-config`` and ``run`` check beyond the schema), ``feed`` (the alert feed), ``reloading`` (the alert
rules' swap), ``audit`` (the service's own audit entries), ``stats`` (counters and gauges), ``stopping``
(the bounded stop), ``control`` (signals: reload and stop), ``web`` (the dashboard of ``run`` and ``demo``),
``reports`` (the scheduled reports), ``data_commands`` (``archmon status | export | backup | quarantine``).
"""

from archmon.app.checks import check_references, storage_problems
from archmon.app.service import Service, SourceState

__all__ = ["Service", "SourceState", "check_references", "storage_problems"]
