"""How much work the engine does per hold of its lock: the budget of one step, and what a step returns.

The live service holds the engine lock for one step at a time (a slice of readings, a tick's share of the
timers) and lets the priority lane (the tick, smoke and leak, people's actions) in between; the budget keeps
a step short whatever falls due at once (every sensor going stale after an outage, a failing day everywhere
at midnight). Work is counted in units: a timer or a rule deadline is one, each condition a rule reports at a
deadline one more, and each transition :data:`TRANSITION_COST` (it writes alert rows, an audit entry and
perhaps a notification request: about a hundred timers' worth of time).
"""

from __future__ import annotations

from typing import NamedTuple

from alerts.model import Transition

__all__ = ["STEP_BUDGET", "TRANSITION_COST", "Budget", "Due", "FedPart"]

STEP_BUDGET = 5000
"""Work units per hold of the engine lock (a few tens of milliseconds)."""
TRANSITION_COST = 100
"""Work units of one transition."""


class Budget:
    """Work units left for one step (``None``: unbounded, as for replay and tests)."""

    __slots__ = ("left",)

    def __init__(self, units: int | None) -> None:
        self.left = units

    def spend(self, units: int) -> None:
        """Count ``units`` of work done."""
        if self.left is not None:
            self.left -= units

    def transitions(self, made: list[Transition]) -> list[Transition]:
        """Count the transitions just made (and hand them back)."""
        if made and self.left is not None:
            self.left -= TRANSITION_COST * len(made)
        return made

    @property
    def spent(self) -> bool:
        """No unit left: end the step."""
        return self.left is not None and self.left <= 0


class Due(NamedTuple):
    """The engine's earliest deadline: a queued timer (``rule`` None) or a rule's own."""

    ts_ms: int | None
    rule: object | None


class FedPart(NamedTuple):
    """What one step of :meth:`AlertEngine.feed_part` did: its transitions, and how many readings (from the
    start of those given) it judged; the caller hands the rest to the next step."""

    transitions: list[Transition]
    judged: int
