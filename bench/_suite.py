"""The benchmark suite's registry and result types (``python -m bench``).

Each registered bench is a module under ``bench/`` with a function ``suite(scale, folder) -> BenchResult``
that measures archmon AND its baseline in the same run and returns named rows. ``scale`` is one of
:data:`SCALES`: ``toy`` (seconds: only proves the bench still runs, for tests/archmon/test_benches.py),
``quick`` (the whole suite in under 5 minutes on 2 cores) and ``full`` (the sizes the issue names). Every
bench module stays runnable alone (``.venv/bin/python bench/bench_NAME.py``).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = ["BENCHES", "SCALES", "BenchResult", "Row", "Scale", "ratio_row", "run_bench"]

Scale = Literal["toy", "quick", "full"]
SCALES: tuple[Scale, ...] = ("toy", "quick", "full")


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of a bench: archmon's, its baseline's, their ratio and the goal.

    Attributes:
        figure: what is measured ("readings/s through the pipeline").
        archmon: archmon's figure, in ``unit``.
        baseline: the baseline's figure in the same run (None: no baseline for this figure).
        unit: the unit of both figures.
        baseline_label: what the baseline is ("bare paho subscriber").
        ratio: archmon / baseline (None without a baseline).
        goal: the goal in words ("ratio >= 0.5", "<= 200 MB"), "" for none.
        met: whether the goal is met (None: no goal).
        note: anything a reader of the figure must know (a smaller size than named, a caveat).
    """

    figure: str
    archmon: float
    baseline: float | None
    unit: str
    baseline_label: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""


def ratio_row(figure: str, archmon: float, baseline: float | None, unit: str, baseline_label: str, *,
              goal: str = "", at_least: float | None = None, at_most: float | None = None,
              value_at_most: float | None = None, note: str = "") -> Row:
    """A :class:`Row` with its ratio (archmon / baseline) and whether the goal is met.

    Args:
        at_least / at_most: the goal on the ratio (``ratio >= at_least``, ``ratio <= at_most``).
        value_at_most: the goal on archmon's own figure (``archmon <= value_at_most``).
    """
    ratio = archmon / baseline if baseline else None
    met: bool | None = None
    if at_least is not None and ratio is not None:
        met = ratio >= at_least
    if at_most is not None and ratio is not None:
        met = ratio <= at_most
    if value_at_most is not None:
        met = archmon <= value_at_most
    return Row(figure, archmon, baseline, unit, baseline_label, ratio, goal, met, note)


@dataclass(slots=True)
class BenchResult:
    """What one bench returns: its rows, the sizes it ran at, and notes (profiles, caveats)."""

    name: str
    rows: list[Row]
    sizes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The result as plain JSON types."""
        return {"name": self.name, "seconds": round(self.seconds, 2), "sizes": self.sizes, "notes": self.notes,
                "rows": [asdict(row) for row in self.rows]}


class _BenchModule(Protocol):
    def suite(self, scale: Scale, folder: Path) -> BenchResult: ...


# name → (module, what it measures); the order is the table's
BENCHES: dict[str, tuple[str, str]] = {
    "ingest": ("bench.bench_ingest", "whole pipeline (decode, validate, rules, durable commit, ack) vs bare paho"),
    "peer": ("bench.bench_peer", "Node-RED 4 MQTT-in → influxdb-out vs archmon → outbox, same VictoriaMetrics; "
             "throughput and readings lost at SIGKILL"),
    "alerts": ("bench.bench_alert_mail", "smoke published → e-mail accepted by SMTP, vs bare paho + smtplib"),
    "report": ("bench.bench_report", "one-year compliance report (JSON, PDF) vs plain SQL per-day scan"),
    "memory": ("bench.bench_windows", "resident memory of the service, 10,000 sensors after 24 h"),
    "storage": ("bench.bench_storage", "bytes per stored reading vs raw payload, InfluxDB, VictoriaMetrics"),
    "dashboard": ("bench.bench_web", "TTFB and req/s: 200-room overview, one-year chart vs a static file"),
}


def run_bench(name: str, scale: Scale, folder: Path) -> BenchResult:
    """Import the bench ``name`` and run it at ``scale`` with its files under ``folder``.

    Raises:
        KeyError: no bench of that name.
    """
    import time

    module_name, _ = BENCHES[name]
    module: _BenchModule = importlib.import_module(module_name)  # type: ignore[assignment]
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = module.suite(scale, folder)
    result.seconds = time.perf_counter() - started
    return result
