"""Modbus RTU register maps: presets as data files, read plans, and the JSON payload between them.

A Modbus source polls a device with :func:`read_plan`, packs what it read with
:func:`encode_modbus_payload` into a ``RawMessage`` payload (kept verbatim for quarantine) and the
pipeline turns it into values with :func:`decode_modbus_payload`. Payload shape::

    {"address": 1, "reads": [{"function": 3, "start": 0, "values": [523, 215]}]}

Register values are integers 0..65535 (0/1 for coils and discrete inputs, functions 01/02).
Encodings: ``int16`` (two's complement), ``uint16``, ``kincony`` (values ≥ 10000 are negative:
10250 → −250) and ``bit`` (nonzero → 1); then ``scale`` multiplies.
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from archmon.config import RegisterSpec
from archmon.errors import ConfigError, DecodeError
from archmon.quantities import QUANTITIES
from devices.decoded import DecodedValue

__all__ = [
    "PresetFile",
    "ReadBlock",
    "RegisterMap",
    "decode_modbus_payload",
    "encode_modbus_payload",
    "get_register_map",
    "load_presets",
    "read_plan",
]

_PRESET_PACKAGE = "devices.modbus_presets"
# Protocol limits per request: 125 registers (FC 03/04), 2000 bits (FC 01/02).
_MAX_COUNT = {1: 2000, 2: 2000, 3: 125, 4: 125}
_EMPTY: Mapping[str, Sequence[RegisterSpec]] = MappingProxyType({})


@dataclass(frozen=True)
class RegisterMap:
    """What to read from one kind of device and how to turn registers into values."""

    id: str
    registers: tuple[RegisterSpec, ...]
    name: str = ""
    baudrate: int | None = None
    parity: str | None = None


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus read request: ``count`` registers (or bits) from ``start`` with function ``function``."""

    function: int
    start: int
    count: int


