"""Make the sample reports and registers under ``docs/samples/`` (and PNG previews of a few pages).

Two sources:

- **the demo's 30 days of history** (``archmon demo``'s month, :func:`dashboards.demo.month.write_history`:
  the four demo rooms with their scripted faults, alerts acknowledged by the keepers, access sessions, and
  the controlled basement store whose dehumidifier archmon switched all month), ending at the start of
  1 May 2025 so that it covers the calendar month of April 2025: report (PDF in both languages, JSON, the
  per-day CSV) and the monthly register (both languages);
- **the UCI occupancy data set** (Mons, February 2015, loaded as ``tests/dashboards/test_reports_uci.py``
  does): report and register in both languages.

Each file goes through the same commands a site uses (``archmon report``, ``archmon register``), so its
SHA-256 is in that temporary site's audit log.

Usage: ``.venv/bin/python scripts/report_samples.py [OUT_DIR]`` (default ``docs/samples``; needs
poppler-utils' ``pdftoppm`` for the previews; about a minute).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archmon.cli import main  # noqa: E402
from archmon.config import load_config  # noqa: E402
from collector.store import SqliteStore  # noqa: E402
from dashboards.demo.month import write_history  # noqa: E402
from dashboards.demo.site import DEMO_TIMEZONE, demo_config  # noqa: E402
from tests.dashboards import test_reports_uci as uci  # noqa: E402

MONTH = "2025-04"
FIRST, LAST = "2025-04-01", "2025-04-30"
END = dt.datetime(2025, 5, 1, tzinfo=ZoneInfo(DEMO_TIMEZONE))  # the history ends as May begins
PREVIEWS = {  # file -> pages shown as PNG
    "demo-report-2025-04-zh.pdf": (1, 2, 6),
    "demo-report-2025-04-en.pdf": (6,),
    "demo-register-2025-04-zh.pdf": (4,),
    "uci-register-2015-02-en.pdf": (1,),
}


def run(*argv: str) -> None:
    """One archmon command; stop on failure."""
    code = main(list(argv))
    if code:
        raise SystemExit(f"archmon {' '.join(argv)} failed ({code})")


def demo_samples(out: Path, work: Path) -> None:
    """The demo's month (April 2025), reported and registered in both languages."""
    folder = work / "demo"
    folder.mkdir()
    path = folder / "archmon.toml"
    path.write_text(demo_config(path, mqtt_port=1883, modbus_port="/dev/null", line_port="/dev/null", interval=10.0,
                                today=END.date()), encoding="utf-8")
    config = load_config(path)
    summary = write_history(config, folder / "archmon.db", int(END.timestamp() * 1000))
    print(f"demo history: {summary.stored.stored:,} readings, {summary.alerts} alerts, {summary.sessions} sessions "
          f"({summary.seconds:.1f} s)")
    cfg = str(path)
    by = "张伟"
    for lang in ("zh", "en"):
        run("report", "--config", cfg, "--from", FIRST, "--to", LAST, "--format", "pdf", "--lang", lang, "--by", by,
            "--out", str(out / f"demo-report-{MONTH}-{lang}.pdf"))
        run("register", "--config", cfg, "--month", MONTH, "--lang", lang, "--by", by,
            "--out", str(out / f"demo-register-{MONTH}-{lang}.pdf"))
    run("report", "--config", cfg, "--from", FIRST, "--to", LAST, "--format", "json", "--lang", "zh", "--by", by,
        "--out", str(out / f"demo-report-{MONTH}-zh.json"))
    run("report", "--config", cfg, "--from", FIRST, "--to", LAST, "--format", "csv", "--lang", "zh",
        "--out", str(out / f"demo-report-{MONTH}-zh.csv"))


def uci_samples(out: Path, work: Path) -> None:
    """The UCI office (paper profile: its RH is never in band), 2015-02-02..2015-02-18, both languages."""
    folder = work / "uci"
    folder.mkdir()
    config = uci.site(folder)
    store = SqliteStore(config.resolve(config.storage.sqlite_path), tz=uci.TZ)
    try:
        uci.load(store, uci.raw_rows())
    finally:
        store.close()
    cfg = str(folder / "archmon.toml")
    for lang in ("zh", "en"):
        run("report", "--config", cfg, "--from", "2015-02-02", "--to", "2015-02-18", "--format", "pdf", "--lang", lang,
            "--by", "archmon samples", "--out", str(out / f"uci-report-2015-02-{lang}.pdf"))
        run("register", "--config", cfg, "--month", "2015-02", "--lang", lang, "--by", "archmon samples",
            "--out", str(out / f"uci-register-2015-02-{lang}.pdf"))


def previews(out: Path) -> None:
    """PNG previews of a few pages (pdftoppm)."""
    for name, pages in PREVIEWS.items():
        for number in pages:
            stem = out / f"{Path(name).stem}-p{number}"
            subprocess.run(["pdftoppm", "-r", "70", "-png", "-singlefile", "-f", str(number), "-l", str(number),
                            str(out / name), str(stem)], check=True)


def main_samples() -> None:
    """Make every sample."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "samples"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        demo_samples(out, Path(tmp))
        uci_samples(out, Path(tmp))
    previews(out)
    print(f"samples written to {out}")


if __name__ == "__main__":
    main_samples()
