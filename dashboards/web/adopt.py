"""Adopting an unassigned device into a room: a ``[[sensors]]`` table appended to the config file.

The file is backed up first (``archmon.toml.<UTC stamp>.bak`` beside it), the new file is written
atomically, validated with the same checks as ``archmon check-config``, and put back from the backup if
anything is wrong. Then the service reloads it (the app's ``reload`` callback) and the adoption is
written to the audit chain with the backup's name and the file's new SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from archmon.config import SensorKind, load_config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms, to_iso

if TYPE_CHECKING:
    from dashboards.web.context import WebContext

__all__ = ["KINDS", "AdoptError", "adopt_device", "sensor_table"]

KINDS: tuple[str, ...] = get_args(SensorKind)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class AdoptError(ValueError):
    """The device cannot be adopted as asked (the message says why)."""


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def sensor_table(*, sensor_id: str, room: str, kind: str, source: str, topic: str, fmt: str, by: str) -> str:
    """The ``[[sensors]]`` table appended for an adopted MQTT device."""
    return (f"\n# adopted from the dashboard by {by} at {to_iso(now_ms())}\n[[sensors]]\n"
            f"id = {_toml_string(sensor_id)}\nroom = {_toml_string(room)}\nkind = {_toml_string(kind)}\n"
            f"source = {_toml_string(source)}\ntopic = {_toml_string(topic)}\nformat = {_toml_string(fmt)}\n")


def adopt_device(ctx: WebContext, *, source: str, device_topic: str, sensor_id: str, room: str, kind: str,
                 by: str) -> Path:
    """Adopt an unassigned MQTT device as sensor ``sensor_id`` in ``room``; returns the backup's path.

    Raises:
        AdoptError: no config file, unknown device/room/kind, taken or bad id, not an MQTT device, or the
            new file fails validation (it is then restored).
    """
    config = ctx.config
    path = config.path
    if path is None or not Path(path).is_file():
        raise AdoptError("the service was not started from a config file: add the sensor to archmon.toml by hand")
    if not _ID.match(sensor_id):
        raise AdoptError(f"sensor id {sensor_id!r}: use letters, digits, _ . - (up to 64)")
    if any(s.id == sensor_id for s in config.sensors):
        raise AdoptError(f"sensor id {sensor_id!r} is taken")
    if ctx.room(room) is None:
        raise AdoptError(f"unknown room {room!r}")
    if kind not in KINDS:
        raise AdoptError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    device = next((d for d in ctx.store.unassigned() if d.source == source and d.device_topic == device_topic), None)
    if device is None:
        raise AdoptError(f"no unassigned device {device_topic!r} on source {source!r}")
    if not any(t.id == source and t.kind == "mqtt" for t in config.sources):
        raise AdoptError(f"source {source!r} is not an MQTT broker: add this device to archmon.toml by hand")
    text = sensor_table(sensor_id=sensor_id, room=room, kind=kind, source=source, topic=device_topic,
                        fmt=device.format, by=by)
    file = Path(path)
    with ctx.config_lock:
        original = file.read_bytes()
        backup = file.with_name(f"{file.name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.bak")
        shutil.copy2(file, backup)
        temp = file.with_name(f".{file.name}.adopt.tmp")
        temp.write_bytes(original.rstrip(b"\n") + b"\n" + text.encode("utf-8"))
        os.replace(temp, file)
        try:
            new_config = load_config(file)
            from archmon.app import check_references

            problems = check_references(new_config)
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            file.write_bytes(original)
            raise AdoptError("the config file would be invalid, nothing changed: " + "; ".join(exc.problems)) from None
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        ctx.users.audit("adopt", by, f"sensor:{sensor_id}",
                        {"source": source, "topic": device_topic, "room": room, "kind": kind, "format": device.format,
                         "config": str(file), "backup": backup.name, "sha256": digest})
        if ctx.reload is not None:
            ctx.reload(new_config)
        ctx.config = new_config
    return backup
