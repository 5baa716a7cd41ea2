"""Climate maths for archive rooms: pure functions, tested against published values (DESIGN.md §8).

Every function returns ``None`` ("unavailable") for unknown or out-of-range input instead of a made-up
number or an exception, so a report never fails on one bad reading.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ConditionMetrics",
    "absolute_humidity",
    "condition_metrics",
    "dew_point",
    "emc",
    "emc_corrosion_verdict",
    "emc_mechanical_verdict",
    "mould_exposure",
    "mould_risk",
    "pi_verdict",
    "preservation_index",
    "saturation_vapour_pressure",
    "twpi",
]

Verdict = Literal["good", "ok", "risk"]

_A = 17.625
_B = 243.04  # ℃
_T_MIN, _T_MAX = -40.0, 85.0


def _valid(temperature_c: float | None, rh: float | None, *, rh_zero_ok: bool = False) -> bool:
    if temperature_c is None or rh is None:
        return False
    if not (math.isfinite(temperature_c) and math.isfinite(rh)):
        return False
    if not _T_MIN <= temperature_c <= _T_MAX:
        return False
    return (0.0 <= rh <= 100.0) if rh_zero_ok else (0.0 < rh <= 100.0)


def saturation_vapour_pressure(temperature_c: float | None) -> float | None:
    """Saturation vapour pressure over water in hPa (Magnus, a = 17.625, b = 243.04 ℃).

    Args:
        temperature_c: air temperature in ℃.

    Returns:
        The pressure in hPa, or None if the temperature is unknown or outside −40…85 ℃.
    """
    if temperature_c is None or not math.isfinite(temperature_c) or not _T_MIN <= temperature_c <= _T_MAX:
        return None
    return 6.1094 * math.exp(_A * temperature_c / (_B + temperature_c))


def dew_point(temperature_c: float | None, rh: float | None) -> float | None:
    """Dew point in ℃ (Magnus formula). 20 ℃ / 50 % → 9.26 ℃.

    Args:
        temperature_c: air temperature in ℃.
        rh: relative humidity in % (0 < rh ≤ 100).

    Returns:
        The dew point in ℃, or None for unknown or out-of-range input.
    """
    if not _valid(temperature_c, rh):
        return None
    assert temperature_c is not None and rh is not None
    alpha = math.log(rh / 100.0) + _A * temperature_c / (_B + temperature_c)
    return _B * alpha / (_A - alpha)


def absolute_humidity(temperature_c: float | None, rh: float | None) -> float | None:
    """Absolute humidity in g/m³ (≈ 216.7 · e / T_K). 20 ℃ / 50 % → 8.62 g/m³.

    Args:
        temperature_c: air temperature in ℃.
        rh: relative humidity in % (0 … 100).

    Returns:
        Water vapour density in g/m³, or None for unknown or out-of-range input.
    """
    if not _valid(temperature_c, rh, rh_zero_ok=True):
        return None
    assert temperature_c is not None and rh is not None
    saturation = saturation_vapour_pressure(temperature_c)
    assert saturation is not None
    return 216.7 * (rh / 100.0 * saturation) / (temperature_c + 273.15)


def preservation_index(temperature_c: float | None, rh: float | None) -> float | None:
    """Preservation Index in years (IPI, as transcribed by Padfield). 20 ℃ / 45 % → 51.

    Bands: < 45 risk, 45–75 OK, ≥ 75 good.

    Args:
        temperature_c: air temperature in ℃.
        rh: relative humidity in % (0 … 100).

    Returns:
        The expected years to noticeable decay of acidic paper, or None for unknown input.
    """
    if not _valid(temperature_c, rh, rh_zero_ok=True):
        return None
    assert temperature_c is not None and rh is not None
    t_k = temperature_c + 273.15
    exponent = (95220.0 - 134.9 * rh) / (8.314 * t_k) + 0.0284 * rh - 28.023
    return math.exp(exponent) / 365.0


def twpi(samples: Iterable[tuple[float, float | None]]) -> float | None:
    """Time-weighted preservation index: Σ Δt / Σ (Δt / PI), a time-weighted harmonic mean.

    Args:
        samples: ``(duration, pi)`` pairs; duration in any one unit, pi in years. Samples whose PI is
            None (unavailable) or whose duration is not positive are skipped.

    Returns:
        The TWPI in years, or None if no sample was usable. Half a year at 24 ℃/60 % and half at
        14 ℃/45 % → 35.3.
    """
    total = 0.0
    weighted = 0.0
    for duration, pi in samples:
        if pi is None or not math.isfinite(pi) or pi <= 0 or not duration > 0:
            continue
        total += duration
        weighted += duration / pi
    if weighted == 0.0:
        return None
    return total / weighted


def emc(temperature_c: float | None, rh: float | None) -> float | None:
    """Equilibrium moisture content of wood/paper in % (Hailwood–Horrobin, USDA FPL, Celsius form).

    20 ℃ / 50 % → 9.27 %. Mechanical risk outside 5–12.5 %; metal corrosion: < 7 good, 7–10.5 OK,
    ≥ 10.5 risk.

    Args:
        temperature_c: air temperature in ℃.
        rh: relative humidity in % (0 … 100, exclusive of 100 where the formula diverges).

    Returns:
        The EMC in %, or None for unknown or out-of-range input.
    """
    if not _valid(temperature_c, rh, rh_zero_ok=True) or rh == 100.0:
        return None
    assert temperature_c is not None and rh is not None
    t = temperature_c
    h = rh / 100.0
    w = 349.0 + 1.29 * t + 0.0135 * t * t
    k = 0.805 + 0.000736 * t - 0.00000273 * t * t
    k1 = 6.27 - 0.00938 * t - 0.000303 * t * t
    k2 = 1.91 + 0.0407 * t - 0.000293 * t * t
    kh = k * h
    if kh >= 1.0:
        return None
    value = 1800.0 / w * (kh / (1 - kh) + (k1 * kh + 2 * k1 * k2 * kh * kh) / (1 + k1 * kh + k1 * k2 * kh * kh))
    return value


def mould_risk(
    temperature_c: float | None, rh: float | None, *, rh_threshold: float = 65.0,
    t_low: float = 2.0, t_high: float = 45.0,
) -> bool | None:
    """Whether the air is in the mould-risk zone: RH ≥ 65 % (default) within 2–45 ℃.

    Args:
        temperature_c: air temperature in ℃ (None: judged on RH alone).
        rh: relative humidity in %.
        rh_threshold: RH at or above which mould can germinate.
        t_low: lowest temperature at which mould grows.
        t_high: highest temperature at which mould grows.

    Returns:
        True in the risk zone, False outside it, None when RH is unknown or out of range.
    """
    if rh is None or not math.isfinite(rh) or not 0.0 <= rh <= 100.0:
        return None
    if temperature_c is not None:
        if not math.isfinite(temperature_c):
            return None
        if not t_low <= temperature_c <= t_high:
            return False
    return rh >= rh_threshold


def mould_exposure(samples: Iterable[tuple[float, float | None, float | None]], **limits: float) -> float:
    """Longest uninterrupted time spent in the mould-risk zone (the period maximum).

    Exposure accumulates while consecutive samples are in the risk zone and restarts at zero when a
    sample is outside it; unavailable samples neither add nor reset.

    Args:
        samples: ``(duration, temperature_c, rh)`` in time order; the duration is the time the sample
            stands for, in any one unit (the result is in the same unit).
        **limits: ``rh_threshold``, ``t_low``, ``t_high`` passed to :func:`mould_risk`.

    Returns:
        The maximum accumulated exposure (0.0 if never at risk).
    """
    current = 0.0
    worst = 0.0
    for duration, temperature_c, rh in samples:
        risk = mould_risk(temperature_c, rh, **limits)
        if risk is None:
            continue
        if risk and duration > 0:
            current += duration
            worst = max(worst, current)
        elif not risk:
            current = 0.0
    return worst


def pi_verdict(pi_years: float | None) -> Verdict | None:
    """The band of a PI or TWPI: < 45 years ``risk``, 45–75 ``ok``, ≥ 75 ``good`` (None: unavailable)."""
    if pi_years is None or not math.isfinite(pi_years):
        return None
    return "risk" if pi_years < 45 else "ok" if pi_years < 75 else "good"


def emc_mechanical_verdict(emc_min: float | None, emc_max: float | None) -> Verdict | None:
    """Mechanical damage (warping, cracking): ``risk`` when the EMC left 5–12.5 %, else ``ok``."""
    if emc_min is None or emc_max is None:
        return None
    return "risk" if emc_min < 5.0 or emc_max > 12.5 else "ok"


def emc_corrosion_verdict(emc_max: float | None) -> Verdict | None:
    """Metal corrosion by the highest EMC: < 7 % ``good``, 7–10.5 % ``ok``, ≥ 10.5 % ``risk``."""
    if emc_max is None or not math.isfinite(emc_max):
        return None
    return "good" if emc_max < 7.0 else "ok" if emc_max < 10.5 else "risk"


@dataclass(frozen=True, slots=True)
class ConditionMetrics:
    """Every metric of one condition (``archmon climate``); None where unavailable."""

    dew_point_c: float | None
    abs_humidity_g_m3: float | None
    pi_years: float | None
    emc_pct: float | None
    mould_risk: bool | None

    def to_dict(self) -> dict[str, float | bool | None]:
        """The JSON form (keys as printed by ``archmon climate --format json``)."""
        return {"dew_point_c": self.dew_point_c, "abs_humidity_g_m3": self.abs_humidity_g_m3,
                "pi_years": self.pi_years, "emc_pct": self.emc_pct, "mould_risk": self.mould_risk}


def condition_metrics(temperature_c: float | None, rh: float | None) -> ConditionMetrics:
    """Dew point, absolute humidity, PI, EMC and mould risk of one condition (rounded for display: 2 decimals,
    PI 1 decimal)."""
    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(value, digits)

    return ConditionMetrics(
        dew_point_c=rounded(dew_point(temperature_c, rh), 2),
        abs_humidity_g_m3=rounded(absolute_humidity(temperature_c, rh), 2),
        pi_years=rounded(preservation_index(temperature_c, rh), 1),
        emc_pct=rounded(emc(temperature_c, rh), 2),
        mould_risk=mould_risk(temperature_c, rh) if _valid(temperature_c, rh, rh_zero_ok=True) else None,
    )
