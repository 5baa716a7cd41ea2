"""Dependencies point one way (DESIGN.md §2): dashboards → alerts → collector → devices → archmon.

The core ``archmon/`` imports no other package of the project, except its two faces, ``cli.py`` and the
``app/`` package (the service wiring, one module per concern), which start the others. Checked on the source
(every import, also inside functions).
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


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(FACES):
            continue
        bad = _imports(path) - ALLOWED[package] - {package}
        if bad:
            wrong.append(f"{relative} imports {sorted(bad)}")
    assert not wrong, "\n".join(wrong)
