"""ModbusSource against the real pymodbus slave simulator on real pseudo-terminals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest

from archmon.domain import RawMessage
from collector.modbus import ModbusDevice, ModbusSource
from collector.modbus_config import ModbusSourceConfig
from devices.modbus import ReadBlock, decode_modbus_payload, get_register_map, read_plan
from devices.simulators.modbus_slave import (
    ModbusSlaveSimulator,
    SimDevice,
    encode_int16_x10,
    encode_kincony_x10,
    encode_uint16_x10,
)
from devices.simulators.pty_pair import PtyPair

pytestmark = pytest.mark.serial



class Climate:
    """What the simulated transmitters measure; tests change it between polls."""

    def __init__(self) -> None:
        self.temperature = -20.5
        self.humidity = 52.3
        self.door_open = True


class Recorder:
    """A sink that records messages and says they are durable at once; it can be told to fail."""

    def __init__(self) -> None:
        self.messages: list[RawMessage] = []
        self.fail = False

    def __call__(self, messages: Sequence[RawMessage]) -> Future[None]:
        if self.fail:
            raise RuntimeError("sink down")
        self.messages.extend(messages)
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def take(self) -> dict[int, dict]:
        out = {json.loads(m.payload)["address"]: json.loads(m.payload) for m in self.messages}
        self.messages.clear()
        return out


def _bus(climate: Climate) -> dict[int, SimDevice]:
    return {
        1: SimDevice(  # Renke RS-WS-N01: FC03, 0 = RH ×10, 1 = T ×10 int16
            holding={
                0: lambda: encode_uint16_x10(climate.humidity),
                1: lambda: encode_int16_x10(climate.temperature),
            }
        ),
        2: SimDevice(  # XY-MD02: FC04, 1 = T ×10 int16, 2 = RH ×10
            input={
                1: lambda: encode_int16_x10(climate.temperature),
                2: lambda: encode_uint16_x10(climate.humidity),
            }
        ),
        3: SimDevice(  # KinCony SHT30: FC03, 0 = T ×10 (negatives ≥ 10000), 1 = RH ×10
            holding={
                0: lambda: encode_kincony_x10(climate.temperature),
                1: lambda: encode_uint16_x10(climate.humidity),
            }
        ),
        4: SimDevice(discrete={0: lambda: climate.door_open, **{i: False for i in range(1, 8)}}),
    }


PRESETS = {1: "renke-rs-ws-n01", 2: "xy-md02", 3: "kincony-sht30", 4: "di8"}


def _devices(timeout_s: float | None = 0.5) -> list[ModbusDevice]:
    return [
        ModbusDevice(address, read_plan(get_register_map(preset)), timeout_s=timeout_s, name=preset)
        for address, preset in PRESETS.items()
    ]


def _config(device: str, **extra: object) -> ModbusSourceConfig:
    return ModbusSourceConfig(id="bus1", device=device, baudrate=4800, timeout_s=0.6, **extra)


def _gather(source: ModbusSource) -> None:
    """One gather, then wait until the hand-over gave the sink everything it read."""
    source.gather()
    assert source.handover.wait_drained(10)


@pytest.fixture
def climate() -> Climate:
    return Climate()


@pytest.fixture
def slave(pty_pair: PtyPair, climate: Climate) -> Iterator[ModbusSlaveSimulator]:
    sim = ModbusSlaveSimulator(pty_pair.b, baudrate=4800, devices=_bus(climate))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def source(pty_pair: PtyPair, slave: ModbusSlaveSimulator, recorder: Recorder) -> Iterator[ModbusSource]:
    src = ModbusSource(_config(pty_pair.a), _devices(), recorder)
    try:
        yield src
    finally:
        src.stop()


def _decoded(payload: dict, address: int) -> dict[str, float]:
    regmap = get_register_map(PRESETS[address])
    return {v.quantity: v.value for v in decode_modbus_payload(regmap, json.dumps(payload).encode())}


def test_one_gather_polls_every_device_on_the_bus(source: ModbusSource, recorder: Recorder) -> None:
    _gather(source)
    assert [m.topic for m in recorder.messages] == [f"modbus/bus1/{a}" for a in (1, 2, 3, 4)]
    assert all(m.source == "bus1" and m.received_ms > 0 for m in recorder.messages)
    payloads = recorder.take()
    assert payloads[1] == {"address": 1, "reads": [{"function": 3, "start": 0, "values": [523, 0xFF33]}]}
    assert payloads[4]["reads"] == [{"function": 2, "start": 0, "values": [1, 0, 0, 0, 0, 0, 0, 0]}]
    for address in (1, 2, 3):
        assert _decoded(payloads[address], address) == {"temperature": -20.5, "humidity": 52.3}
    stats = source.stats()
    assert (stats["polls"], stats["answers"], stats["timeouts"]) == (4, 4, 0)
    assert all(stats[f"device.{a}.last_ok_ms"] > 0 for a in PRESETS)


def test_values_follow_the_simulated_climate(source: ModbusSource, recorder: Recorder, climate: Climate) -> None:
    _gather(source)
    recorder.take()
    climate.temperature, climate.humidity, climate.door_open = 23.4, 61.0, False
    _gather(source)
    payloads = recorder.take()
    assert _decoded(payloads[3], 3) == {"temperature": 23.4, "humidity": 61.0}
    assert payloads[4]["reads"][0]["values"][0] == 0


def test_silent_device_is_a_timeout_and_the_others_still_answer(
    source: ModbusSource, recorder: Recorder, slave: ModbusSlaveSimulator
) -> None:
    slave.silence(2)
    _gather(source)
    assert sorted(recorder.take()) == [1, 3, 4]  # same gather: devices after the silent one answered
    _gather(source)
    stats = source.stats()
    assert stats["device.2.timeouts"] == 2
    assert stats["device.2.answers"] == 0
    assert stats["timeouts"] == 2
    assert stats["device.3.answers"] == 2
    slave.unsilence(2)
    _gather(source)
    assert sorted(recorder.take()) == [1, 2, 3, 4]
    assert source.stats()["device.2.last_ok_ms"] > 0


def test_device_timeout_overrides_the_source_timeout(pty_pair: PtyPair, slave: ModbusSlaveSimulator) -> None:
    """The per-device timeout is what the client waits: visible in its comm params after the poll."""
    devices = [
        ModbusDevice(1, (ReadBlock(3, 0, 2),), timeout_s=0.15),
        ModbusDevice(2, (ReadBlock(4, 1, 2),)),
    ]
    src = ModbusSource(_config(pty_pair.a), devices, Recorder())
    try:
        seen: list[float] = []
        real_poll = src._poll

        def spy(client, device):  # type: ignore[no-untyped-def]
            outcome = real_poll(client, device)
            seen.append(client.transaction.comm_params.timeout_connect)
            return outcome

        src._poll = spy  # type: ignore[method-assign]
        _gather(src)
        assert seen == [0.15, 0.6]
    finally:
        src.stop()


def test_crc_error_is_counted_apart_from_timeouts(
    source: ModbusSource, recorder: Recorder, slave: ModbusSlaveSimulator
) -> None:
    slave.corrupt(1)
    _gather(source)
    assert sorted(recorder.take()) == [2, 3, 4]
    stats = source.stats()
    assert stats["device.1.crc_errors"] == 1
    assert stats["device.1.timeouts"] == 0
    slave.corrupt(1, enabled=False)
    _gather(source)
    assert sorted(recorder.take()) == [1, 2, 3, 4]


def test_exception_response_is_counted(pty_pair: PtyPair, slave: ModbusSlaveSimulator, recorder: Recorder) -> None:
    devices = [
        ModbusDevice(1, (ReadBlock(3, 0, 2), ReadBlock(3, 10, 1))),  # register 10 does not exist
        ModbusDevice(2, (ReadBlock(4, 1, 2),)),
    ]
    src = ModbusSource(_config(pty_pair.a), devices, recorder)
    try:
        _gather(src)
    finally:
        src.stop()
    assert sorted(recorder.take()) == [2]  # device 1 did not answer every block: no message
    stats = src.stats()
    assert stats["device.1.exception_responses"] == 1
    assert stats["exception_responses"] == 1


def test_port_unplugged_then_replugged_resumes_polling(
    pty_pair: PtyPair, source: ModbusSource, recorder: Recorder
) -> None:
    _gather(source)
    assert len(recorder.take()) == 4
    pty_pair.unplug()
    _gather(source)  # notices, never raises
    assert recorder.take() == {}
    stats = source.stats()
    assert stats["port_lost"] == 1
    assert stats["connected"] == 0
    _gather(source)  # port still gone: a reconnect attempt, no exception
    assert source.stats()["reconnects"] == 1
    pty_pair.replug()
    _gather(source)
    assert sorted(recorder.take()) == [1, 2, 3, 4]
    stats = source.stats()
    assert stats["connected"] == 1
    assert stats["reconnects"] == 2
    assert stats["port_lost"] == 1


def test_missing_port_at_start_does_not_raise(tmp_path: Path, recorder: Recorder) -> None:
    src = ModbusSource(_config(str(tmp_path / "ttyUSB9")), _devices(), recorder)  # no I/O here
    _gather(src)
    _gather(src)
    stats = src.stats()
    assert stats["polls"] == 0
    assert stats["connected"] == 0
    assert stats["reconnects"] == 1
    src.stop()


def test_a_stopped_source_polls_and_delivers_again(source: ModbusSource, recorder: Recorder) -> None:
    _gather(source)
    source.stop()
    assert not source.connected
    _gather(source)  # reopens the port and hands over again
    assert len(recorder.messages) == 8
    assert source.stats()["delivered"] == 8


def test_handler_failure_is_counted_and_polling_goes_on(source: ModbusSource, recorder: Recorder) -> None:
    recorder.fail = True
    _gather(source)
    stats = source.stats()
    assert (stats["refused"], stats["delivered"], stats["buffered"]) == (4, 0, 0)
    assert stats["handler_errors"] >= 4
    recorder.fail = False
    _gather(source)
    assert len(recorder.take()) == 4
    assert source.stats()["delivered"] == 4


def test_overlapping_gather_is_skipped(source: ModbusSource, recorder: Recorder) -> None:
    entered, release = threading.Event(), threading.Event()
    real_poll = source._poll

    def slow_poll(client, device):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(10)
        return real_poll(client, device)

    source._poll = slow_poll  # type: ignore[method-assign]
    worker = threading.Thread(target=source.gather)
    worker.start()
    try:
        assert entered.wait(10)
        _gather(source)
        assert source.stats()["skipped_gathers"] == 1
    finally:
        release.set()
        worker.join(10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": 0, "blocks": (ReadBlock(3, 0, 1),)}, "1-247"),
        ({"address": 248, "blocks": (ReadBlock(3, 0, 1),)}, "1-247"),
        ({"address": 1, "blocks": ()}, "no register blocks"),
        ({"address": 1, "blocks": (ReadBlock(3, 0, 1),), "timeout_s": 0}, "timeout_s"),
    ],
)
def test_modbus_device_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModbusDevice(**kwargs)


def test_duplicate_addresses_are_rejected(tmp_path: Path) -> None:
    devices = [ModbusDevice(5, (ReadBlock(3, 0, 1),)), ModbusDevice(5, (ReadBlock(4, 0, 1),))]
    with pytest.raises(ValueError, match=r"\[5\]"):
        ModbusSource(_config(str(tmp_path / "x")), devices, Recorder())
