"""SerialLineSource against the ASCII line-sensor simulator on real pseudo-terminals."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest

from archmon.domain import RawMessage
from collector.serial_line import MAX_LINE_BYTES, SerialLineSource
from collector.serial_line_config import LineSourceConfig
from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.pty_pair import PtyPair
from tests.fixtures.serial_ports import SocatPair, wait_until

pytestmark = pytest.mark.serial

PATTERN = r"T=(?P<temperature>-?\d+(?:\.\d+)?),H=(?P<humidity>\d+(?:\.\d+)?)"


class Recorder:
    """A thread-safe sink that records messages and says they are durable at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[RawMessage] = []
        self.fail_on: bytes | None = None

    def __call__(self, messages: Sequence[RawMessage]) -> Future[None]:
        if any(m.payload == self.fail_on for m in messages):
            raise RuntimeError("sink rejected it")
        with self._lock:
            self.messages.extend(messages)
        done: Future[None] = Future()
        done.set_result(None)
        return done

    @property
    def payloads(self) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages]


def _config(device: str, **extra: object) -> LineSourceConfig:
    return LineSourceConfig(id="logger1", device=device, line_pattern=PATTERN, reconnect_max_s=0.2, **extra)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sensor(pty_pair: PtyPair) -> Iterator[LineSensorSimulator]:
    sim = LineSensorSimulator(pty_pair.b, lambda: {"temperature": 21.5, "humidity": 52.1}, interval_s=None)
    sim.open()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def source(pty_pair: PtyPair, recorder: Recorder) -> Iterator[SerialLineSource]:
    src = SerialLineSource(_config(pty_pair.a), recorder)
    src.start()
    try:
        assert wait_until(lambda: src.stats()["connected"] == 1)
        yield src
    finally:
        src.stop()


def test_lines_are_delivered_in_order_without_line_endings(
    source: SerialLineSource, sensor: LineSensorSimulator, recorder: Recorder
) -> None:
    expected = [f"T={t / 10:.1f},H=50.0".encode() for t in range(-50, 150, 7)]
    for line in expected:
        sensor.write_line(line)
    assert wait_until(lambda: len(recorder.payloads) >= len(expected))
    assert recorder.payloads == expected
    message = recorder.messages[0]
    assert (message.source, message.topic) == ("logger1", "line/logger1")
    assert message.received_ms > 0
    assert source.stats()["lines"] == len(expected)


def test_partial_line_is_held_until_its_line_ending(
    source: SerialLineSource, sensor: LineSensorSimulator, recorder: Recorder
) -> None:
    sensor.write_raw(b"T=21")
    assert wait_until(lambda: source.stats()["bytes"] >= 4)
    assert recorder.payloads == []  # half a line is not a line
    sensor.write_raw(b".5,H=5")
    assert wait_until(lambda: source.stats()["bytes"] >= 10)
    sensor.write_raw(b"2.1\r\nT=22.0,H=53.0\r")
    sensor.write_raw(b"\nT=23.0,H=54.0\n\r\n\n")  # bare LF, and empty lines are skipped
    assert wait_until(lambda: len(recorder.payloads) >= 3)
    assert recorder.payloads == [b"T=21.5,H=52.1", b"T=22.0,H=53.0", b"T=23.0,H=54.0"]


def test_garbage_lines_are_still_delivered(
    source: SerialLineSource, sensor: LineSensorSimulator, recorder: Recorder
) -> None:
    sensor.emit()
    garbage = sensor.write_garbage(3)
    sensor.emit()
    assert wait_until(lambda: len(recorder.payloads) >= 5)
    assert recorder.payloads == [b"T=21.5,H=52.1", *garbage, b"T=21.5,H=52.1"]


