"""``archmon backup``: a verified copy taken with SQLite's online backup while ``archmon run`` stores a real
MQTT stream, and a restore from it."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from archmon.backup import BackupError, backup_database
from tests.archmon.forwarding import SENSOR, SENSORS, Stream, local
from tests.archmon.operations import ROOT, ArchmonProcess
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

TOTAL = 3000


def _site(folder: Path, broker_port: int) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "archmon.toml"
    sensors = "".join(SENSOR.format(i=i, room="paper") for i in range(SENSORS))
    path.write_text(f'[site]\nname = "bk"\n[service]\nstop_timeout_s = 10\n[http]\nenabled = false\n'
                    f'[[rooms]]\nid = "paper"\n[[mqtt]]\nid = "b"\nport = {broker_port}\n'
                    f'client_id = "archmon-backup-test"\n{sensors}', encoding="utf-8")
    return path


def _archmon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archmon", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def _rows(db: Path) -> set[tuple[str, int, float]]:
    return set(local(db))


@pytest.mark.mosquitto
@pytest.mark.slow
def test_a_backup_taken_during_a_stream_is_a_consistent_verified_snapshot_and_restores(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    config = _site(tmp_path / "site", mosquitto.port)
    db = config.parent / "archmon.db"
    stream = Stream(mosquitto.port, (int(time.time()) - 86_400) * 1000)
    process = ArchmonProcess(config, tmp_path / "run.log")
    backups: list[tuple[int, subprocess.CompletedProcess[str], int]] = []
    try:
        process.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
        publishing = threading.Thread(target=stream.publish, args=(range(TOTAL),), kwargs={"pace_s": 0.003})
        publishing.start()
        for n, at_least in enumerate((300, 1200)):
            wait_for(lambda a=at_least: len(local(db)) >= a, f"{at_least} readings stored")
            before = len(local(db))
            done = _archmon("backup", "--config", str(config), "--out", str(tmp_path / f"b{n}.db"))
            backups.append((before, done, len(local(db))))
        publishing.join(120)
        wait_for(lambda: len(local(db)) >= TOTAL, "every reading stored")
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        stream.close()
    final = _rows(db)
    assert final == set(stream.expected_local(TOTAL))
    for n, (before, done, after) in enumerate(backups):
        assert done.returncode == 0, done.stderr
        copy = tmp_path / f"b{n}.db"
        assert "integrity_check ok" in done.stdout and str(copy) in done.stdout
        assert not Path(f"{copy}-wal").exists() and not Path(f"{copy}.partial").exists()
        conn = sqlite3.connect(copy)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            readings = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        finally:
            conn.close()
        copied = _rows(copy)
        assert before <= len(copied) <= after < TOTAL  # taken while the stream went on
        assert copied <= final and len(copied) == readings  # only whole commits of what was stored
        assert f"readings {readings}" in done.stdout

    # restore: the copy put where sqlite_path says, with the service stopped, is the site as it was then
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(config, restored / "archmon.toml")
    shutil.copy(tmp_path / "b1.db", restored / "archmon.db")
    status = _archmon("status", "--config", str(restored / "archmon.toml"), "--format", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert {s["sensor"] for s in report["sensors"]} == {f"th{i}" for i in range(SENSORS)}
    assert _rows(restored / "archmon.db") == _rows(tmp_path / "b1.db")


def test_backup_refuses_an_existing_file_the_database_itself_and_a_missing_database(tmp_path: Path) -> None:
    db = tmp_path / "archmon.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE readings (x)")
    conn.executemany("INSERT INTO readings VALUES (?)", [(i,) for i in range(100)])
    conn.commit()
    out = tmp_path / "copy.db"
    out.write_text("keep me")
    with pytest.raises(BackupError, match="exists already"):
        backup_database(db, out)
    assert out.read_text() == "keep me"
    with pytest.raises(BackupError, match="the database itself"):
        backup_database(db, db, overwrite=True)
    with pytest.raises(BackupError, match="no database there"):
        backup_database(tmp_path / "nothing.db", tmp_path / "x.db")
    result = backup_database(db, out, overwrite=True)  # the WAL's uncheckpointed rows are in the copy too
    conn.close()
    assert result.rows == {"readings": 100}
    assert sqlite3.connect(out).execute("SELECT count(*) FROM readings").fetchone()[0] == 100
