"""Water leak detected: critical, immediate."""

from __future__ import annotations

from alerts.rules._binary import DetectorRule

__all__ = ["LeakRule"]


class LeakRule(DetectorRule):
    """Fires the moment a leak sensor reports 1; clears when it reports 0."""

    name = "leak"
    quantity = "leak"
    quantities = frozenset({"leak"})
