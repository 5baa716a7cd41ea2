"""Commands to relay coils on a Modbus RTU port, each confirmed by reading the coil back (FC 01).

One :class:`ModbusLink` per serial port, holding every coil actuator on it (one master per port: a port the
collector polls cannot be shared, ``check-config`` refuses it). A command is the write (FC 05 or FC 15)
followed by a read of the coil; the read's state is the device's report, handed to ``on_message`` before
:meth:`ModbusLink.send` returns. A device that does not answer raises :class:`~archmon.errors.TransportError`
and the driver's deadline and repeats take over. Calls are serialised by a lock (the port is one line).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import serial
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from archmon.errors import TransportError
from devices.actuators import Availability, ModbusCoil, SwitchReport

__all__ = ["ModbusLink", "SerialLine"]

log = logging.getLogger(__name__)

OnMessage = Callable[[str, SwitchReport | Availability], None]


@dataclass(frozen=True, slots=True)
class SerialLine:
    """The relay module's port and line settings."""

    device: str
    baudrate: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1
    timeout_s: float = 1.0


class ModbusLink:
    """The coils on one serial port.

    Args:
        line: the port.
        coils: actuator id → its coil.
        on_message: called with (actuator id, report) after every successful read-back.
    """

    def __init__(self, line: SerialLine, coils: Mapping[str, ModbusCoil], on_message: OnMessage) -> None:
        self.line = line
        self.coils = dict(coils)
        self.on_message = on_message
        self.requests = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._client: ModbusSerialClient | None = None

    def start(self) -> None:
        """Nothing to do before the first command: the port opens on first use (and again after a loss)."""

    def stop(self) -> None:
        """Close the port."""
        with self._lock:
            self._drop()

    def send(self, actuator: str, on: bool, *, auto_off_s: int | None) -> None:
        """Write the coil, then read it back and report what it says.

        Raises:
            TransportError: the port cannot be opened or the module does not answer.
        """
        coil = self.coils[actuator]
        request = coil.write(on)
        with self._lock:
            client = self._connect()
            if request.function == 5:
                self._check(lambda: client.write_coil(request.address, request.values[0], device_id=coil.device_id),
                            f"write coil {coil.coil} of device {coil.device_id}")
            else:
                self._check(lambda: client.write_coils(request.address, list(request.values),
                                                       device_id=coil.device_id),
                            f"write coils from {coil.coil} of device {coil.device_id}")
            state = self._read(client, coil)
        self._report(actuator, state)

    def ask(self, actuator: str) -> bool:
        """Read the coil and report it.

        Raises:
            TransportError: as :meth:`send`.
        """
        coil = self.coils[actuator]
        with self._lock:
            state = self._read(self._connect(), coil)
        self._report(actuator, state)
        return True

    # -- internals --------------------------------------------------------------------------------
    def _report(self, actuator: str, state: bool | None) -> None:
        if state is not None:
            self.on_message(actuator, SwitchReport(state, "FC01"))

    def _read(self, client: ModbusSerialClient, coil: ModbusCoil) -> bool | None:
        reply = self._check(lambda: client.read_coils(coil.coil, count=1, device_id=coil.device_id),
                            f"read coil {coil.coil} of device {coil.device_id}")
        return coil.read_back(list(reply.bits))

    def _check(self, call: Callable[[], Any], what: str) -> Any:
        self.requests += 1
        try:
            reply = call()
        except (ModbusException, serial.SerialException, OSError) as exc:
            self.failures += 1
            self._drop()
            raise TransportError(f"{self.line.device}: {what}: {exc}") from None
        if reply.isError():
            self.failures += 1
            raise TransportError(f"{self.line.device}: {what}: {reply}")
        return reply

    def _connect(self) -> ModbusSerialClient:
        if self._client is not None:
            return self._client
        line = self.line
        if "://" not in line.device and not os.path.exists(line.device):
            raise TransportError(f"{line.device} does not exist")
        client = ModbusSerialClient(line.device, framer=FramerType.RTU, baudrate=line.baudrate, parity=line.parity,
                                    bytesize=line.bytesize, stopbits=line.stopbits, timeout=line.timeout_s, retries=0,
                                    name=f"control {line.device}")
        if not client.connect():
            client.close()
            raise TransportError(f"cannot open {line.device}")
        self._client = client
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except (OSError, serial.SerialException):
                log.debug("control link %s: closing the port failed", self.line.device, exc_info=True)
