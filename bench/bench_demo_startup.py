"""Benchmark of the demo's start: how long until ``archmon demo --http 127.0.0.1:PORT`` answers its login page.

Run: ``.venv/bin/python bench/bench_demo_startup.py [--trials N]``.

Each trial starts the demo as a child process on an empty data directory (a fresh clone's state, with
``.venv`` installed) and prints

- the time to its first line (the address and the one-time password);
- the time until ``GET /login`` answers 200 (the issue's bound: 60 s);
- the history's own time, as the demo reports it (30 days of every sensor written and judged);

with the median over the trials, the ratio of the login time to the 60 s bound, and to a baseline measured in
the same run: starting the interpreter with archmon's packages (``python -m archmon --version``).
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def trial(folder: Path) -> tuple[float, float, float]:
    """(first line, login page, history) in seconds for one start on an empty ``folder``."""
    port = _free_port()
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "archmon", "demo", "--data-dir", str(folder), "--http",
                                f"127.0.0.1:{port}", "--duration", "3"], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first.wait(BOUND_S * 2)
    first_s = time.monotonic() - started
    while not _answers(f"http://127.0.0.1:{port}/login"):
        if process.poll() is not None or time.monotonic() - started > BOUND_S * 2:
            raise RuntimeError("the demo did not serve its login page")
        time.sleep(0.05)
    login_s = time.monotonic() - started
    process.wait(120)
    reader.join(10)
    found = next((re.search(r"stored in ([\d.]+) s", line) for line in lines if "stored in" in line), None)
    return first_s, login_s, float(found[1]) if found else float("nan")


def baseline() -> float:
    """Seconds to start the interpreter with archmon's packages."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "archmon", "--version"], cwd=ROOT, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    base = statistics.median(baseline() for _ in range(3))
    results = []
    with tempfile.TemporaryDirectory(prefix="archmon-bench-demo-") as tmp:
        for number in range(args.trials):
            first_s, login_s, history_s = trial(Path(tmp) / f"demo{number}")
            results.append((first_s, login_s, history_s))
            print(f"trial {number + 1}: first line {first_s:.2f} s, login page {login_s:.2f} s, "
                  f"history {history_s:.2f} s")
    login = statistics.median(r[1] for r in results)
    print(f"baseline (python -m archmon --version): {base:.2f} s")
    print(f"median: first line {statistics.median(r[0] for r in results):.2f} s, login page {login:.2f} s "
          f"({login / BOUND_S:.0%} of the 60 s bound, {login / base:.1f}x the baseline), "
          f"history {statistics.median(r[2] for r in results):.2f} s")


if __name__ == "__main__":
    main()
