"""Fixtures of the dashboard tests: a running site (see ``site.py``), the demo's month of history
(``demo_site.py``, written once per session: tests that add to it work on a copy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboards.demo_site import WrittenHistory, write_demo_history
from tests.dashboards.site import Site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    running = Site(tmp_path)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def demo_history(tmp_path_factory: pytest.TempPathFactory) -> WrittenHistory:
    """The demo's judged month of history, ending at ``demo_site.END_MS`` (read it, or ``copy()`` it)."""
    return write_demo_history(tmp_path_factory.mktemp("demo-history"))
