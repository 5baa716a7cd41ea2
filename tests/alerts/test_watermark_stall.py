"""Judged-through watermarks during a store stall: one warning line per stall, saved once the store takes them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alerts.service import AlertService
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, site_config
from tests.fixtures.store_stall import StoreStall


def test_a_stalled_store_costs_one_warning_and_the_watermarks_are_saved_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "a.db"
    service = AlertService(site_config(tmp_path), db)
    try:
        t0 = SHANGHAI_NOON
        service.on_readings([Reading("T1", "temperature", 20.0, t0, "A1")])  # a new series: saved at once
        service.on_readings([Reading("T1", "temperature", 20.1, t0 + 60_000, "A1")])  # saved at a tick
        assert service.store.judged() == {("T1", "temperature"): t0}
        service.store.conn.execute("PRAGMA busy_timeout=50")
        caplog.set_level(logging.INFO, logger="alerts.service")
        with StoreStall(db):
            for _ in range(3):
                service._save_watermarks(None)
        failures = [r for r in caplog.records if "watermarks were not saved" in r.getMessage()]
        assert len(failures) == 1 and failures[0].levelno == logging.WARNING and failures[0].exc_info is None
        assert "database is locked" in failures[0].getMessage()
        service._save_watermarks(None)
        assert service.store.judged() == {("T1", "temperature"): t0 + 60_000}
        assert "watermarks are saved again" in caplog.text
    finally:
        service.stop()
