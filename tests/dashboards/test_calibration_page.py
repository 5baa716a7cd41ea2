"""The sensors page shows each instrument's calibration: last date, certificate, due date, and a due-soon or
overdue mark, in Chinese and in English, from the records the CLI adds (server-rendered HTML)."""

from __future__ import annotations

import datetime as dt
import re

from alerts.calibration import add_months, record_calibration
from alerts.store import AlertStore
from archmon.timeutil import now_ms
from tests.dashboards.site import CALIBRATED_ON, Site, csrf_of


def _row(html: str, sensor: str) -> str:
    match = re.search(rf'<tr id="sensor-{sensor}".*?</tr>', html, re.S)
    assert match, sensor
    return match.group(0)


def test_the_sensors_page_shows_last_calibration_certificate_due_date_and_marks(site: Site) -> None:
    today = dt.date.today()
    overdue_on = add_months(today, -13)  # due a month ago
    soon_on = add_months(today, -12) + dt.timedelta(days=10)  # due in 10 days
    store = AlertStore(site.db)  # as `archmon calibration add` does
    try:
        record_calibration(store, site.config, "T2", overdue_on, "JL-2024-0077", offset_temperature=0.2,
                           by="王工", now_ms=now_ms())
        record_calibration(store, site.config, "T3", soon_on, "JL-2025-0415", by="王工", now_ms=now_ms())
    finally:
        store.close()
    with site.client("viewer") as client:
        zh = client.get("/sensors").text
        client.post("/account/language", data={"language": "en", "csrf": csrf_of(zh), "next": "/sensors"})
        en = client.get("/sensors").text
    assert "校准到期" in zh and "Calibration due" in en
    t1, t2, t3 = (_row(zh, s) for s in ("T1", "T2", "T3"))
    assert CALIBRATED_ON in t1 and add_months(dt.date.fromisoformat(CALIBRATED_ON), 12).isoformat() in t1
    assert "c-overdue" not in t1 and "c-due_soon" not in t1  # from the config, due in ten months
    assert overdue_on.isoformat() in t2 and "JL-2024-0077" in t2 and add_months(overdue_on, 12).isoformat() in t2
    assert "✕ 已过期" in t2 and "c-overdue" in t2
    assert "JL-2025-0415" in t3 and "▲ 即将到期" in t3 and add_months(soon_on, 12).isoformat() in t3
    assert "✕ overdue" in _row(en, "T2") and "▲ due soon" in _row(en, "T3") and "Certificate" in _row(en, "T2")
    door = _row(zh, "D1")
    assert "c-" not in door and door.count("—") >= 2  # a door needs no calibration


def test_an_instrument_without_any_calibration_is_marked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.dashboards.site import CONFIG

    text = CONFIG.replace("{sensors}", '[[sensors]]\nid = "T9"\nroom = "A1"\nsource = "broker"\n'
                                       'topic = "zigbee2mqtt/T9"\nformat = "zigbee2mqtt"\n')
    running = Site(tmp_path, config_text=text)
    try:
        with running.client("viewer") as client:
            row = _row(client.get("/sensors").text, "T9")
        assert "○ 无校准记录" in row and "c-never" in row
        running.alerts.tick()  # the engine's first look: every instrument judged
        alerts = [a for a in running.alerts.store.alerts() if a["rule"] == "calibration_due"]
        assert [(a["detail"], a["value"]) for a in alerts] == [("uncalibrated", 1.0)]
    finally:
        running.close()
