"""The benchmarks still run (at a toy scale): a bench that crashes measures nothing (review finding 7:
bench_windows.py stopped at ``service.mqtt`` when the service became a package). No time is asserted: only
what a broken bench or a broken product would get wrong (a figure missing, a reading lost at a SIGKILL, a
report disagreeing with the raw table, an alert the data does not justify)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from bench._suite import BENCHES, BenchResult, run_bench

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.mosquitto, pytest.mark.tsdb]


def _run(*args: str, tmp_path: Path) -> str:
    done = subprocess.run([sys.executable, *args, "--dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def _rows(result: BenchResult) -> dict[str, tuple[float, float | None]]:
    return {row.figure: (row.archmon, row.baseline) for row in result.rows}


def _checked(result: BenchResult, name: str) -> None:
    assert result.name == name and result.rows, result
    for row in result.rows:
        assert math.isfinite(row.archmon) and row.archmon >= 0, row
        if row.baseline is not None:
            assert math.isfinite(row.baseline) and row.baseline >= 0, row
            assert row.ratio is None or math.isclose(row.ratio, row.archmon / row.baseline), row
        assert row.met is None or row.goal, row  # a verdict needs a goal


@pytest.mark.parametrize("name", list(BENCHES))
def test_every_registered_bench_runs_at_toy_scale(name: str, tmp_path: Path) -> None:
    result = run_bench(name, "toy", tmp_path / name)
    _checked(result, name)
    rows = _rows(result)
    if name in ("ingest", "dashboard"):
        assert all(mine > 0 and base for mine, base in rows.values()), rows
    if name == "peer":  # archmon alone at toy scale: what it acknowledged it forwards, through a SIGKILL
        lost = [mine for figure, (mine, _) in rows.items() if figure.startswith("readings lost")]
        assert lost == [0.0, 0.0], rows
        assert any("complete;" in note for note in result.notes), result.notes
    if name == "alerts":
        p50, p99 = (mine for mine, _ in rows.values())
        assert 0 < p50 <= p99
    if name == "memory":  # the one humid sensor raises these and nothing else may fire
        assert "alerts {'band': 1, 'mould': 1, 'rate': 1, 'stability_24h': 1}," in result.notes[0]
    if name == "storage":
        whole, summaries = result.rows[0].archmon, result.rows[-1].archmon
        assert 0 < summaries < whole


def test_the_command_prints_one_table_and_writes_the_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    out = tmp_path / "results.json"
    assert bench_main(["--scale", "toy", "report", "storage", "--json", str(out), "--dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "bench" in printed and "ratio" in printed and "report" in printed and "storage" in printed
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["scale"] == "toy" and data["failed"] == []
    assert data["machine"]["cores"] >= 1 and "mosquitto" in data["machine"]["versions"]
    assert [b["name"] for b in data["benches"]] == ["report", "storage"]
    assert data["benches"][1]["sizes"]["readings"] == 5000


def test_an_unknown_bench_is_refused_with_the_known_names() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "nosuch"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "known: ingest, peer" in done.stderr


def test_bench_alerts_measures_the_alert_feed_path(tmp_path: Path) -> None:
    out = _run("bench/bench_alerts.py", "--seconds", "0.2", "--trials", "3", "--big-trials", "1", "--big-batch",
               "2000", tmp_path=tmp_path)
    assert "through the AlertFeed (archmon run's path)" in out
    assert "alerts other than smoke in the whole run (expected 0): 0" in out


def test_bench_late_measures_late_lookups_and_the_catch_up(tmp_path: Path) -> None:
    out = _run("bench/bench_late.py", "all", "--sensors", "2", "--late", "20", "--series", "20", "--minutes", "3",
               tmp_path=tmp_path)
    assert "ratio late/in-order" in out and "ratio catch-up/live" in out
    assert "catchup: 60 readings of 20 series unjudged at the stop" in out
