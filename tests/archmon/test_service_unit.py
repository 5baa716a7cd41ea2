"""``docs/archmon.service``: the stop timeout matches archmon's own bound, reload is SIGHUP, readiness is
notified, the sandbox is on; and systemd itself accepts the unit."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archmon.config import ServiceConfig

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "docs" / "archmon.service"


def _settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_unit_matches_what_archmon_run_does() -> None:
    unit = _settings()
    bound = ServiceConfig().stop_timeout_s
    stop_timeout = float(unit["TimeoutStopSec"][0])
    assert bound < stop_timeout <= bound + 30  # a little above archmon's own bound
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["KillSignal"] == ["SIGTERM"] and unit["KillMode"] == ["mixed"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["2"]  # 2: bad config
    assert unit["User"] == ["archmon"] and "dialout" in unit["SupplementaryGroups"][0]
    assert unit["ExecStart"][0].endswith("archmon run")
    # the config check is archmon run's own first step (exit 2): RestartPreventExitStatus ignores ExecStartPre
    assert "ExecStartPre" not in unit
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                      "RestrictNamespaces=yes", "LockPersonality=yes"):
        key, value = hardening.split("=")
        assert unit[key] == [value], key
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["StateDirectory"] == ["archmon"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    archmon = Path(sys.executable).with_name("archmon")
    if not archmon.exists():
        pytest.skip("no archmon entry point next to this Python")
    text = UNIT.read_text(encoding="utf-8").replace("/opt/archmon/.venv/bin/archmon", str(archmon))
    unit = tmp_path / "archmon.service"
    unit.write_text(text, encoding="utf-8")
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert not re.search(r"(?i)unknown|invalid|ignoring", run.stderr), run.stderr
