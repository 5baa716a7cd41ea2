"""A database that cannot be written where ``storage.sqlite_path`` says is a configuration problem, found by
``archmon check-config`` and by ``archmon run`` before it starts (exit 2, which systemd does not restart),
one line naming the key and the path, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archmon.app import storage_problems
from archmon.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, sqlite_path: str) -> Path:
    path = tmp_path / "archmon.toml"
    path.write_text(f'[site]\nname = "x"\n[storage]\nsqlite_path = "{sqlite_path}"\n[[rooms]]\nid = "paper"\n',
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("where", "expected"), [
    ("/proc/archmon.db", "cannot write in /proc"),  # a file system that takes no files (root included)
    ("/proc/archmon/data/archmon.db", "cannot write in /proc (to make /proc/archmon/data)"),
    ("{tmp}", "is not a file (a folder?)"),
])
def test_check_config_and_run_refuse_a_database_they_cannot_write(tmp_path: Path, where: str, expected: str) -> None:
    where = where.format(tmp=tmp_path)
    path = _config(tmp_path, where)
    (problem,) = storage_problems(load_config(path))
    assert problem.startswith(f"{path}: storage.sqlite_path: ") and expected in problem
    for command in ("check-config", "run"):
        run = subprocess.run([sys.executable, "-m", "archmon", command, "--config", str(path), "--http", "off"]
                             if command == "run" else [sys.executable, "-m", "archmon", command, str(path)],
                             capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
        assert run.returncode == 2, (command, run.stderr)
        assert expected in run.stderr and "Traceback" not in run.stderr, (command, run.stderr)


def test_a_database_that_can_be_made_is_fine(tmp_path: Path) -> None:
    assert storage_problems(load_config(_config(tmp_path, str(tmp_path / "new" / "deeper" / "a.db")))) == []
    assert not (tmp_path / "new").exists()  # checking made nothing
    assert list(tmp_path.iterdir()) == [tmp_path / "archmon.toml"]
