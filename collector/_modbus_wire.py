"""pymodbus details the Modbus source needs: telling a bad CRC from a timeout, per-request timeouts."""

from __future__ import annotations

import logging

from pymodbus.client import ModbusSerialClient
from pymodbus.framer import FramerRTU

__all__ = ["CrcWatch", "apply_timeout"]

log = logging.getLogger("collector.modbus")


class CrcWatch:
    """A pymodbus ``trace_packet`` hook that notices replies whose CRC is wrong.

    pymodbus drops such a frame silently and reports a timeout; this tells the two apart.
    """

    def __init__(self) -> None:
        self.bad_crc = False
        self._device_id = -1

    def __call__(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.bad_crc = False
            self._device_id = data[0] if data else -1
        elif len(data) >= 5 and data[0] == self._device_id:
            size = 5 if data[1] & 0x80 else 5 + data[2] if data[1] in (1, 2, 3, 4) else 0
            if size and len(data) >= size:
                expected = FramerRTU.compute_CRC(data[: size - 2])
                if int.from_bytes(data[size - 2 : size], "big") != expected:
                    self.bad_crc = True
        return data


_LAYOUT_WARNED: list[bool] = []


def _warn_layout_once() -> None:
    if not _LAYOUT_WARNED:
        _LAYOUT_WARNED.append(True)
        log.warning("this pymodbus version has no comm_params.timeout_connect: per-device timeouts fall back "
                     "to the bus timeout")


def apply_timeout(client: ModbusSerialClient, timeout_s: float) -> None:
    """Set the reply timeout of the next requests.

    pymodbus 3.16's sync serial client reads its reply deadline from ``comm_params.timeout_connect``
    (the client's, for waiting on bytes, and the transaction manager's copy, for the frame deadline);
    the open pyserial port keeps the timeout it was opened with, so it is updated too (only when it
    changes: pyserial reconfigures the port on every assignment).

    Raises:
        serial.SerialException: if the port is gone.
    """
    for holder in (client, getattr(client, "transaction", None)):
        params = getattr(holder, "comm_params", None)
        if params is not None and hasattr(params, "timeout_connect"):
            params.timeout_connect = timeout_s
        elif holder is client:  # another pymodbus layout: the client's own timeout still applies
            _warn_layout_once()
    port = client.socket
    if port is not None and port.timeout != timeout_s:
        port.timeout = timeout_s
        port.write_timeout = timeout_s
