"""Modbus RTU source: polls every device on one RS-485 bus, one after another, once per gather.

Each device that answered all its read blocks becomes one RawMessage (topic
``modbus/<source id>/<address>``, payload from :func:`devices.modbus.encode_modbus_payload`); the
decoders turn it into readings. A device's own timeout bounds what a silent device costs, so it never
stalls the others. Failures (timeout, CRC error, exception response, port gone) are counted per
device and logged once per condition; a lost port is reopened by a later gather.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import serial
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerRTU, FramerType

from archmon.config import SerialSourceConfig
from archmon.domain import RawMessage
from archmon.timeutil import now_ms
from devices.modbus import ReadBlock, encode_modbus_payload

__all__ = ["ModbusDevice", "ModbusSource"]

log = logging.getLogger(__name__)

Outcome = Literal["ok", "timeout", "crc", "exception", "error", "port"]
_COUNTER = {
    "timeout": "timeouts",
    "crc": "crc_errors",
    "exception": "exception_responses",
    "error": "errors",
}


@dataclass(frozen=True)
class ModbusDevice:
    """One device on the bus and the register blocks to read from it each poll.

    Attributes:
        address: Modbus device id (1-247).
        blocks: what to read, in order; the device counts as answered only if every block is.
        timeout_s: reply timeout for this device (None: the source's ``timeout_s``).
        name: a label for logs (the sensor id, for instance).
    """

    address: int
    blocks: tuple[ReadBlock, ...]
    timeout_s: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.address <= 247:
            raise ValueError(f"Modbus device address must be 1-247 (got {self.address!r})")
        if not self.blocks:
            raise ValueError(f"Modbus device {self.address} has no register blocks to read")
        if self.timeout_s is not None and not 0 < self.timeout_s <= 30:
            raise ValueError(f"Modbus device {self.address}: timeout_s must be in (0, 30] (got {self.timeout_s!r})")

    @property
    def label(self) -> str:
        """``address`` or ``address (name)`` for log lines."""
        return f"{self.address} ({self.name})" if self.name else str(self.address)


class _CrcWatch:
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


@dataclass
class _DeviceState:
    polls: int = 0
    answers: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    exception_responses: int = 0
    errors: int = 0
    last_ok_ms: int = 0
    condition: Outcome = "ok"


class ModbusSource:
    """Polls Modbus RTU devices on one serial port.

    Args:
        config: the validated serial source (``protocol = "modbus"``); its line settings, default
            ``timeout_s`` and device path are used.
        devices: the devices on this bus, polled in this order.
        handler: called (in the gathering thread) with one RawMessage per device that answered.

    Raises:
        ValueError: if two devices share an address.
    """

    def __init__(
        self,
        config: SerialSourceConfig,
        devices: Sequence[ModbusDevice],
        handler: Callable[[RawMessage], Any],
    ) -> None:
        addresses = [d.address for d in devices]
        duplicates = sorted({a for a in addresses if addresses.count(a) > 1})
        if duplicates:
            raise ValueError(f"serial[{config.id}]: Modbus addresses used twice: {duplicates}")
        self.config = config
        self.devices = tuple(devices)
        self._handler = handler
        self._client: ModbusSerialClient | None = None
        self._crc_watch = _CrcWatch()
        self._gather_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._states = {d.address: _DeviceState() for d in self.devices}
        self._totals = {"gathers": 0, "skipped_gathers": 0, "reconnects": 0, "port_lost": 0, "handler_errors": 0}
        self._port_down = False

    # -- public -----------------------------------------------------------------------------------

    def gather(self) -> None:
        """Poll every device once, one after another; never raises.

        A gather that starts while the previous one still runs is skipped (and counted).
        """
        if not self._gather_lock.acquire(blocking=False):
            self._count("skipped_gathers")
            log.warning("modbus %s: previous poll still running; skipping this one", self.config.id)
            return
        try:
            self._count("gathers")
            client = self._connect()
            if client is None:
                return
            for device in self.devices:
                if self._poll(client, device) == "port":
                    break
        except Exception:
            log.exception("modbus %s: unexpected error during a poll", self.config.id)
        finally:
            self._gather_lock.release()

    def close(self) -> None:
        """Close the port (waits for a running gather to finish)."""
        with self._gather_lock:
            self._drop_client()

    def stats(self) -> dict[str, int]:
        """Counters: totals (``polls``, ``answers``, ``timeouts``, ``crc_errors``, ``exception_responses``,
        ``errors``, ``reconnects``, ``port_lost``, ``gathers``, ``skipped_gathers``, ``handler_errors``,
        ``connected``) and per device ``device.<address>.<counter>`` including ``last_ok_ms``."""
        with self._stats_lock:
            out = dict(self._totals)
            out["connected"] = int(self._client is not None)
            for name in ("polls", "answers", *_COUNTER.values()):
                out[name] = sum(getattr(s, name) for s in self._states.values())
            for address, state in self._states.items():
                for name in ("polls", "answers", *_COUNTER.values(), "last_ok_ms"):
                    out[f"device.{address}.{name}"] = getattr(state, name)
            return out

    # -- port -------------------------------------------------------------------------------------

    def _count(self, name: str, delta: int = 1) -> None:
        with self._stats_lock:
            self._totals[name] += delta

    def _connect(self) -> ModbusSerialClient | None:
        if self._client is not None:
            return self._client
        cfg = self.config
        if self._port_down:
            self._count("reconnects")
        if "://" not in cfg.device and not os.path.exists(cfg.device):
            self._port_failed(f"{cfg.device} does not exist")
            return None
        client = ModbusSerialClient(
            cfg.device,
            framer=FramerType.RTU,
            baudrate=cfg.baudrate,
            parity=cfg.parity,
            bytesize=cfg.bytesize,
            stopbits=cfg.stopbits,
            timeout=cfg.timeout_s,
            retries=0,
            name=f"modbus {cfg.id}",
            trace_packet=self._crc_watch,
        )
        if not client.connect():
            client.close()
            self._port_failed(f"cannot open {cfg.device}")
            return None
        if self._port_down:
            log.info("modbus %s: %s open again", cfg.id, cfg.device)
        self._port_down = False
        with self._stats_lock:
            self._client = client
        return client

    def _port_failed(self, reason: str) -> None:
        if not self._port_down:
            log.warning("modbus %s: %s; will retry on every poll", self.config.id, reason)
        self._port_down = True

    def _drop_client(self) -> None:
        with self._stats_lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except (OSError, serial.SerialException):
                log.debug("modbus %s: closing the port failed", self.config.id, exc_info=True)

    def _lost(self, exc: BaseException) -> None:
        self._count("port_lost")
        self._port_failed(f"port {self.config.device} lost ({exc})")
        self._drop_client()

    # -- polling ----------------------------------------------------------------------------------

    def _poll(self, client: ModbusSerialClient, device: ModbusDevice) -> Outcome:
        state = self._states[device.address]
        with self._stats_lock:
            state.polls += 1
        try:
            _apply_timeout(client, device.timeout_s or self.config.timeout_s)
        except (OSError, serial.SerialException) as exc:
            self._lost(exc)
            return "port"
        reads: list[tuple[ReadBlock, Sequence[int]]] = []
        for block in device.blocks:
            outcome, detail, values = self._read(client, device, block)
            if outcome == "port":
                self._lost(detail)
                return outcome
            if outcome != "ok":
                self._failed(device, state, outcome, f"{detail} (block fc={block.function} start={block.start})")
                return outcome
            reads.append((block, values))
        self._answered(device, state)
        message = RawMessage(
            source=self.config.id,
            topic=f"modbus/{self.config.id}/{device.address}",
            payload=encode_modbus_payload(device.address, reads),
            received_ms=now_ms(),
        )
        try:
            self._handler(message)
        except Exception:
            self._count("handler_errors")
            log.exception("modbus %s: handler failed for device %s", self.config.id, device.label)
        return "ok"

    def _read(
        self, client: ModbusSerialClient, device: ModbusDevice, block: ReadBlock
    ) -> tuple[Outcome, Any, list[int]]:
        read = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
            4: client.read_input_registers,
        }.get(block.function)
        if read is None:
            return "error", f"unsupported function {block.function}", []
        try:
            result = read(block.start, count=block.count, device_id=device.address)
        except ConnectionException as exc:
            return "port", exc, []
        except (OSError, serial.SerialException) as exc:
            return "port", exc, []
        except ModbusIOException as exc:
            if self._crc_watch.bad_crc:
                return "crc", "reply with a bad CRC", []
            return "timeout", f"no reply: {exc}", []
        except ModbusException as exc:
            return "error", str(exc), []
        if result.isError():
            code = getattr(result, "exception_code", "?")
            return "exception", f"exception response code {code}", []
        if block.function in (1, 2):
            return "ok", None, [int(bit) for bit in result.bits[: block.count]]
        registers = list(result.registers)
        if len(registers) < block.count:
            return "error", f"short reply: {len(registers)} of {block.count} registers", []
        return "ok", None, registers[: block.count]

    def _failed(self, device: ModbusDevice, state: _DeviceState, outcome: Outcome, detail: str) -> None:
        with self._stats_lock:
            counter = _COUNTER[outcome]
            setattr(state, counter, getattr(state, counter) + 1)
            changed, state.condition = state.condition != outcome, outcome
        if changed:
            log.warning("modbus %s: device %s: %s", self.config.id, device.label, detail)

    def _answered(self, device: ModbusDevice, state: _DeviceState) -> None:
        with self._stats_lock:
            state.answers += 1
            state.last_ok_ms = now_ms()
            recovered, state.condition = state.condition != "ok", "ok"
        if recovered:
            log.info("modbus %s: device %s answers again", self.config.id, device.label)

    def set_devices(self, devices: Sequence[ModbusDevice]) -> None:
        """Poll ``devices`` from the next gather on (``archmon run`` on SIGHUP); counters are kept (also
        those of devices no longer polled, until a restart).

        Raises:
            ValueError: if two devices share an address (nothing is changed).
        """
        addresses = [d.address for d in devices]
        duplicates = sorted({a for a in addresses if addresses.count(a) > 1})
        if duplicates:
            raise ValueError(f"serial[{self.config.id}]: Modbus addresses used twice: {duplicates}")
        with self._stats_lock:
            for device in devices:
                self._states.setdefault(device.address, _DeviceState())
        self.devices = tuple(devices)


_LAYOUT_WARNED: list[bool] = []


def _warn_layout_once() -> None:
    if not _LAYOUT_WARNED:
        _LAYOUT_WARNED.append(True)
        log.warning("this pymodbus version has no comm_params.timeout_connect: per-device timeouts fall back "
                     "to the bus timeout")


def _apply_timeout(client: ModbusSerialClient, timeout_s: float) -> None:
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
