"""``python -m bench [NAME ...] [--quick]``: run the benchmark suite, print one table, write JSON.

Every bench measures archmon and its baseline in the same run (absolute figures on a shared machine are
noise; the ratio is the figure). The JSON (``bench/results/<date>.json`` unless ``--json``) holds the
machine (cores, RAM, load average before and after, Python, versions of every server used), the sizes
each bench ran at, its rows and notes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._suite import BENCHES, BenchResult, Row, Scale, run_bench  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _version(*command: str) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0][:120] if text else "unknown"


def _deb(package: str) -> str:
    """A Debian package's version (the binary itself prints none)."""
    found = _version("dpkg-query", "-W", "-f=${Version}", package)
    return found if found and not found.startswith("dpkg-query") else "not installed"


def machine() -> dict[str, Any]:
    """Cores, memory, load, Python and the versions of what the benches run."""
    mem_kib = 0
    with open("/proc/meminfo", encoding="ascii") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    from bench.bench_peer import node_red_version

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cores": os.cpu_count(), "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "platform": platform.platform(), "sqlite": sqlite3.sqlite_version,
        "archmon_commit": commit.stdout.strip(),
        "versions": {
            "archmon": pkg("archmon"), "paho-mqtt": pkg("paho-mqtt"), "weasyprint": pkg("weasyprint"),
            "mosquitto": _version("mosquitto", "-h"), "victoria-metrics": _deb("victoria-metrics"),
            "influxd": _version("influxd", "version"), "node": _version("node", "--version"),
            "node-red": node_red_version(),
        },
    }


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(results: list[BenchResult]) -> str:
    """The results as one text table."""
    head = ("bench", "figure", "archmon", "baseline", "ratio", "goal", "met")
    lines = [head]
    for result in results:
        for row in result.rows:
            lines.append((result.name, row.figure, f"{_num(row.archmon)} {row.unit}",
                          f"{_num(row.baseline)} {row.unit}" if row.baseline is not None else "—",
                          f"{row.ratio:.2f}" if row.ratio is not None else "—", row.goal or "—",
                          {True: "yes", False: "NO", None: "—"}[row.met]))
    widths = [min(60, max(len(line[i]) for line in lines)) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(results: list[BenchResult]) -> str:
    """The results as a Markdown table (for the README and docs/performance.md)."""
    out = ["| bench | figure | archmon | baseline (same run) | ratio | goal | met |", "|---|---|---|---|---|---|---|"]
    for result in results:
        for row in result.rows:
            base = f"{_num(row.baseline)} {row.unit} ({row.baseline_label})" if row.baseline is not None else "—"
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else "—"
            out.append(f"| {result.name} | {row.figure} | {_num(row.archmon)} {row.unit} | {base} | {ratio} | "
                       f"{row.goal or '—'} | {({True: 'yes', False: '**no**', None: '—'})[row.met]} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the named benches (all by default) and print the table; exit 1 if a bench failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benches to run (default all: {', '.join(BENCHES)})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: the whole suite in under 5 minutes")
    parser.add_argument("--scale", choices=("toy", "quick", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write the results here (default bench/results/<date>.json)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary files")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    scale: Scale = args.scale or ("quick" if args.quick else "full")
    names = args.names or list(BENCHES)
    started = dt.datetime.now(dt.UTC)
    info = machine()
    print(f"archmon bench suite, scale {scale}: {', '.join(names)}; {info['cores']} cores, {info['ram_gib']} GiB, "
          f"load average {info['load_average']}", flush=True)
    results: list[BenchResult] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="archmon-bench-", dir=args.dir) as tmp:
        for name in names:
            print(f"--- {name}: {BENCHES[name][1]}", flush=True)
            try:
                result = run_bench(name, scale, Path(tmp) / name)
            except Exception as exc:  # one broken bench must not hide the others' figures
                traceback.print_exc()
                failed.append(name)
                result = BenchResult(name, [Row(f"FAILED: {type(exc).__name__}: {exc}"[:200], float("nan"), None, "")])
            for note in result.notes:
                print(f"    {note}", flush=True)
            print(f"    ({result.seconds:.0f} s; sizes {result.sizes})", flush=True)
            print("\n".join("    " + line for line in table([result]).splitlines()[2:]), flush=True)
            results.append(result)
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(table(results))
    if args.markdown:
        print()
        print(markdown(results))
    target = args.json or RESULTS / f"{started:%Y-%m-%d}{'' if scale == 'full' else '-' + scale}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"started": started.isoformat(timespec="seconds"), "scale": scale,
                                  "machine": info, "benches": [r.as_json() for r in results], "failed": failed},
                                 indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {target}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
