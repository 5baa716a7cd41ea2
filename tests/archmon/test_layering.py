"""Dependencies point one way (DESIGN.md §2): dashboards → alerts → collector → devices → archmon.

The core ``archmon/`` imports no other package of the project, except its two faces, ``cli.py`` and the
``app/`` package (the service wiring, one module per concern), which start the others. Checked on the source
(every import, also inside functions).

Climate control, ``alerts/control/`` (the top level is fixed, DESIGN.md §2), sits above the rest of
``alerts``: dashboards → alerts.control → alerts → collector → devices → archmon. It may import ``devices``
(the actuators' command formats) besides what ``alerts`` may; nothing else in ``alerts`` imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("archmon", "devices", "collector", "alerts", "dashboards")
ALLOWED = {
    "archmon": set(),
    "devices": {"archmon"},
    "collector": {"archmon", "devices"},
    "alerts": {"archmon", "collector"},
    "dashboards": {"archmon", "devices", "collector", "alerts"},
}
FACES = ("archmon/cli.py", "archmon/app/")
CONTROL = "alerts/control/"
CONTROL_MAY_ALSO = {"devices"}


def _modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _modules(path)} & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(FACES):
            continue
        allowed = ALLOWED[package] | (CONTROL_MAY_ALSO if relative.startswith(CONTROL) else set())
        bad = _imports(path) - allowed - {package}
        if bad:
            wrong.append(f"{relative} imports {sorted(bad)}")
    assert not wrong, "\n".join(wrong)


def test_climate_control_sits_above_the_rest_of_alerts() -> None:
    wrong = []
    for path in sorted((ROOT / "alerts").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(CONTROL):
            continue
        bad = sorted(name for name in _modules(path) if name == "alerts.control" or name.startswith("alerts.control."))
        if bad:
            wrong.append(f"{relative} imports {bad}")
    assert not wrong, "\n".join(wrong)
    assert (ROOT / CONTROL / "__init__.py").is_file()
