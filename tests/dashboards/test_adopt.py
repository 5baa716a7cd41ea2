"""Adopting devices from the sensors page, against the real app and config file: the file keeps its
permissions, every adoption has its own backup, a refused one changes nothing, a failed reload puts the
file back, and the reloaded alert engine still judges doors against the access register."""

from __future__ import annotations

import os
import sqlite3
import stat
import tomllib
from pathlib import Path

from archmon.config import load_config
from archmon.domain import Reading
from archmon.errors import ConfigError
from archmon.timeutil import now_ms
from tests.dashboards.site import Site, csrf_of

INJECTION = 'zigbee2mqtt/x"\n[[rooms]]\nid = "EVIL"\nname_zh = "e"\nprofile = "paper"\n#\x7f'


def _adopt(client, token: str, topic: str, sensor_id: str, room: str = "B1", kind: str = "temperature"):  # type: ignore[no-untyped-def]
    return client.post("/sensors/adopt", data={"source": "broker", "device_topic": topic, "sensor_id": sensor_id,
                                               "room": room, "kind": kind, "csrf": token})


def _unassigned_section(html: str) -> str:
    return html.split('id="unassigned"')[1].split('id="quarantine"')[0]


def _audits(site: Site, kind: str) -> int:
    conn = sqlite3.connect(site.db)
    try:
        return conn.execute("SELECT count(*) FROM audit_log WHERE kind = ?", (kind,)).fetchone()[0]
    finally:
        conn.close()


def test_adoptions_keep_the_files_permissions_and_each_has_its_own_backup(site: Site) -> None:
    os.chmod(site.config_path, 0o600)
    for topic in ("zigbee2mqtt/n1", "zigbee2mqtt/n2", INJECTION):
        site.store_unassigned(topic)
    before = [site.config_path.read_bytes()]
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/sensors").text)
        for i, topic in enumerate(("zigbee2mqtt/n1", "zigbee2mqtt/n2", INJECTION)):  # within a second
            assert "adopted=" in _adopt(admin, token, topic, f"N{i}").headers["location"]
            before.append(site.config_path.read_bytes())
    assert stat.S_IMODE(os.stat(site.config_path).st_mode) == 0o600
    backups = sorted(site.dir.glob("archmon.toml.*.bak"))
    assert len(backups) == 3 and sorted(b.read_bytes() for b in backups) == sorted(before[:3])
    assert all(stat.S_IMODE(os.stat(b).st_mode) == 0o600 for b in backups)
    assert not list(site.dir.glob(".archmon.toml.*"))  # no temporary file left
    config = load_config(site.config_path)
    assert [r.id for r in config.rooms] == ["A1", "A2", "B1"]  # the topic stayed a string
    assert next(s for s in config.sensors if s.id == "N2").topic == INJECTION
    assert _audits(site, "adopt") == 3


def test_a_refused_adoption_changes_nothing_and_leaves_no_backup(site: Site) -> None:
    from collector.records import Batch, UnassignedRecord

    site.store.write_many([Batch(unassigned=[UnassignedRecord(now_ms(), "broker", "zigbee2mqtt/odd", "no-such-format",
                                                              b"{}", "[]")])])
    original = site.config_path.read_bytes()
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/sensors").text)
        refused = _adopt(admin, token, "zigbee2mqtt/odd", "X1")
        assert "error=adopt_invalid" in refused.headers["location"]
        assert "新的配置文件无效，未做任何修改" in admin.get(refused.headers["location"]).text
    assert site.config_path.read_bytes() == original
    assert not list(site.dir.glob("*.bak")) and _audits(site, "adopt") == 0


def test_a_reload_that_fails_puts_the_file_back_and_audits_no_adoption(site: Site) -> None:
    site.store_unassigned("zigbee2mqtt/n1")
    original = site.config_path.read_bytes()

    def refuse(config: object) -> None:
        raise ConfigError(["alerts.rules.x: the service says no"])

    site.ctx.reload = refuse
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/sensors").text)
        failed = _adopt(admin, token, "zigbee2mqtt/n1", "N1")
        assert failed.status_code == 303 and "error=adopt_reload_failed" in failed.headers["location"]
        page = admin.get(failed.headers["location"]).text
        assert "服务拒绝了新的配置，已恢复原配置文件" in page and "zigbee2mqtt/n1" in _unassigned_section(page)
    assert site.config_path.read_bytes() == original
    assert not list(site.dir.glob("*.bak")) and _audits(site, "adopt") == 0
    assert all(s.id != "N1" for s in site.ctx.config.sensors)


def test_an_adopted_device_is_no_longer_unassigned_and_cannot_be_adopted_twice(site: Site) -> None:
    site.store_unassigned("zigbee2mqtt/n1")
    site.store_unassigned("zigbee2mqtt/T1")  # a configured sensor's topic, seen unassigned before it was added
    with site.client("admin") as admin:
        page = admin.get("/sensors").text
        assert "zigbee2mqtt/n1" in _unassigned_section(page) and "zigbee2mqtt/T1" not in _unassigned_section(page)
        token = csrf_of(page)
        _adopt(admin, token, "zigbee2mqtt/n1", "N1")
        assert "zigbee2mqtt/n1" not in _unassigned_section(admin.get("/sensors").text)
        again = _adopt(admin, token, "zigbee2mqtt/n1", "N2")
        assert "error=adopt_configured" in again.headers["location"]
    assert [s.id for s in load_config(site.config_path).sensors if s.topic == "zigbee2mqtt/n1"] == ["N1"]


def test_the_alert_engine_reloaded_by_an_adoption_judges_the_new_door_against_the_register(tmp_path: Path) -> None:
    site = Site(tmp_path, reload_alerts=True)
    try:
        site.store_unassigned("zigbee2mqtt/D9")
        site.alerts.tick()
        with site.client("admin") as admin:
            token = csrf_of(admin.get("/sensors").text)
            assert "adopted=D9" in _adopt(admin, token, "zigbee2mqtt/D9", "D9", kind="door").headers["location"]
        assert tomllib.loads(site.config_path.read_text(encoding="utf-8"))["sensors"][-1]["id"] == "D9"
        now = now_ms()
        site.store_readings([Reading("D9", "door", 0.0, now - 5 * 60_000, "B1"),
                             Reading("D9", "door", 1.0, now - 2 * 60_000, "B1")])  # its grace is over
        site.alerts.tick()
        alerts = [a for a in site.alerts.store.alerts() if a["rule"] == "unregistered_entry"]
        assert [(a["sensor"], a["state"]) for a in alerts] == [("D9", "active")]
    finally:
        site.close()
