"""A relay output on a Modbus RTU relay module: one coil, switched with FC 05 or FC 15, read back with FC 01.

Relay modules sold as "Modbus RTU 继电器模块" (2/4/8/16 channels) map relay *n* to coil *n − 1* (some
number from 1: set ``coil`` accordingly) and accept FC 05 Write Single Coil (value 0xFF00 on, 0x0000 off);
some accept only FC 15 Write Multiple Coils. The state is read back with FC 01 Read Coils, which is what
confirms a command: the write's echo only says the module took the request. Plain coils have no
device-side auto-off; a module's own "flash" (timed) commands are vendor-specific and not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["COIL_OFF", "COIL_ON", "CoilWrite", "ModbusCoil"]

COIL_ON = 0xFF00  # FC 05 value field for ON (Modbus Application Protocol v1.1b3 §6.5)
COIL_OFF = 0x0000

WriteFunction = Literal[5, 15]


@dataclass(frozen=True, slots=True)
class CoilWrite:
    """One write request: the function code, the first coil, and the coil values."""

    function: WriteFunction
    address: int
    values: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class ModbusCoil:
    """One relay output.

    Attributes:
        device_id: the module's Modbus address (1..247).
        coil: the coil number (0-based protocol address).
        function: 5 (Write Single Coil, default) or 15 (Write Multiple Coils, for modules without FC 05).
    """

    device_id: int
    coil: int
    function: WriteFunction = 5

    def __post_init__(self) -> None:
        if not 1 <= self.device_id <= 247:
            raise ValueError(f"Modbus device id must be 1..247, got {self.device_id}")
        if not 0 <= self.coil <= 0xFFFF:
            raise ValueError(f"coil address must be 0..65535, got {self.coil}")
        if self.function not in (5, 15):
            raise ValueError(f"coil write function must be 5 or 15, got {self.function}")

    def write(self, on: bool) -> CoilWrite:
        """The request that sets the coil."""
        return CoilWrite(self.function, self.coil, (on,))

    def read_back(self, bits: list[bool]) -> bool | None:
        """The coil's state from an FC 01 reply's bits (pymodbus pads them to a multiple of 8; None if
        the reply carries none)."""
        return bool(bits[0]) if bits else None
