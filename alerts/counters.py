"""What the alert engine counts (``AlertService.stats()`` and ``archmon status`` show it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EngineCounters"]


@dataclass(slots=True)
class EngineCounters:
    """What the engine counted since it started (kept across a configuration reload).

    Attributes:
        readings: readings of configured sensors judged.
        late_readings: older than their series' newest reading but inside the 24 h window: put in the
            buckets of their own time; rules that judge the current state left them alone.
        late_for_alerts: older than the 24 h window: no window or rule state changed (only smoke and leak
            looked at them); the store has them.
        late_alarms: smoke or leak readings of 1 among the late ones (raised and cleared at once when the
            detector's newest reading is 0; nothing new when it is 1: the alert is on).
        late_for_rate: late readings older than their series' rate window (the rate rule cannot judge them;
            the 24 h window and the day verdict still count them).
        caught_up: readings the store held but the engine had not judged when it stopped (a crash, a stop
            out of time), judged at this start (:mod:`alerts.catchup`).
    """

    readings: int = 0
    late_readings: int = 0
    late_for_alerts: int = 0
    late_alarms: int = 0
    late_for_rate: int = 0
    caught_up: int = 0
