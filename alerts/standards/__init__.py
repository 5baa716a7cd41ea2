"""Archive-room standard profiles as data: one TOML file per profile, each naming its source.

Load them through :mod:`alerts.profiles`; this package only holds the files.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STANDARDS_DIR"]

STANDARDS_DIR = Path(__file__).resolve().parent