def test_handler_failure_is_counted_and_reading_goes_on(
    source: SerialLineSource, sensor: LineSensorSimulator, recorder: Recorder
) -> None:
    recorder.fail_on = b"BAD"
    sensor.write_line("BAD")
    sensor.write_line("T=1.0,H=2.0")
    assert wait_until(lambda: len(recorder.payloads) >= 1)
    assert source.handover.wait_drained(10)
    assert recorder.payloads == [b"T=1.0,H=2.0"]
    stats = source.stats()
    assert stats["handler_errors"] >= 1 and stats["refused"] == 1 and stats["delivered"] == 1
    assert [r.message.payload for r in source.handover.refused()] == [b"BAD"]


def test_an_overlong_line_is_cut_once_and_the_rest_of_it_skipped(
    source: SerialLineSource, sensor: LineSensorSimulator, recorder: Recorder
) -> None:
    """Half a megabyte without a line ending (a wrong baud rate, a device sending garbage) is one message of
    MAX_LINE_BYTES, not a hundred pieces: memory per port stays bounded, the next line is read as usual."""
    blob = bytes(range(33, 127)) * (500_000 // 94)
    for start in range(0, len(blob), 4096):  # paced: a pty's input queue holds a few KiB
        sensor.write_raw(blob[start:start + 4096])
        end = min(start + 4096, len(blob))
        assert wait_until(lambda end=end: source.stats()["bytes"] == end)
    sensor.write_raw(b"\nT=1.0,H=2.0\n")
    assert wait_until(lambda: len(recorder.payloads) == 2, timeout=30)
    assert recorder.payloads == [blob[:MAX_LINE_BYTES], b"T=1.0,H=2.0"]
    stats = source.stats()
    assert (stats["overlong_lines"], stats["lines"], stats["bytes"]) == (1, 2, len(blob) + 13)
    sensor.write_raw(b"y" * (3 * MAX_LINE_BYTES) + b"\r\nT=3.0,H=4.0\r\n")  # within one read, too
    assert wait_until(lambda: len(recorder.payloads) == 4)
    assert recorder.payloads[2:] == [b"y" * MAX_LINE_BYTES, b"T=3.0,H=4.0"]
    assert source.stats()["overlong_lines"] == 2


def test_reconnects_after_unplug_and_replug(socat_pair: SocatPair, recorder: Recorder) -> None:
    src = SerialLineSource(_config(socat_pair.a), recorder)
    sim = LineSensorSimulator(socat_pair.b, lambda: {"temperature": 20.0, "humidity": 50.0}, interval_s=None)
    src.start()
    try:
        assert wait_until(lambda: src.stats()["connected"] == 1)
        sim.open()
        sim.write_line("T=20.0,H=50.0")
        assert wait_until(lambda: len(recorder.payloads) == 1)
        sim.write_raw(b"T=20.")  # a partial line when the cable goes
        assert wait_until(lambda: src.stats()["bytes"] >= 20)
        sim.stop()
        socat_pair.unplug()
        assert wait_until(lambda: src.stats()["connected"] == 0)
        socat_pair.replug()
        assert wait_until(lambda: src.stats()["connected"] == 1)
        sim.open()
        sim.write_line("T=21.0,H=51.0")
        assert wait_until(lambda: len(recorder.payloads) == 2)
        assert recorder.payloads == [b"T=20.0,H=50.0", b"T=21.0,H=51.0"]  # the torn line is not glued on
        stats = src.stats()
        assert stats["reconnects"] == 1
        assert stats["partial_dropped"] == 1
    finally:
        sim.stop()
        src.stop()


def test_missing_port_is_retried_and_stop_is_prompt(tmp_path: Path, recorder: Recorder) -> None:
    link = tmp_path / "ttyS9"
    src = SerialLineSource(_config(str(link)), recorder)
    src.start()
    try:
        assert wait_until(lambda: src.stats()["open_failures"] >= 3)  # backoff capped at 0.2 s
        with PtyPair() as pair:
            link.symlink_to(pair.a)
            assert wait_until(lambda: src.stats()["connected"] == 1)
            thread = src._thread
            src.stop(timeout=10)
            assert thread is not None
            assert not thread.is_alive()
            assert src.stats()["connected"] == 0
            assert src.stats()["reconnects"] == 0  # the first open is not a reconnect
    finally:
        src.stop()
