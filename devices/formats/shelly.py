"""Shelly devices: Gen1 plain-value topics and Gen2+ JSON-RPC notifications.

Gen1 (``shelly-gen1``): ``shellies/<id>/sensor/<kind>`` plain values (temperature in
``options.temperature_unit``, humidity, battery, lux; ``flood`` true/false → leak, ``state``
open/close → door, ``smoke`` true/false), ``shellies/<id>/online`` true/false.

Gen2+ (``shelly-gen2``): ``<prefix>/events/rpc`` with ``NotifyStatus``/``NotifyFullStatus``
(``params.ts`` epoch seconds; ``temperature:N.tC`` or ``tF``, ``humidity:N.rh``,
``devicepower:N.battery.percent``, ``illuminance:N.lux``, ``flood:N.alarm``, ``smoke:N.alarm``);
``<prefix>/online`` true/false; ``<prefix>/status/<component>:<N>`` component status JSON. Of several
instances of one component the lowest id is read unless ``options.extra["instance"]`` names one.
"""

from __future__ import annotations

import re
from typing import Any

from archmon.errors import DecodeError, NotSensorData
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats._util import (
    epoch_ts,
    extra_str,
    load_object,
    make_value,
    short,
    temperature,
    text_payload,
    to_bool,
    to_number,
    word,
)

__all__ = ["ShellyGen1Decoder", "ShellyGen2Decoder"]

_ONLINE = {"true": 1, "false": 0}
_GEN1_KINDS = {"temperature", "humidity", "battery", "lux", "flood", "state", "smoke"}
_COMPONENT = re.compile(r"(temperature|humidity|devicepower|illuminance|flood|smoke):(\d{1,6})")


def _online(payload: bytes) -> str:
    return "online" if word(text_payload(payload), _ONLINE, "online payload") else "offline"


class ShellyGen1Decoder:
    """Decoder for Shelly Gen1 MQTT topics."""

    name = "shelly-gen1"

    def decode(self, topic: str, payload: bytes, options: DecodeOptions) -> Decoded:
        """Decode one Shelly Gen1 message (see the module docstring for the rules)."""
        base = extra_str(options.extra, "base_topic", "shellies").rstrip("/")
        parts = topic[len(base) + 1 :].split("/") if topic.startswith(base + "/") else []
        if not parts or not parts[0]:
            raise DecodeError(f"topic {short(topic)} is not {base!r}/<id>/...")
        device = parts[0]
        prefix = f"{base}/{device}"
        if parts[1:] == ["online"]:
            return Decoded(device, prefix, availability=_online(payload))
        if len(parts) != 3 or parts[1] != "sensor":
            raise NotSensorData(f"topic {short(topic)} is not a sensor topic ({base!r}/<id>/sensor/<kind>)")
        kind = parts[2]
        if kind not in _GEN1_KINDS:
            raise NotSensorData(f"sensor/{short(kind)} is not a measured quantity")
        text = text_payload(payload)
        if kind == "temperature":
            value = make_value("temperature", temperature(text, kind, options.temperature_unit))
        elif kind == "lux":
            value = make_value("light", to_number(text, kind))
        elif kind in ("humidity", "battery"):
            value = make_value(kind, to_number(text, kind))
        elif kind == "state":
            value = make_value("door", float(word(text, {"open": 1, "close": 0, "closed": 0}, kind)))
        else:
            value = make_value("leak" if kind == "flood" else kind, float(word(text, _ONLINE, kind)))
        return Decoded(device, prefix, values=(value,))


class ShellyGen2Decoder:
    """Decoder for Shelly Gen2+ JSON-RPC notifications, status and online topics."""

    name = "shelly-gen2"

    def decode(self, topic: str, payload: bytes, options: DecodeOptions) -> Decoded:
        """Decode one Shelly Gen2+ message (see the module docstring for the rules)."""
        if topic.endswith("/online") and len(topic) > len("/online"):
            prefix = topic[: -len("/online")]
            return Decoded(_last(prefix), prefix, availability=_online(payload))
        if topic.endswith("/events/rpc") and len(topic) > len("/events/rpc"):
            prefix = topic[: -len("/events/rpc")]
            return self._rpc(prefix, load_object(payload), options)
        prefix, _, component = topic.rpartition("/status/")
        if prefix and _COMPONENT.fullmatch(component):
            status = load_object(payload)
            return Decoded(_last(prefix), prefix, values=_components({component: status}, None, options))
        raise NotSensorData(f"topic {short(topic)} is not <prefix>/events/rpc, /online or /status/<component>")

    def _rpc(self, prefix: str, data: dict[str, Any], options: DecodeOptions) -> Decoded:
        method = data.get("method")
        if method not in ("NotifyStatus", "NotifyFullStatus"):
            raise NotSensorData(f"RPC method {short(method)} is not NotifyStatus/NotifyFullStatus")
        params = data.get("params")
        if not isinstance(params, dict):
            raise DecodeError(f"{method}: params is {short(params)}, expected an object")
        src = data.get("src")
        device = src if isinstance(src, str) and src else _last(prefix)
        ts_ms = None if params.get("ts") is None else epoch_ts(params["ts"], "params.ts", unit="s")
        return Decoded(device, prefix, values=_components(params, ts_ms, options))


def _last(prefix: str) -> str:
    return prefix.rsplit("/", 1)[-1]


def _components(params: dict[str, Any], ts_ms: int | None, options: DecodeOptions) -> tuple[DecodedValue, ...]:
    chosen: dict[str, tuple[int, str]] = {}
    wanted = options.extra.get("instance") if isinstance(options.extra, dict) else None
    if wanted is not None and (isinstance(wanted, bool) or not isinstance(wanted, int)):
        raise DecodeError(f"option instance must be a component id number, got {short(wanted)}")
    for key in params:
        match = _COMPONENT.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            continue
        kind, ident = match.group(1), int(match.group(2))
        if wanted is not None and ident != wanted:
            continue
        if kind not in chosen or ident < chosen[kind][0]:
            chosen[kind] = (ident, key)
    values: list[DecodedValue] = []
    for kind, (_, key) in chosen.items():
        status = params[key]
        if not isinstance(status, dict):
            raise DecodeError(f"{key} is {short(status)}, expected an object")
        value = _component_value(kind, key, status)
        if value is not None:
            values.append(make_value(value[0], value[1], ts_ms))
    return tuple(values)


def _component_value(kind: str, key: str, status: dict[str, Any]) -> tuple[str, float] | None:
    if kind == "temperature":
        if status.get("tC") is not None:
            return "temperature", temperature(status["tC"], f"{key}.tC")
        if status.get("tF") is not None:
            return "temperature", temperature(status["tF"], f"{key}.tF", "F")
        return None
    if kind in ("flood", "smoke"):
        if status.get("alarm") is None:
            return None
        return ("leak" if kind == "flood" else "smoke"), float(to_bool(status["alarm"], f"{key}.alarm"))
    if kind == "devicepower":
        battery = status.get("battery")
        if battery is None:
            return None
        if not isinstance(battery, dict):
            raise DecodeError(f"{key}.battery is {short(battery)}, expected an object")
        raw = battery.get("percent")
        return None if raw is None else ("battery", to_number(raw, f"{key}.battery.percent"))
    field, quantity = ("rh", "humidity") if kind == "humidity" else ("lux", "light")
    raw = status.get(field)
    return None if raw is None else (quantity, to_number(raw, f"{key}.{field}"))
