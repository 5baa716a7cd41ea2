"""Loading the data-driven rule cases in ``tests/alerts/cases/<case>/``.

Each folder holds ``case.toml`` (profile or config, room overrides, alert settings, the rules under test
and actions), ``readings.csv`` (``ts,sensor,quantity,value``) and ``expected.jsonl`` (one transition per
line; only the keys given are compared).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.model import Transition
from alerts.replay import ReplayAction, profile_config, read_readings_csv, run_replay
from alerts.rules import RULES
from archmon.timeutil import parse_iso_ms

CASES = Path(__file__).parent / "cases"


@dataclass
class Case:
    name: str
    folder: Path
    spec: dict[str, Any]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.spec.get("tz", "Asia/Shanghai"))

    def run(self, db_path: Path) -> list[Transition]:
        tz = self.tz
        rows = read_readings_csv(self.folder / "readings.csv", tz)
        alerts = dict(self.spec.get("alerts", {}))
        if "rules" in self.spec:
            own = alerts.get("rules", {})
            alerts["rules"] = {name: {**own.get(name, {}), "enabled": name in self.spec["rules"]} for name in RULES}
        config = profile_config(self.spec["profile"], rows, tz.key, overrides=self.spec.get("overrides"),
                                alerts=alerts)
        actions = [
            ReplayAction(parse_iso_ms(a["ts"], tz), a["do"], {k: v for k, v in a.items() if k not in ("ts", "do")})
            for a in self.spec.get("actions", [])
        ]
        until = parse_iso_ms(self.spec["until"], tz) if "until" in self.spec else None
        return run_replay(rows, config, db_path=db_path, actions=actions, until_ms=until)

    def expected(self) -> list[dict[str, Any]]:
        path = self.folder / "expected.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_cases() -> list[Case]:
    return [
        Case(folder.name, folder, tomllib.loads((folder / "case.toml").read_text(encoding="utf-8")))
        for folder in sorted(CASES.iterdir())
        if (folder / "case.toml").is_file()
    ]


def as_compared(transitions: list[Transition], tz: ZoneInfo) -> list[dict[str, Any]]:
    return [json.loads(t.to_json(tz)) for t in transitions]
