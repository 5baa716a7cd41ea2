"""Fault (d): the RS-485 adapter of a Modbus bus unplugged while ``archmon run`` polls it, then plugged in again.

A real pseudo-terminal pair (``PtyPair``: end A vanishes like a USB adapter) with pymodbus' slave simulator on
end B. Readings stop, the silence is recorded as ``stale`` alerts for every sensor on the bus, polling resumes
by itself on the same path once it exists again, the alerts clear, and the service never stops.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from devices.simulators.modbus_slave import ModbusSlaveSimulator, SimDevice, encode_int16_x10, encode_uint16_x10
from devices.simulators.pty_pair import PtyPair
from tests.archmon.operations import ArchmonProcess, query
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.serial, pytest.mark.slow]

SENSORS = {"th1": (1, "renke-rs-ws-n01"), "th2": (2, "xy-md02")}


def _bus() -> dict[int, SimDevice]:
    return {
        1: SimDevice(holding={0: lambda: encode_uint16_x10(50.0), 1: lambda: encode_int16_x10(20.0)}),
        2: SimDevice(input={1: lambda: encode_int16_x10(19.5), 2: lambda: encode_uint16_x10(51.0)}),
    }


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[PtyPair]:
    pair = PtyPair(link_dir=tmp_path / "pty")
    slave = ModbusSlaveSimulator(pair.b, baudrate=9600, devices=_bus())
    slave.start()
    try:
        yield pair
    finally:
        slave.stop()
        pair.close()


def _site(folder: Path, device: str) -> Path:
    path = folder / "archmon.toml"
    sensors = "".join(f'[[sensors]]\nid = "{sid}"\nroom = "paper"\nsource = "rs485"\naddress = {address}\n'
                      f'preset = "{preset}"\nexpected_interval_s = 1\n' for sid, (address, preset) in SENSORS.items())
    path.write_text(
        '[site]\nname = "bus"\n[service]\nstop_timeout_s = 10\n[http]\nenabled = false\n[[rooms]]\nid = "paper"\n'
        f'[[sources]]\nkind = "modbus"\nid = "rs485"\ndevice = "{device}"\nbaudrate = 9600\npoll_interval_s = 0.5\n'
        'timeout_s = 0.3\n[alerts.stale]\nfactor = 2\n' + sensors, encoding="utf-8")
    return path


def _times(db: Path, sensor: str) -> list[int]:
    return [int(row[0]) for row in query(db, "SELECT r.ts FROM readings r JOIN series s ON s.id = r.series_id "
                                             "WHERE s.sensor = ? AND s.quantity = 'temperature' ORDER BY r.ts", sensor)]


def _stale(db: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sensor, state in query(db, "SELECT sensor, state FROM alert_alerts WHERE rule = 'stale' ORDER BY id"):
        out.setdefault(str(sensor), []).append(str(state))
    return out


def test_d_a_modbus_port_unplugged_during_polling_is_recorded_as_stale_and_polling_resumes(
        tmp_path: Path, bus: PtyPair) -> None:
    db = tmp_path / "archmon.db"
    process = ArchmonProcess(_site(tmp_path, bus.a), tmp_path / "run.log")
    try:
        wait_for(lambda: all(len(_times(db, s)) >= 4 for s in SENSORS), "readings from both devices", 60)
        bus.unplug()
        unplugged_ms = int(time.time() * 1000)
        process.wait_log("modbus rs485:", "the lost port logged", 30)
        wait_for(lambda: all("active" in _stale(db).get(s, []) for s in SENSORS), "stale alerts for both sensors",
                 30)
        silent = {s: len(_times(db, s)) for s in SENSORS}
        time.sleep(1.5)  # the adapter stays out a while longer: polls go on failing, nothing is stored
        assert {s: len(_times(db, s)) for s in SENSORS} == silent
        bus.replug()
        replugged_ms = int(time.time() * 1000)
        wait_for(lambda: all(_times(db, s)[-1] > replugged_ms for s in SENSORS), "readings after the replug", 30)
        wait_for(lambda: all(_stale(db)[s][-1] != "active" for s in SENSORS), "the stale alerts to clear", 30)
        assert process.proc.poll() is None  # no crash at any point
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
    for sensor in SENSORS:
        times = _times(db, sensor)
        gap = max(b - a for a, b in pairwise(times))
        assert gap >= replugged_ms - unplugged_ms - 1000  # the silence is a gap in the record, not filled in
        assert not [t for t in times if unplugged_ms + 1000 < t < replugged_ms]
    counters = dict(query(db, "SELECT name, value FROM counters WHERE name LIKE 'source.rs485.%'"))
    assert counters["source.rs485.port_lost"] >= 1 and counters["source.rs485.reconnects"] >= 1
    log = process.log()
    assert log.count("modbus rs485: port ") == 1 and log.count("modbus rs485: ") - log.count("modbus rs485: port ") == 1
    assert "open again" in log  # the loss logged once (then counted), the return once
