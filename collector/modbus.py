"""Modbus RTU source: polls every device on one RS-485 bus, one after another, once per gather.

Each device that answered all its read blocks becomes one RawMessage (topic
``modbus/<source id>/<address>``, payload from :func:`devices.modbus.encode_modbus_payload`); the
decoders turn it into readings. A device's own timeout bounds what a silent device costs, so it never
stalls the others. Failures (timeout, CRC error, exception response, port gone) are counted per
device and logged once per condition; a lost port is reopened by a later gather.

A gather never waits for the store: the messages go into a bounded
:class:`collector.handover.Handover`, which hands them to the sink from its own thread and keeps
them until they are durable, so the readings of a poll made while the store is stalled are kept and
retried (past ``max_buffered_messages`` the oldest are dropped and counted), and a message the store
refuses for good is logged and counted, never retried forever.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import serial
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from archmon.config import Config, SensorConfig
from archmon.domain import RawMessage
from archmon.timeutil import now_ms
from collector._modbus_wire import CrcWatch, apply_timeout
from collector.handover import Handover
from collector.modbus_config import ModbusSourceConfig
from collector.source import MessageSink
from collector.spool import Spool
from devices.modbus import ReadBlock, encode_modbus_payload, get_register_map, read_plan

__all__ = ["ModbusDevice", "ModbusSource", "bus_devices"]

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


def bus_devices(config: Config, source_id: str) -> list[ModbusDevice]:
    """The devices to poll on one bus: one per address of its enabled sensors, in address order.

    Sensors at one address share the device (a digital-input module's channels); its reply timeout
    is the longest ``timeout_s`` they give.

    Raises:
        KeyError: a preset is unknown (``archmon check-config`` reports it first).
    """
    by_address: dict[int, list[SensorConfig]] = defaultdict(list)
    for sensor in config.sensors:
        if sensor.enabled and sensor.source == source_id and sensor.address is not None:
            by_address[sensor.address].append(sensor)
    devices = []
    for address, sensors in sorted(by_address.items()):
        regmap = get_register_map(sensors[0].preset or "", config.modbus_maps)
        timeouts = [s.timeout_s for s in sensors if s.timeout_s is not None]
        devices.append(ModbusDevice(address=address, blocks=read_plan(regmap),
                                    timeout_s=max(timeouts) if timeouts else None,
                                    name=",".join(s.id for s in sensors)))
    return devices


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

    Building it opens nothing; the first :meth:`gather` opens the port.

    Args:
        config: the validated Modbus source; its line settings, default ``timeout_s`` and device
            path are used.
        devices: the devices on this bus, polled in this order.
        sink: gets one RawMessage per device that answered, from the hand-over's thread (never
            from the gathering one), in chunks of at most ``max_chunk``; returns a future resolved
            once they are durable.
        max_chunk: most messages per sink call.
        spool: where messages go past the memory bound while the store is stalled (None: dropped).

    Raises:
        ValueError: if two devices share an address.
    """

    def __init__(
        self,
        config: ModbusSourceConfig,
        devices: Sequence[ModbusDevice],
        sink: MessageSink,
        *,
        max_chunk: int = 500,
        spool: Spool | None = None,
    ) -> None:
        addresses = [d.address for d in devices]
        duplicates = sorted({a for a in addresses if addresses.count(a) > 1})
        if duplicates:
            raise ValueError(f"modbus source {config.id}: Modbus addresses used twice: {duplicates}")
        self.config = config
        self.devices = tuple(devices)
        self._handover = Handover(f"modbus {config.id}", sink, max_buffered=config.max_buffered_messages,
                                  max_buffered_bytes=config.max_buffered_bytes, max_chunk=max_chunk, spool=spool)
        self._client: ModbusSerialClient | None = None
        self._crc_watch = CrcWatch()
        self._gather_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._states = {d.address: _DeviceState() for d in self.devices}
        self._totals = {"gathers": 0, "skipped_gathers": 0, "reconnects": 0, "port_lost": 0}
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
            self._handover.resume()  # what the spool holds from an earlier run, also while the bus is down
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

    def stop(self, timeout: float = 10.0) -> None:
        """Close the port (after a running gather), then wait (at most ``timeout`` s in all) for the messages
        gathered so far to be durable; what the store did not take by then is logged as lost."""
        started = time.monotonic()
        if self._gather_lock.acquire(timeout=timeout):
            try:
                self._drop_client()
            finally:
                self._gather_lock.release()
        else:
            log.warning("modbus %s: a poll still runs after %.1f s; the port is closed when it ends",
                        self.config.id, timeout)
        self._handover.stop(max(0.0, timeout - (time.monotonic() - started)))

    @property
    def interval_s(self) -> float:
        """Seconds between two gathers (``poll_interval_s``)."""
        return self.config.poll_interval_s

    @property
    def connected(self) -> bool:
        """True while the port is open."""
        with self._stats_lock:
            return self._client is not None

    @property
    def handover(self) -> Handover:
        """The buffer between the polls and the sink (its refused messages, for inspection)."""
        return self._handover

    def stats(self) -> dict[str, int]:
        """Counters: totals (``polls``, ``answers``, ``timeouts``, ``crc_errors``, ``exception_responses``,
        ``errors``, ``reconnects``, ``port_lost``, ``gathers``, ``skipped_gathers``), from the hand-over
        ``delivered``, ``dropped`` (buffer full), ``refused`` (by the store, for good), ``retries``,
        ``handler_errors`` (the sink raised), ``lost_at_stop`` (not handed over when stop() stopped waiting),
        ``spilled`` (written to the disk spool), gauges ``connected``, ``buffered`` (gathered, not yet durable, in
        memory) and ``spool_rows``, ``spool_bytes``, ``spool_oldest_ms``, ``spool_max_bytes``, ``spool_warning``
        (the disk spool), and per device
        ``device.<address>.<counter>`` including ``last_ok_ms``."""
        handover = self._handover.stats()
        with self._stats_lock:
            out = dict(self._totals)
            out["connected"] = int(self._client is not None)
            for name in ("polls", "answers", *_COUNTER.values()):
                out[name] = sum(getattr(s, name) for s in self._states.values())
            for address, state in self._states.items():
                for name in ("polls", "answers", *_COUNTER.values(), "last_ok_ms"):
                    out[f"device.{address}.{name}"] = getattr(state, name)
        out.update(handover.for_source())
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
            apply_timeout(client, device.timeout_s or self.config.timeout_s)
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
        self._handover.put(RawMessage(
            source=self.config.id,
            topic=f"modbus/{self.config.id}/{device.address}",
            payload=encode_modbus_payload(device.address, reads),
            received_ms=self._handover.stamp(),
        ))
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
            raise ValueError(f"modbus {self.config.id}: Modbus addresses used twice: {duplicates}")
        with self._stats_lock:
            for device in devices:
                self._states.setdefault(device.address, _DeviceState())
        self.devices = tuple(devices)

