"""Serial simulators on real pseudo-terminals: pty pair, Modbus slave, ASCII line sensor."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU, FramerType

from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.modbus_slave import (
    ModbusSlaveSimulator,
    SimDevice,
    encode_int16_x10,
    encode_kincony_x10,
    encode_uint16_x10,
)
from devices.simulators.pty_pair import PtyPair
from tests.fixtures.serial_ports import SocatPair, wait_until

pytestmark = pytest.mark.serial


def _open(path: str, timeout: float = 2.0) -> serial.Serial:
    return serial.serial_for_url(path, baudrate=9600, timeout=timeout)


def _read_exactly(port: serial.Serial, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = port.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


# -- encoders ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "raw"),
    [(-20.5, 0xFF33), (21.5, 215), (0.0, 0), (-0.1, 0xFFFF), (3276.7, 0x7FFF), (-3276.8, 0x8000)],
)
def test_int16_x10_is_twos_complement(value: float, raw: int) -> None:
    assert encode_int16_x10(value) == raw


@pytest.mark.parametrize(("value", "raw"), [(-25.0, 10250), (-0.5, 10005), (23.4, 234), (0.0, 0)])
def test_kincony_negative_temperatures_are_offset_by_10000(value: float, raw: int) -> None:
    assert encode_kincony_x10(value) == raw


def test_encoders_reject_values_they_cannot_carry() -> None:
    with pytest.raises(ValueError, match="int16"):
        encode_int16_x10(4000.0)
    with pytest.raises(ValueError, match="uint16"):
        encode_uint16_x10(-1.0)
    with pytest.raises(ValueError, match="KinCony"):
        encode_kincony_x10(1000.0)
    assert encode_uint16_x10(52.1) == 521


# -- pty pair ---------------------------------------------------------------------------------------


def test_pty_pair_relays_both_ways(pty_pair: PtyPair) -> None:
    with _open(pty_pair.a) as a, _open(pty_pair.b) as b:
        a.write(b"hello \x00\xff\r\n")
        assert _read_exactly(b, 10) == b"hello \x00\xff\r\n"  # raw: no echo, no CR/LF translation
        b.write(b"back")
        assert _read_exactly(a, 4) == b"back"
        a.timeout = 0.1
        assert a.read(10) == b""  # no echo of what a wrote


def test_pty_pair_paths_are_device_nodes_that_go_away_on_close() -> None:
    pair = PtyPair()
    paths = [pair.a, pair.b]
    assert all(p.startswith("/dev/pts/") and os.path.exists(p) for p in paths)
    handle = _open(pair.a, timeout=1.0)
    try:
        pair.close()
        with pytest.raises(serial.SerialException):
            handle.read(1)  # the device is gone under the open handle
    finally:
        handle.close()
    pair.close()  # idempotent


def test_pty_pair_unplug_makes_end_vanish_and_replug_restores_it(pty_pair: PtyPair) -> None:
    a = _open(pty_pair.a, timeout=1.0)
    try:
        pty_pair.unplug()
        assert not pty_pair.plugged
        assert not os.path.lexists(pty_pair.a)
        # (not asserting on the old /dev/pts/N: other processes may be given the number at once)
        with pytest.raises(serial.SerialException):
            a.read(1)  # the open handle sees the adapter gone
    finally:
        a.close()
    pty_pair.replug()
    assert os.path.exists(pty_pair.a)
    with _open(pty_pair.a) as a2, _open(pty_pair.b) as b:
        b.write(b"again")
        assert _read_exactly(a2, 5) == b"again"


def test_socat_pair_unplug_and_replug_keep_link_names(socat_pair: SocatPair) -> None:
    with _open(socat_pair.a) as a, _open(socat_pair.b) as b:
        a.write(b"x1")
        assert _read_exactly(b, 2) == b"x1"
    socat_pair.unplug()
    assert not Path(socat_pair.a).exists()
    assert not Path(socat_pair.b).exists()
    socat_pair.replug()
    with _open(socat_pair.a) as a, _open(socat_pair.b) as b:
        b.write(b"y2")
        assert _read_exactly(a, 2) == b"y2"


# -- Modbus slave -----------------------------------------------------------------------------------


class _Climate:
    def __init__(self) -> None:
        self.temperature = -20.5
        self.humidity = 52.3


@pytest.fixture
def climate() -> _Climate:
    return _Climate()


@pytest.fixture
def slave(socat_pair: SocatPair, climate: _Climate) -> Iterator[ModbusSlaveSimulator]:
    devices = {
        1: SimDevice(
            holding={
                0: lambda: encode_uint16_x10(climate.humidity),
                1: lambda: encode_int16_x10(climate.temperature),
            }
        ),
        2: SimDevice(discrete={i: bool(i % 3 == 0) for i in range(8)}),
        3: SimDevice(input={0: lambda: encode_kincony_x10(climate.temperature)}),
    }
    sim = ModbusSlaveSimulator(socat_pair.b, baudrate=4800, devices=devices)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def client(socat_pair: SocatPair, slave: ModbusSlaveSimulator) -> Iterator[ModbusSerialClient]:
    cli = ModbusSerialClient(socat_pair.a, framer=FramerType.RTU, baudrate=4800, timeout=0.3, retries=0)
    assert cli.connect()
    try:
        yield cli
    finally:
        cli.close()


def test_modbus_slave_serves_callable_values(client: ModbusSerialClient, climate: _Climate) -> None:
    reply = client.read_holding_registers(0, count=2, device_id=1)
    assert reply.registers == [523, 0xFF33]
    climate.temperature = 21.5
    assert client.read_holding_registers(1, count=1, device_id=1).registers == [215]
    climate.temperature = -25.0
    assert client.read_input_registers(0, count=1, device_id=3).registers == [10250]
    bits = client.read_discrete_inputs(0, count=8, device_id=2).bits[:8]
    assert bits == [True, False, False, True, False, False, True, False]


def test_modbus_slave_unknown_register_is_an_exception_response(client: ModbusSerialClient) -> None:
    reply = client.read_holding_registers(1, count=5, device_id=1)
    assert reply.isError()
    assert reply.exception_code == 2  # illegal data address
    assert client.read_input_registers(0, count=1, device_id=1).isError()  # no input table on device 1


def test_modbus_slave_silenced_device_sends_nothing_at_all(socat_pair: SocatPair, slave: ModbusSlaveSimulator) -> None:
    slave.silence(1)
    with _open(socat_pair.a, timeout=0.5) as port:
        frame = b"\x01\x03\x00\x00\x00\x02"
        port.write(frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big"))
        assert wait_until(lambda: slave.requests >= 1, 5)
        assert port.read(64) == b""  # not even an exception response
        unknown = b"\x09\x03\x00\x00\x00\x01"
        port.write(unknown + FramerRTU.compute_CRC(unknown).to_bytes(2, "big"))
        assert wait_until(lambda: slave.requests >= 2, 5)
        assert port.read(64) == b""  # an id nobody has is silent too
        slave.unsilence(1)
        port.write(frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big"))
        reply = _read_exactly(port, 9)
        assert reply[:3] == b"\x01\x03\x04"


def test_modbus_slave_corrupts_crc_of_one_device(
    socat_pair: SocatPair, slave: ModbusSlaveSimulator, client: ModbusSerialClient
) -> None:
    slave.corrupt(1)
    with pytest.raises(ModbusIOException):
        client.read_holding_registers(0, count=2, device_id=1)
    assert client.read_input_registers(0, count=1, device_id=3).registers  # others intact
    client.close()
    with _open(socat_pair.a, timeout=1.0) as port:
        frame = b"\x01\x03\x00\x00\x00\x02"
        port.write(frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big"))
        reply = _read_exactly(port, 9)
        assert len(reply) == 9
        assert FramerRTU.compute_CRC(reply[:7]) != int.from_bytes(reply[7:], "big")
    slave.corrupt(1, enabled=False)
    assert client.connect()
    assert client.read_holding_registers(0, count=2, device_id=1).registers == [523, 0xFF33]


def test_modbus_slave_fails_to_start_on_missing_port(tmp_path: Path) -> None:
    sim = ModbusSlaveSimulator(str(tmp_path / "nope"), devices={1: SimDevice()})
    with pytest.raises(RuntimeError, match="could not open"):
        sim.start()


# -- line sensor ------------------------------------------------------------------------------------


def test_line_sensor_writes_formatted_lines_and_garbage(pty_pair: PtyPair) -> None:
    values = iter([{"temperature": 21.5, "humidity": 52.14}, {"temperature": -3.04, "humidity": 40.0}])
    sim = LineSensorSimulator(pty_pair.b, lambda: next(values), interval_s=None)
    sim.open()
    try:
        with _open(pty_pair.a) as reader:
            assert sim.emit() == "T=21.5,H=52.1"
            assert sim.emit() == "T=-3.0,H=40.0"
            garbage = sim.write_garbage(2)
            assert reader.readline() == b"T=21.5,H=52.1\r\n"
            assert reader.readline() == b"T=-3.0,H=40.0\r\n"
            assert [reader.readline() for _ in garbage] == [g + b"\r\n" for g in garbage]
            assert all(not g.startswith(b"T=") or b"?" in g or b",H=" in g for g in garbage)
        assert sim.lines_written == 4
    finally:
        sim.stop()


def test_line_sensor_writes_periodically_until_stopped(pty_pair: PtyPair) -> None:
    counter = iter(range(1000))
    sim = LineSensorSimulator(
        pty_pair.b, lambda: {"temperature": float(next(counter)), "humidity": 50.0}, interval_s=0.01
    )
    with _open(pty_pair.a) as reader, sim:
        lines = [reader.readline() for _ in range(3)]
    assert lines == [b"T=0.0,H=50.0\r\n", b"T=1.0,H=50.0\r\n", b"T=2.0,H=50.0\r\n"]
    with pytest.raises(RuntimeError, match="not open"):
        sim.write_line("T=1,H=2")
