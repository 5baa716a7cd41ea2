"""What every source on a serial port shares: the port, its line settings and the hand-over bound."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from collector.handover import DEFAULT_MAX_BUFFERED_BYTES
from collector.source import SourceConfig

__all__ = ["DEFAULT_MAX_BUFFERED", "DEFAULT_MAX_BUFFERED_BYTES", "SerialPortConfig"]

DEFAULT_MAX_BUFFERED = 10_000
"""Messages a serial source holds while the store is stalled, before it drops the oldest."""



class SerialPortConfig(SourceConfig):
    """A serial port (RS-485 adapter, RS-232 logger) and how much is held while the store is stalled.

    Attributes:
        device: the device (prefer ``/dev/serial/by-id/...``) or a pyserial URL (``rfc2217://host:port``).
        max_buffered_messages: messages read but not yet durable that the source keeps in memory
            while the store is stalled; past it the oldest not yet handed to the store are dropped,
            counted (``dropped``) and logged. At least 2 (one in flight, the newest waiting).
        max_buffered_bytes: the same bound in payload bytes (a line is at most 4096 bytes, a Modbus
            answer a few hundred), whichever is reached first.
    """

    device: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    max_buffered_messages: int = Field(default=DEFAULT_MAX_BUFFERED, ge=2, le=1_000_000)
    max_buffered_bytes: int = Field(default=DEFAULT_MAX_BUFFERED_BYTES, ge=64 * 1024, le=1024 * 1024 * 1024)