class _SerialDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    baudrate: int = Field(ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    address: int = Field(default=1, ge=1, le=247)


class PresetFile(BaseModel):
    """Schema of one ``devices/modbus_presets/<id>.toml`` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*$")
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    name: str = Field(min_length=1)
    source: str = Field(min_length=1)
    notes: str = ""
    serial: _SerialDefaults
    registers: list[RegisterSpec] = Field(min_length=1)

    def register_map(self) -> RegisterMap:
        """The preset as a RegisterMap."""
        return RegisterMap(
            id=self.id,
            registers=tuple(self.registers),
            name=self.name,
            baudrate=self.serial.baudrate,
            parity=self.serial.parity,
        )


def parse_preset(text: str, source: str) -> PresetFile:
    """Validate the text of one preset file.

    Raises:
        ConfigError: not TOML or not a valid preset; each problem names ``source`` and the key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return PresetFile.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [
            f"{source}: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError(problems) from None


@functools.cache
def _presets() -> Mapping[str, RegisterMap]:
    found: dict[str, RegisterMap] = {}
    for entry in sorted(resources.files(_PRESET_PACKAGE).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        source = f"{_PRESET_PACKAGE}/{entry.name}"
        preset = parse_preset(entry.read_text(encoding="utf-8"), source)
        if preset.id != entry.name.removesuffix(".toml"):
            raise ConfigError(f"{source}: id {preset.id!r} does not match the file name")
        found[preset.id] = preset.register_map()
    return MappingProxyType(found)


def load_presets() -> dict[str, RegisterMap]:
    """Every shipped preset by id (files are read and validated once, then cached).

    Raises:
        ConfigError: a shipped preset file is invalid (a packaging bug; the schema test prevents it).
    """
    return dict(_presets())


def get_register_map(name: str, custom: Mapping[str, Sequence[RegisterSpec]] = _EMPTY) -> RegisterMap:
    """The register map called ``name``: a custom map from the config first, else a shipped preset.

    Args:
        name: a sensor's ``preset``.
        custom: the config's ``modbus_maps`` (name → register specs).

    Raises:
        KeyError: no such map; the message lists the known names.
    """
    if name in custom:
        return RegisterMap(id=name, registers=tuple(custom[name]), name=name)
    presets = _presets()
    if name in presets:
        return presets[name]
    known = sorted({*custom, *presets})
    raise KeyError(f"unknown Modbus register map {name!r}; known: {', '.join(known)}")


def read_plan(regmap: RegisterMap) -> tuple[ReadBlock, ...]:
    """The read requests that cover every register of ``regmap``: contiguous runs per function, merged.

    Blocks are ordered by function then start address and never exceed the protocol's per-request limit.
    """
    by_function: dict[int, set[int]] = {}
    for spec in regmap.registers:
        by_function.setdefault(spec.function, set()).add(spec.address)
    blocks: list[ReadBlock] = []
    for function in sorted(by_function):
        limit = _MAX_COUNT[function]
        start = previous = -2
        for address in sorted(by_function[function]):
            if address == previous + 1 and address - start < limit:
                previous = address
                continue
            if start >= 0:
                blocks.append(ReadBlock(function, start, previous - start + 1))
            start = previous = address
        blocks.append(ReadBlock(function, start, previous - start + 1))
    return tuple(blocks)


def encode_modbus_payload(address: int, reads: Sequence[tuple[ReadBlock, Sequence[int]]]) -> bytes:
    """Pack what one poll read into the JSON payload ``decode_modbus_payload`` reads.

    Args:
        address: the device (slave) address polled.
        reads: each read block with the register values (or bits) it returned.

    Raises:
        ValueError: a block's value count differs from its ``count``.
    """
    out: list[dict[str, Any]] = []
    for block, values in reads:
        if len(values) < block.count:
            raise ValueError(f"read FC{block.function:02d}@{block.start}: {len(values)} values for {block.count}")
        out.append(
            {
                "function": block.function,
                "start": block.start,
                "values": [int(v) for v in values[: block.count]],
            }
        )
    return json.dumps({"address": address, "reads": out}, separators=(",", ":")).encode("ascii")


def _registers(payload: bytes) -> dict[tuple[int, int], int]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DecodeError("Modbus payload is not JSON") from None
    reads = data.get("reads") if isinstance(data, dict) else None
    if not isinstance(reads, list):
        raise DecodeError('Modbus payload has no "reads" list')
    table: dict[tuple[int, int], int] = {}
    for index, read in enumerate(reads):
        where = f"reads[{index}]"
        if not isinstance(read, dict):
            raise DecodeError(f"{where} is not an object")
        function, start, values = read.get("function"), read.get("start"), read.get("values")
        if type(function) is not int or function not in _MAX_COUNT:
            raise DecodeError(f"{where}.function {function!r:.20} is not 1, 2, 3 or 4")
        if type(start) is not int or not 0 <= start <= 0xFFFF:
            raise DecodeError(f"{where}.start {start!r:.20} is not a register address 0..65535")
        if not isinstance(values, list) or start + len(values) > 0x10000:
            raise DecodeError(f"{where}.values is not a list of registers from {start}")
        top = 1 if function in (1, 2) else 0xFFFF
        for offset, value in enumerate(values):
            if isinstance(value, bool) and top == 1:
                value = int(value)
            if type(value) is not int or not 0 <= value <= top:
                raise DecodeError(f"{where}.values[{offset}] {value!r:.20} is not in 0..{top}")
            table[(function, start + offset)] = value
    return table


def _decode_register(spec: RegisterSpec, raw: int) -> float:
    if spec.encoding == "int16":
        number = raw - 0x10000 if raw >= 0x8000 else raw
    elif spec.encoding == "kincony":
        number = -(raw - 10000) if raw >= 10000 else raw
    elif spec.encoding == "bit":
        number = 1 if raw else 0
    else:
        number = raw
    if not math.isfinite(spec.scale):
        return number * spec.scale
    # Decimal keeps 523 x 0.1 at 52.3 rather than 52.300000000000004.
    return float(Decimal(number) * Decimal(repr(spec.scale)))


def decode_modbus_payload(regmap: RegisterMap, payload: bytes) -> tuple[DecodedValue, ...]:
    """Turn a poll's JSON payload into values with ``regmap``.

    Raises:
        DecodeError: the payload is malformed or lacks a register the map needs.
    """
    table = _registers(payload)
    values: list[DecodedValue] = []
    for spec in regmap.registers:
        raw = table.get((spec.function, spec.address))
        if raw is None:
            raise DecodeError(
                f"register FC{spec.function:02d} 0x{spec.address:04X} ({spec.quantity}) missing from payload"
            )
        known = QUANTITIES.get(spec.quantity)
        values.append(DecodedValue(spec.quantity, _decode_register(spec, raw), known.unit if known else ""))
    return tuple(values)
