"""A Modbus RTU bus of simulated devices: a pymodbus serial server whose registers are callables.

Every register or bit is read from a callable at request time, so values can follow a simulated
climate. Devices can be silenced (no reply at all, like an absent RS-485 device) and the CRC of a
device's replies can be corrupted (to exercise CRC error counters). Coils can be written (FC 05, FC 15)
when the device has an ``on_write`` hook (a relay module, ``devices.simulators.modbus_relay``); everything
else is read-only.

pymodbus 3.16 answers a request for an unknown device id with an error reply unless the server has
``ignore_missing_devices=True`` and its datastore raises ``NoSuchIdException``; this module gives the
server a small datastore of its own (:class:`_CallableStore`) that does exactly that for unknown and
silenced ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData
from pymodbus.simulator import SimDevice as _PymodbusSimDevice

__all__ = [
    "ModbusSlaveSimulator",
    "RegisterValue",
    "SimDevice",
    "encode_int16_x10",
    "encode_kincony_x10",
    "encode_uint16_x10",
]

log = logging.getLogger(__name__)

RegisterValue = int | bool | Callable[[], int | bool]
"""A register or bit: a constant or a callable read at every request."""


def encode_int16_x10(value: float) -> int:
    """Encode a value ×10 as an int16 register in two's complement (Renke, XY-MD02): −20.5 → 0xFF33.

    Raises:
        ValueError: if the value does not fit in int16 after scaling.
    """
    raw = round(value * 10)
    if not -32768 <= raw <= 32767:
        raise ValueError(f"{value!r} ×10 does not fit in int16")
    return raw & 0xFFFF


def encode_uint16_x10(value: float) -> int:
    """Encode a non-negative value ×10 as a uint16 register (humidity 52.1 → 521).

    Raises:
        ValueError: if the value is negative or too large after scaling.
    """
    raw = round(value * 10)
    if not 0 <= raw <= 0xFFFF:
        raise ValueError(f"{value!r} ×10 does not fit in uint16")
    return raw


def encode_kincony_x10(value: float) -> int:
    """Encode a temperature ×10 the KinCony way: negatives as 10000 + |value ×10| (−25.0 → 10250).

    Raises:
        ValueError: if the value is outside what the encoding can carry.
    """
    raw = round(value * 10)
    if raw < 0:
        if raw <= -10000:
            raise ValueError(f"{value!r} is below what the KinCony encoding can carry")
        return 10000 + (-raw)
    if raw >= 10000:
        raise ValueError(f"{value!r} ×10 collides with the KinCony negative range (≥ 10000)")
    return raw


@dataclass
class SimDevice:
    """One simulated Modbus device: address -> value (constant or callable) per data table.

    Attributes:
        holding: holding registers (function 03), 16-bit unsigned values.
        input: input registers (function 04).
        coils: coils (function 01).
        discrete: discrete inputs (function 02).
        on_write: called with (first coil, values) for a coil write (functions 05 and 15); None: coils are
            read-only (the write is refused with ILLEGAL FUNCTION).
    """

    holding: Mapping[int, RegisterValue] = field(default_factory=dict)
    input: Mapping[int, RegisterValue] = field(default_factory=dict)
    coils: Mapping[int, RegisterValue] = field(default_factory=dict)
    discrete: Mapping[int, RegisterValue] = field(default_factory=dict)
    on_write: Callable[[int, list[bool]], None] | None = None

    def table(self, function: int) -> Mapping[int, RegisterValue] | None:
        """The data table a function code addresses (None for other functions); a single-coil write's
        echo reads the coil back (function 05)."""
        return {1: self.coils, 5: self.coils, 2: self.discrete, 3: self.holding, 4: self.input}.get(function)


class _CallableStore:
    """The datastore interface pymodbus' request handler calls, backed by :class:`SimDevice` callables."""

    def __init__(self, owner: ModbusSlaveSimulator) -> None:
        self._owner = owner

    def device_ids(self) -> list[int]:
        return list(self._owner.devices)

    def _device(self, device_id: int) -> SimDevice:
        device = self._owner.devices.get(device_id)
        if device is None or device_id in self._owner.silenced:
            raise NoSuchIdException(f"device {device_id} is absent or silenced")
        return device

    async def async_getValues(  # pymodbus' method name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        table = self._device(device_id).table(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        values: list[int] = []
        for register in range(address, address + count):
            if register not in table:
                return ExcCodes.ILLEGAL_ADDRESS
            source = table[register]
            try:
                value = source() if callable(source) else source
            except Exception:
                log.exception("modbus simulator: device %d register %d callable failed", device_id, register)
                return ExcCodes.DEVICE_FAILURE
            values.append(int(value) & 0xFFFF)
        if func_code in (1, 2, 5):
            return [bool(v) for v in values]
        return values

    async def async_setValues(  # pymodbus' method name
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        device = self._device(device_id)
        if func_code not in (5, 15) or device.on_write is None:
            return ExcCodes.ILLEGAL_FUNCTION  # the simulated transmitters are read-only
        if any(coil not in device.coils for coil in range(address, address + len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        device.on_write(address, [bool(v) for v in values])
        return None


class ModbusSlaveSimulator:
    """Several simulated Modbus RTU devices on one serial port, served from a background thread.

    Args:
        port: serial device path (one end of a pty pair).
        baudrate, parity, bytesize, stopbits: line settings.
        devices: device id -> :class:`SimDevice`.

    Example:
        >>> sim = ModbusSlaveSimulator(pair.b, baudrate=4800, devices={  # doctest: +SKIP
        ...     1: SimDevice(holding={0: lambda: 523, 1: lambda: encode_int16_x10(-20.5)})})
        >>> sim.start(); ...; sim.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        bytesize: int = 8,
        stopbits: int = 1,
        devices: Mapping[int, SimDevice],
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.bytesize = bytesize
        self.stopbits = stopbits
        self.devices: dict[int, SimDevice] = dict(devices)
        self.silenced: set[int] = set()
        self.corrupt_crc: set[int] = set()
        self.requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None

    def silence(self, device_id: int) -> None:
        """Make a device stop answering entirely (as if it were unplugged from the bus)."""
        self.silenced.add(device_id)

    def unsilence(self, device_id: int | None = None) -> None:
        """Let a silenced device (or every device, when None) answer again."""
        if device_id is None:
            self.silenced.clear()
        else:
            self.silenced.discard(device_id)

    def corrupt(self, device_id: int, enabled: bool = True) -> None:
        """Send this device's replies with a broken CRC (or, with ``enabled=False``, stop doing so)."""
        if enabled:
            self.corrupt_crc.add(device_id)
        else:
            self.corrupt_crc.discard(device_id)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self.requests += 1
            return data
        if data and data[0] in self.corrupt_crc:
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def start(self, timeout: float = 5.0) -> None:
        """Open the port and serve requests in a background thread.

        Raises:
            RuntimeError: if the server could not open the port within ``timeout``.
        """
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._serve(loop, ready, failure))
            except BaseException as exc:
                failure.append(exc)
            finally:
                ready.set()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=f"modbus-sim {self.port}", daemon=True)
        self._thread = thread
        thread.start()
        if not ready.wait(timeout) or failure:
            self.stop()
            raise RuntimeError(f"modbus simulator could not open {self.port}: {failure or 'timeout'}")
        log.debug("modbus simulator serving devices %s on %s", sorted(self.devices), self.port)

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        stopping: asyncio.Future[None] = loop.create_future()
        self._loop, self._stopping = loop, stopping
        placeholder = _PymodbusSimDevice(0, simdata=SimData(0, values=0, datatype=DataType.REGISTERS))
        server = ModbusSerialServer(
            placeholder,
            framer=FramerType.RTU,
            port=self.port,
            baudrate=self.baudrate,
            parity=self.parity,
            bytesize=self.bytesize,
            stopbits=self.stopbits,
            ignore_missing_devices=True,
            trace_packet=self._trace_packet,
        )
        server.context = _CallableStore(self)  # type: ignore[assignment]  # duck-typed datastore
        try:
            await server.serve_forever(background=True)
        except BaseException as exc:
            failure.append(exc)
            await server.shutdown()
            return
        ready.set()
        try:
            await stopping
        finally:
            await server.shutdown()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the port and end the background thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        self._thread = self._loop = self._stopping = None
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(lambda: stopping.done() or stopping.set_result(None))
        thread.join(timeout)
        if thread.is_alive():
            log.warning("modbus simulator on %s did not stop within %.1f s", self.port, timeout)

    def __enter__(self) -> ModbusSlaveSimulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
