"""Preservation metrics of a room from the hourly means of each sensor's temperature and humidity.

Each hour with both a temperature and a humidity mean of one sensor is one sample, weighted by the time both
cover in that hour: PI (Padfield's transcription of the IPI formula), TWPI (their time-weighted harmonic
mean), EMC (Hailwood–Horrobin) and mould risk (RH at or above the profile's mould threshold within its
temperature range; the exposure restarts at zero on an hour outside the zone and is reported as the
period's longest run). Hourly means are what conservators' tools (IPI's eClimateNotebook) work from.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.profiles import MouldLimits
from archmon import climate
from dashboards.reports.model import Preservation
from dashboards.reports.quantities import SensorSlice

__all__ = ["preservation"]


def preservation(temperature: Sequence[SensorSlice], humidity: Sequence[SensorSlice], mould: MouldLimits, *,
                 period_lo: int, period_hi: int) -> Preservation:
    """The room's preservation metrics from the sensors that report both quantities."""
    by_sensor = {s.sensor: s for s in humidity}
    samples: list[tuple[int, float, float, float]] = []  # (start, weight ms, T mean, RH mean)
    for t_slice in temperature:
        rh_slice = by_sensor.get(t_slice.sensor)
        if rh_slice is None:
            continue
        rh_rows = {row.start_ms: row for row in rh_slice.rows}
        for row in t_slice.rows:
            other = rh_rows.get(row.start_ms)
            if other is None or not period_lo <= row.start_ms < period_hi:
                continue
            weight = min(t_slice.coverage.hours.get(row.start_ms, 0), rh_slice.coverage.hours.get(row.start_ms, 0))
            if weight > 0:
                samples.append((row.start_ms, weight, row.sum / row.count, other.sum / other.count))
    samples.sort()
    pis = [(w, climate.preservation_index(t, rh)) for _, w, t, rh in samples]
    known_pi = [pi for _, pi in pis if pi is not None]
    emcs = [value for value in (climate.emc(t, rh) for _, _, t, rh in samples) if value is not None]
    twpi = climate.twpi(pis)
    exposure_ms = climate.mould_exposure(((w, t, rh) for _, w, t, rh in samples), rh_threshold=mould.rh,
                                         t_low=mould.t_low, t_high=mould.t_high)
    emc_min, emc_max = (min(emcs), max(emcs)) if emcs else (None, None)
    return Preservation(
        hours=len(samples), twpi_years=_round(twpi), pi_min_years=_round(min(known_pi) if known_pi else None),
        pi_max_years=_round(max(known_pi) if known_pi else None), pi_verdict=climate.pi_verdict(twpi),
        mould_max_exposure_h=round(exposure_ms / 3_600_000, 3), emc_min_pct=_round(emc_min),
        emc_max_pct=_round(emc_max), emc_mechanical=climate.emc_mechanical_verdict(emc_min, emc_max),
        emc_corrosion=climate.emc_corrosion_verdict(emc_max))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
