"""The printed report and the monthly register on a realistic month (``report_site``), in both languages, made
through the commands people use: every glyph drawn has an outline in the font embedded in the file ('℃' and
Chinese in particular), ``pdffonts`` lists Noto Sans CJK embedded, every page renders to PNG with
``pdftoppm``, the cover states what an inspector needs, the register leaves a missing duty reading empty,
and ``archmon report verify`` recognises exactly the files it made."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from PIL import Image, ImageStat
from pypdf import PdfReader

from alerts.store import AlertReader
from archmon.cli import main
from archmon.config import Config
from collector.store import SqliteStore
from dashboards.reports.build import ReportRequest, build_report
from dashboards.reports.integrity import find_reports, sha256_of
from dashboards.reports.labels import LABELS
from dashboards.reports.pdf_report import data_digest
from dashboards.reports.register import build_register
from tests.dashboards.pdf_glyphs import drawn_glyphs
from tests.dashboards.report_site import FIRST_DAY, LAST_DAY, at, build_site

NOW_MS = at(31, 23) + 7_200_000  # 1 April 01:00: the month is over
POPPLER = shutil.which("pdftoppm") is not None and shutil.which("pdffonts") is not None


class Made(NamedTuple):
    """The site and the files made from it."""

    config: Config
    folder: Path
    files: dict[str, Path]


def _pdf_text(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    folder = tmp_path_factory.mktemp("site")
    config = build_site(folder)
    cfg = str(folder / "archmon.toml")
    files = {}
    for name, argv in {
        "report-zh.pdf": ["report", "--from", "2025-03-01", "--to", "2025-03-31", "--format", "pdf", "--lang", "zh"],
        "report-en.pdf": ["report", "--from", "2025-03-01", "--to", "2025-03-31", "--format", "pdf", "--lang", "en"],
        "register-zh.pdf": ["register", "--month", "2025-03", "--lang", "zh"],
        "register-en.pdf": ["register", "--month", "2025-03", "--lang", "en"],
        "report.json": ["report", "--from", "2025-03-01", "--to", "2025-03-31", "--format", "json"],
    }.items():
        files[name] = folder / name
        assert main([*argv, "--config", cfg, "--out", str(files[name]), "--by", "张三"]) == 0, name
    return Made(config, folder, files)


@pytest.mark.parametrize("name", ["report-zh.pdf", "report-en.pdf", "register-zh.pdf", "register-en.pdf"])
def test_every_glyph_drawn_has_an_outline_in_the_embedded_font(made: Made, name: str) -> None:
    glyphs = drawn_glyphs(made.files[name].read_bytes())
    assert glyphs, "nothing drawn"
    broken = [g for g in glyphs if g.notdef or (not g.has_outline and not g.text.isspace())]
    assert not broken, f"glyphs without an outline (or .notdef) in {name}: {broken[:10]}"
    assert {g.font.split("+", 1)[1] for g in glyphs} <= {"Noto-Sans-CJK-SC", "Noto-Sans-CJK-SC-Bold",
                                                           "Noto-Sans-Mono-CJK-SC"}, "a fallback font was used"
    drawn = {g.text for g in glyphs}
    if name.endswith("zh.pdf"):
        assert "℃" in drawn, "℃ must be drawn (from its own glyph) in the Chinese documents"
        title = LABELS["zh"]["report_title" if name.startswith("report") else "register_title"]
        assert set(title) <= drawn
        assert set("一号库二号库（特藏）") <= drawn
    else:
        assert {"°", "C"} <= drawn
        assert set("示范市委组织部档案室") <= drawn, "the site's Chinese name is drawn in the English documents too"


@pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdffonts, pdftoppm) missing: scripts/bootstrap.sh test")
def test_pdffonts_lists_the_cjk_font_embedded_and_subset(made: Made) -> None:
    for name in ("report-zh.pdf", "register-zh.pdf", "report-en.pdf"):
        out = subprocess.run(["pdffonts", str(made.files[name])], capture_output=True, text=True, check=True).stdout
        rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
        assert rows, out
        for row in rows:
            assert "Noto-Sans" in row[0] and "CJK" in row[0], out
            emb, sub, uni = row[-5:-2]
            assert (emb, sub, uni) == ("yes", "yes", "yes"), out
        assert any(row[0].endswith("+Noto-Sans-CJK-SC") for row in rows), out


@pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdffonts, pdftoppm) missing: scripts/bootstrap.sh test")
def test_every_page_renders_to_png_and_the_cover_states_the_page_count(made: Made, tmp_path: Path) -> None:
    for name, words in (("report-zh.pdf", LABELS["zh"]), ("report-en.pdf", LABELS["en"])):
        path = made.files[name]
        pages = len(PdfReader(path).pages)
        subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / name)], check=True, timeout=120)
        images = sorted(tmp_path.glob(f"{name}-*.png"))
        assert len(images) == pages >= 8
        for image in images:
            with Image.open(image) as picture:
                assert picture.size[1] > picture.size[0]  # A4 portrait
                assert ImageStat.Stat(picture.convert("L")).stddev[0] > 5, f"{image.name} is blank"
        cover = _pdf_text(path)[0]
        assert words["pages_n"].format(n=pages).replace(" ", "") in cover.replace(" ", "")
        footer = _pdf_text(path)[-1].replace(" ", "")
        assert words["page_of"].format(page=pages, pages=pages).replace(" ", "") in footer
    register = made.files["register-zh.pdf"]
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(register), str(tmp_path / "register")], check=True)
    sheets = sorted(tmp_path.glob("register-*.png"))
    assert len(sheets) == 2  # one A4 sheet per room (A1, A2; the outdoor room is no storage room)
    with Image.open(sheets[0]) as picture:
        assert picture.size[0] > picture.size[1]  # landscape


def test_the_cover_and_summary_state_site_period_standards_interpretation_and_digest(made: Made) -> None:
    config = made.config
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=config.site.tz, readonly=True)
    try:
        report = build_report(config, store, ReportRequest(FIRST_DAY, LAST_DAY, ("A1", "A2"), "zh", "张三", NOW_MS))
    finally:
        store.close()
    text = _pdf_text(made.files["report-zh.pdf"])
    cover = text[0].replace("\n", "")
    for expected in ("示范市委组织部档案室", "2025-03-01", "2025-03-31", "Asia/Shanghai", "纸质档案库", "特藏库",
                     "JGJ 25-2010", "解释 A", "张三", "14–24", "45–60", "45–55"):
        assert expected in cover, expected
    assert re.search(r"SHA-256\s*[0-9a-f]{64}", cover)
    summary = text[1]
    assert "合格" in summary and "不合格" in summary
    # A2's calibration ran out in February and one day's duty readings are missing: A2 fails
    json_report = json.loads(made.files["report.json"].read_text(encoding="utf-8"))
    a2 = next(room for room in json_report["rooms"] if room["id"] == "A2")
    assert a2["duty"]["missing"] == 2 and any(c["overdue"] for c in a2["calibration"])
    assert [room["id"] for room in json_report["rooms"]] == ["A1", "A2"]  # the outdoor room left out
    assert len(data_digest(report)) == 64
    body = "".join(text)
    assert "空调压缩机故障，已启用备用机组并通知维修" in body.replace("\n", "")  # what was done, from the ack
    assert "签字" in body and "编制人" in body and "审核人" in body


def test_the_day_by_day_table_shows_each_days_completeness(made: Made) -> None:
    json_report = json.loads(made.files["report.json"].read_text(encoding="utf-8"))
    a2 = next(room for room in json_report["rooms"] if room["id"] == "A2")
    gap_day = next(day for day in a2["daily"] if day["date"] == "2025-03-20")["quantities"]["temperature"]
    assert 55 < gap_day["completeness_pct"] < 70  # a2-th was silent 06:00–15:00
    rows = [line for page in _pdf_text(made.files["report-zh.pdf"]) for line in page.splitlines()
            if line.startswith("2025-03-")]
    gap = [line for line in rows if line.startswith("2025-03-20") and f"{gap_day['completeness_pct']:.0f} %" in line]
    assert gap, "the 20th's completeness is not in A2's day-by-day table"
    assert any(line.startswith("2025-03-19") and "100 %" in line for line in rows)  # a full day says so


def test_the_register_leaves_a_missing_duty_reading_empty_and_never_invents_one(made: Made) -> None:
    config = made.config
    db = config.resolve(config.storage.sqlite_path)
    store, alerts = SqliteStore(db, tz=config.site.tz, readonly=True), AlertReader(db)
    try:
        register = build_register(config, store, "2025-03", lang="zh", now_ms=NOW_MS, alerts=alerts)
    finally:
        alerts.close()
        store.close()
    a1, a2 = register.sheets
    assert [s.room.id for s in register.sheets] == ["A1", "A2"]
    day20 = a2.rows[19]
    assert str(day20.date) == "2025-03-20"
    assert [c.present for c in day20.cells] == [False, False]
    assert all(c.temperature is None and c.humidity is None for c in day20.cells)
    assert all(c.outdoor_temperature is not None for c in day20.cells)  # the outdoor sensor kept reporting
    assert day20.within is None and day20.recorder == ""
    assert day20.measures == ("#5 李四：更换传感器电池",)
    assert all(c.present for row in a2.rows if row.date.day != 20 for c in row.cells)
    assert all(c.present for row in a1.rows for c in row.cells)
    day23 = a2.rows[22]
    assert day23.within is False  # the humid spell: 55.9 %RH at 08:00 in a 45–55 % band
    # the PDF shows exactly what the data holds: one fewer 08:00 and 14:00 on A2's sheet than on A1's
    sheets = _pdf_text(made.files["register-zh.pdf"])

    def times(text: str, clock: str) -> int:
        return len(re.findall(rf"(?<![+\d]){clock}", text))  # not the offset of the footer's time (+08:00)

    assert times(sheets[0], "08:00") == 32 and times(sheets[0], "14:00") == 32  # 31 days and the header
    # A2: 30 days, the header, and the within-limits cell of the 20th naming what is missing (never 是)
    assert times(sheets[1], "08:00") == 32 and times(sheets[1], "14:00") == 32
    assert re.search(r"缺\s*08:00", sheets[1]) and not re.search(r"缺\s*\d", sheets[0])
    assert day20.missing == ("08:00", "14:00")
    assert "#1 王五：空调压缩机故障" in sheets[0].replace("\n", "")


def test_verify_recognises_exactly_the_files_archmon_made(made: Made, capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    cfg = str(made.folder / "archmon.toml")
    db = made.config.resolve(made.config.storage.sqlite_path)
    records = find_reports(db)
    assert {(r.document, r.format, r.lang) for r in records} >= {("report", "pdf", "zh"), ("report", "pdf", "en"),
                                                                 ("register", "pdf", "zh"), ("report", "json", "zh")}
    capsys.readouterr()
    for name, document in (("report-zh.pdf", "report"), ("register-en.pdf", "register"), ("report.json", "report")):
        assert main(["report", "verify", str(made.files[name]), "--config", cfg]) == 0
        out = capsys.readouterr().out
        assert out.startswith("VERIFIED") and f"the {document} " in out and "2025-03-01..2025-03-31" in out
        assert sha256_of(made.files[name].read_bytes()) in out and "by 张三" in out
    changed = tmp_path / "changed.pdf"
    data = bytearray(made.files["report-zh.pdf"].read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    changed.write_bytes(bytes(data))
    assert main(["report", "verify", str(changed), "--config", cfg]) == 1
    assert capsys.readouterr().out.startswith("NOT VERIFIED")
    # the options of the report itself still work beside the verify action
    assert main(["report", "--from", "2025-03-01", "--to", "2025-03-02", "--format", "csv", "--out", "-",
                 "--config", cfg]) == 0
    assert "2025-03-02" in capsys.readouterr().out
    assert main(["report", "--from", "2025-03-01", "--config", cfg]) == 2
    assert "--to, --format, --out required" in capsys.readouterr().err


def test_both_catalogues_have_the_same_keys() -> None:
    assert set(LABELS["zh"]) == set(LABELS["en"])
    for key in LABELS["zh"]:
        assert set(re.findall(r"{(\w+)}", LABELS["zh"][key])) == set(re.findall(r"{(\w+)}", LABELS["en"][key])), key


def test_a_register_month_must_be_a_month(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(made.folder / "archmon.toml")
    assert main(["register", "--month", "2025-13", "--out", "-", "--config", cfg]) == 2
    assert "--month must be YYYY-MM" in capsys.readouterr().err
