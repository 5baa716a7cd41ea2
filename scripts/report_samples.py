"""Make the sample reports and registers under ``docs/samples/`` (and PNG previews of a few pages).

Two sources: the realistic month of ``tests/dashboards/report_site.py`` (two stores and an outdoor sensor,
March 2025, written through ``SqliteStore.write``) and the UCI occupancy data set (Mons, February 2015, loaded
as ``tests/dashboards/test_reports_uci.py`` does). Each file goes through the same commands a site uses
(``archmon report``, ``archmon register``), so its SHA-256 is in that temporary site's audit log.

Usage: ``.venv/bin/python scripts/report_samples.py [OUT_DIR]`` (default ``docs/samples``; needs
poppler-utils' ``pdftoppm`` for the previews).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archmon.cli import main  # noqa: E402
from collector.store import SqliteStore  # noqa: E402
from tests.dashboards import test_reports_uci as uci  # noqa: E402
from tests.dashboards.report_site import build_site  # noqa: E402

PREVIEWS = {  # file -> pages shown as PNG
    "site-report-2025-03-zh.pdf": (1, 3),
    "site-report-2025-03-en.pdf": (2,),
    "site-register-2025-03-zh.pdf": (2,),
}


def run(*argv: str) -> None:
    """One archmon command; stop on failure."""
    code = main(list(argv))
    if code:
        raise SystemExit(f"archmon {' '.join(argv)} failed ({code})")


def site_samples(out: Path, work: Path) -> None:
    """The realistic month, reported and registered in both languages."""
    (work / "site").mkdir()
    build_site(work / "site")
    cfg = str(work / "site" / "archmon.toml")
    for lang in ("zh", "en"):
        run("report", "--config", cfg, "--from", "2025-03-01", "--to", "2025-03-31", "--format", "pdf", "--lang",
            lang, "--by", "张三", "--out", str(out / f"site-report-2025-03-{lang}.pdf"))
        run("register", "--config", cfg, "--month", "2025-03", "--lang", lang, "--by", "张三",
            "--out", str(out / f"site-register-2025-03-{lang}.pdf"))
    run("report", "--config", cfg, "--from", "2025-03-01", "--to", "2025-03-31", "--format", "csv", "--lang", "zh",
        "--out", str(out / "site-report-2025-03-zh.csv"))


def uci_samples(out: Path, work: Path) -> None:
    """The UCI office (paper profile: its RH is never in band), 2015-02-02..2015-02-18."""
    folder = work / "uci"
    folder.mkdir()
    config = uci.site(folder)
    store = SqliteStore(config.resolve(config.storage.sqlite_path), tz=uci.TZ)
    try:
        uci.load(store, uci.raw_rows())
    finally:
        store.close()
    cfg = str(folder / "archmon.toml")
    run("report", "--config", cfg, "--from", "2015-02-02", "--to", "2015-02-18", "--format", "pdf", "--lang", "en",
        "--by", "archmon samples", "--out", str(out / "uci-report-2015-02-en.pdf"))
    run("report", "--config", cfg, "--from", "2015-02-02", "--to", "2015-02-18", "--format", "pdf", "--lang", "zh",
        "--by", "archmon samples", "--out", str(out / "uci-report-2015-02-zh.pdf"))
    run("register", "--config", cfg, "--month", "2015-02", "--lang", "zh", "--by", "archmon samples",
        "--out", str(out / "uci-register-2015-02-zh.pdf"))


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
        site_samples(out, Path(tmp))
        uci_samples(out, Path(tmp))
    previews(out)
    print(f"samples written to {out}")


if __name__ == "__main__":
    main_samples()
