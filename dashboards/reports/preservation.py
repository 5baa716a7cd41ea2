"""Preservation metrics of a room from the hourly means of each sensor's temperature and humidity.

Each hour with both a temperature and a humidity mean of one sensor is one sample, weighted by the time both
cover in that hour: PI (Padfield's transcription of the IPI formula), TWPI (their time-weighted harmonic
mean), EMC (Hailwood–Horrobin) and mould risk (RH at or above the profile's mould threshold within its
temperature range). Mould exposure is the longest run of one sensor's consecutive hours in the zone — each
sensor on its own (a dry sensor elsewhere in the room does not end a humid one's run), the room's figure
the longest of them — and a run ends at an hour outside the zone, at a missing hour, and after an hour less
than half covered (nobody knows what the air did in the gap). A room without any such hour has no exposure
(null), not 0. Hourly means are what conservators' tools (IPI's eClimateNotebook) work from.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.profiles import MouldLimits
from archmon import climate
from dashboards.reports.model import Preservation
from dashboards.reports.quantities import SensorSlice

__all__ = ["preservation"]

HOUR_MS = 3_600_000


def preservation(temperature: Sequence[SensorSlice], humidity: Sequence[SensorSlice], mould: MouldLimits, *,
                 period_lo: int, period_hi: int) -> Preservation:
    """The room's preservation metrics from the sensors that report both quantities."""
    by_sensor = {s.sensor: s for s in humidity}
    samples: list[tuple[int, float, float, float]] = []  # (start, weight ms, T mean, RH mean)
    runs: list[list[tuple[float, float, float]]] = []  # per sensor, stretches of consecutive covered hours
    for t_slice in temperature:
        rh_slice = by_sensor.get(t_slice.sensor)
        if rh_slice is None:
            continue
        rh_rows = {row.start_ms: row for row in rh_slice.rows}
        previous: int | None = None
        for row in t_slice.rows:
            other = rh_rows.get(row.start_ms)
            if other is None or not period_lo <= row.start_ms < period_hi:
                continue
            weight = min(t_slice.coverage.hours.get(row.start_ms, 0), rh_slice.coverage.hours.get(row.start_ms, 0))
            if weight > 0:
                sample = (row.start_ms, weight, row.sum / row.count, other.sum / other.count)
                samples.append(sample)
                if previous is None or row.start_ms - previous > HOUR_MS:
                    runs.append([])
                runs[-1].append(sample[1:])
                previous = row.start_ms if weight * 2 >= HOUR_MS else None  # half uncovered: the run ends
    samples.sort()
    pis = [(w, climate.preservation_index(t, rh)) for _, w, t, rh in samples]
    known_pi = [pi for _, pi in pis if pi is not None]
    emcs = [value for value in (climate.emc(t, rh) for _, _, t, rh in samples) if value is not None]
    twpi = climate.twpi(pis)
    exposure_ms = max((climate.mould_exposure(run, rh_threshold=mould.rh, t_low=mould.t_low, t_high=mould.t_high)
                       for run in runs), default=None)
    emc_min, emc_max = (min(emcs), max(emcs)) if emcs else (None, None)
    return Preservation(
        hours=len(samples), twpi_years=_round(twpi), pi_min_years=_round(min(known_pi) if known_pi else None),
        pi_max_years=_round(max(known_pi) if known_pi else None), pi_verdict=climate.pi_verdict(twpi),
        mould_max_exposure_h=None if exposure_ms is None else round(exposure_ms / HOUR_MS, 3),
        emc_min_pct=_round(emc_min), emc_max_pct=_round(emc_max),
        emc_mechanical=climate.emc_mechanical_verdict(emc_min, emc_max),
        emc_corrosion=climate.emc_corrosion_verdict(emc_max))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
