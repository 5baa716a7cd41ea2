"""Smoke detected: critical, immediate."""

from __future__ import annotations

from alerts.rules._binary import DetectorRule

__all__ = ["SmokeRule"]


class SmokeRule(DetectorRule):
    """Fires the moment a smoke detector reports 1; clears when it reports 0."""

    name = "smoke"
    quantity = "smoke"
    quantities = frozenset({"smoke"})
