"""A simulated Modbus RTU relay module (2/4/8/16 channels) on a serial port: coils that obey and read back.

Relay *n* is coil *n − 1*; FC 05 and FC 15 switch them, FC 01 reads them (the pymodbus serial server of
:class:`~devices.simulators.modbus_slave.ModbusSlaveSimulator`). :meth:`ModbusRelayModule.silence` makes the
module stop answering (unplugged from the bus, or its power gone); every switch is recorded with the
simulated time, so a test can check minimum on/off times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from devices.simulators.modbus_slave import ModbusSlaveSimulator, SimDevice
from devices.simulators.plugs import Switch

__all__ = ["ModbusRelayModule"]


class ModbusRelayModule:
    """A relay module with ``channels`` coils at one Modbus address.

    Args:
        port: the serial device (one end of a pty pair).
        clock: simulated time in ms (stamps the switch history).
        address: the module's Modbus address.
        channels: number of relays.
        baudrate: line speed.
    """

    def __init__(self, port: str, clock: Callable[[], int], *, address: int = 1, channels: int = 8,
                 baudrate: int = 9600) -> None:
        self.clock = clock
        self.address = address
        self.relays = [False] * channels
        self.history: dict[int, list[Switch]] = {i: [] for i in range(channels)}
        self.writes = 0
        self._lock = threading.Lock()
        device = SimDevice(coils={i: (lambda i=i: self.relays[i]) for i in range(channels)}, on_write=self._write)
        self.bus = ModbusSlaveSimulator(port, baudrate=baudrate, devices={address: device})

    def _write(self, first: int, values: list[bool]) -> None:
        with self._lock:
            self.writes += 1
            for coil, value in enumerate(values, start=first):
                if self.relays[coil] != value:
                    self.history[coil].append(Switch(self.clock(), value, "command"))
                self.relays[coil] = value

    def is_on(self, coil: int) -> bool:
        """Whether relay ``coil`` (0-based) is closed."""
        return self.relays[coil]

    def silence(self) -> None:
        """Stop answering (the relays keep their state)."""
        self.bus.silence(self.address)

    def unsilence(self) -> None:
        """Answer again."""
        self.bus.unsilence(self.address)

    def start(self) -> ModbusRelayModule:
        """Serve on the port (background thread)."""
        self.bus.start()
        return self

    def stop(self) -> None:
        """Close the port."""
        self.bus.stop()

    def __enter__(self) -> ModbusRelayModule:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
