"""Data-driven decoder cases: ``tests/devices/cases/<format>/<case>/`` (topic, payload, options, expected)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from devices.formats import DECODERS, decode_to_json

CASES = Path(__file__).parent / "cases"
ALL_CASES = sorted(p for p in CASES.glob("*/*") if p.is_dir())


def _load(case: Path) -> tuple[str, bytes, dict | None, list[dict]]:
    topic = (case / "topic.txt").read_text(encoding="utf-8").rstrip("\n")
    payload = (case / "payload").read_bytes()
    options_file = case / "options.json"
    options = json.loads(options_file.read_text(encoding="utf-8")) if options_file.exists() else None
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    return topic, payload, options, expected


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case(case: Path) -> None:
    topic, payload, options, expected = _load(case)
    got = decode_to_json(case.parent.name, topic, payload, options)
    if expected and "error" in expected[0]:
        assert len(got) == 1 and "error" in got[0], f"expected an error, got {got}"
        assert expected[0]["error"] in got[0]["error"]
        assert "\n" not in got[0]["error"]
        return
    assert [sorted(line) for line in got] == [sorted(line) for line in expected]
    for want, line in zip(expected, got, strict=True):
        for key, value in want.items():
            if key == "value":
                assert line[key] == pytest.approx(value, abs=1e-9), line
            else:
                assert line[key] == value, line
        if "value" in line:
            assert isinstance(line["value"], float) and math.isfinite(line["value"])


@pytest.mark.parametrize("format_name", sorted(DECODERS))
def test_every_format_has_documented_and_error_cases(format_name: str) -> None:
    cases = [c for c in ALL_CASES if c.parent.name == format_name]
    good = [c for c in cases if "error" not in json.loads((c / "expected.json").read_text())[0]]
    bad = [c for c in cases if c not in good]
    assert len(good) >= 4, f"{format_name}: needs at least 4 cases from the ecosystem's documentation"
    assert all((c / "source.txt").read_text().strip() for c in good), "every non-error case names its source"
    assert len(bad) >= 2, f"{format_name}: needs error cases"


def test_case_folders_name_registered_formats() -> None:
    assert {p.name for p in CASES.iterdir() if p.is_dir()} == set(DECODERS)
