"""Adopting an unassigned device into a room: a ``[[sensors]]`` table appended to the config file.

The new text is validated first, with the same checks as ``archmon check-config``: a refused adoption
changes nothing and leaves no backup. Then the file is backed up (``archmon.toml.<UTC stamp>.bak`` beside
it, never overwriting an earlier backup), the new file is written beside it with the original's
permissions and put in place atomically, and the service reloads it (the app's ``reload`` callback). If
the reload fails, the original is put back (atomically too) and the backup removed; only an adoption
that took effect is written to the audit chain, with the backup's name and the file's new SHA-256.
Devices whose topic a configured sensor already has are no longer unassigned (:func:`unassigned_devices`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from archmon.config import Config, SensorKind, parse_config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms, to_iso

if TYPE_CHECKING:
    from dashboards.web.context import WebContext

__all__ = ["KINDS", "AdoptError", "adopt_device", "sensor_table", "unassigned_devices"]

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = get_args(SensorKind)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class AdoptError(ValueError):
    """The device cannot be adopted as asked (the message says why).

    Attributes:
        code: what went wrong, for the dashboard's catalogues (``error.<code>``); the message is English.
        params: the values the message names.
    """

    def __init__(self, message: str, code: str = "adopt", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


def _toml_string(text: str) -> str:
    # a JSON string is a TOML basic string, except that TOML also wants DEL escaped
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def sensor_table(*, sensor_id: str, room: str, kind: str, source: str, topic: str, fmt: str, by: str) -> str:
    """The ``[[sensors]]`` table appended for an adopted MQTT device."""
    return (f"\n# adopted from the dashboard by {_toml_string(by)[1:-1]} at {to_iso(now_ms())}\n[[sensors]]\n"
            f"id = {_toml_string(sensor_id)}\nroom = {_toml_string(room)}\nkind = {_toml_string(kind)}\n"
            f"source = {_toml_string(source)}\ntopic = {_toml_string(topic)}\nformat = {_toml_string(fmt)}\n")


def unassigned_devices(ctx: WebContext) -> list[Any]:
    """The collector's unassigned devices that no configured sensor listens to (an adopted device stays in
    the collector's table until the collector sees it again as a sensor)."""
    taken = {(s.source, s.topic) for s in ctx.config.sensors if s.topic}
    return [d for d in ctx.store.unassigned() if (d.source, d.device_topic) not in taken]


def _validated(file: Path, text: bytes) -> Config:
    """The configuration ``text`` would give as ``file``, checked as ``archmon check-config`` checks it."""
    try:
        config = parse_config(tomllib.loads(text.decode("utf-8")), source=str(file), path=file.resolve())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    from archmon.app import check_references

    problems = check_references(config, secrets=False)
    if problems:
        raise ConfigError(problems)
    return config


def _write_beside(file: Path, data: bytes, mode: int, owner: tuple[int, int]) -> None:
    """Write ``data`` to a new file beside ``file`` with its permissions and owner, then put it in place
    atomically (a reader sees the old file or the new one, never a part)."""
    fd, name = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        with contextlib.suppress(PermissionError):  # only root may give a file away; the owner is us then
            os.chown(temp, *owner)
        os.replace(temp, file)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _backup(file: Path, data: bytes, mode: int) -> Path:
    """A new backup of ``file`` (``NAME.<UTC stamp with ms>.bak``, ``-1``, ``-2``... if taken)."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    for n in range(1000):
        backup = file.with_name(f"{file.name}.{stamp}{f'-{n}' if n else ''}.bak")
        try:
            with open(backup, "xb") as handle:
                handle.write(data)
        except FileExistsError:
            continue
        os.chmod(backup, mode)
        return backup
    raise AdoptError("cannot name a new backup of the config file", "adopt_backup")


def adopt_device(ctx: WebContext, *, source: str, device_topic: str, sensor_id: str, room: str, kind: str,
                 by: str) -> Path:
    """Adopt an unassigned MQTT device as sensor ``sensor_id`` in ``room``; returns the backup's path.

    Raises:
        AdoptError: no config file, unknown device/room/kind, taken or bad id, not an MQTT device, the new
            file fails validation (nothing is changed), or the service refuses it (the file is put back).
    """
    config = ctx.config
    path = config.path
    if path is None or not Path(path).is_file():
        raise AdoptError("the service was not started from a config file: add the sensor to archmon.toml by hand",
                         "adopt_no_file")
    if not _ID.match(sensor_id):
        raise AdoptError(f"sensor id {sensor_id!r}: use letters, digits, _ . - (up to 64)", "adopt_bad_id",
                         id=sensor_id[:64])
    if any(s.id == sensor_id for s in config.sensors):
        raise AdoptError(f"sensor id {sensor_id!r} is taken", "adopt_id_taken", id=sensor_id)
    if ctx.room(room) is None:
        raise AdoptError(f"unknown room {room!r}", "adopt_unknown_room", room=room[:64])
    if kind not in KINDS:
        raise AdoptError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}", "adopt_unknown_kind", kind=kind[:64])
    taken = next((s for s in config.sensors if s.source == source and s.topic == device_topic), None)
    if taken is not None:
        raise AdoptError(f"sensor {taken.id} already listens to {device_topic!r}", "adopt_configured",
                         device=device_topic[:200], sensor=taken.id)
    device = next((d for d in ctx.store.unassigned() if d.source == source and d.device_topic == device_topic), None)
    if device is None:
        raise AdoptError(f"no unassigned device {device_topic!r} on source {source!r}", "adopt_unknown_device",
                         device=device_topic[:200], source=source[:64])
    if not any(t.id == source and t.kind == "mqtt" for t in config.sources):
        raise AdoptError(f"source {source!r} is not an MQTT broker: add this device to archmon.toml by hand",
                         "adopt_not_mqtt", source=source[:64])
    text = sensor_table(sensor_id=sensor_id, room=room, kind=kind, source=source, topic=device_topic,
                        fmt=device.format, by=by)
    file = Path(path)
    with ctx.config_lock:
        original = file.read_bytes()
        info = os.stat(file)
        mode, owner = stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
        changed = original.rstrip(b"\n") + b"\n" + text.encode("utf-8")
        try:
            new_config = _validated(file, changed)
        except ConfigError as exc:
            raise AdoptError("the config file would be invalid, nothing changed: " + "; ".join(exc.problems),
                             "adopt_invalid", problems="; ".join(exc.problems)[:500]) from None
        backup = _backup(file, original, mode)
        try:
            _write_beside(file, changed, mode, owner)
        except OSError as exc:
            backup.unlink(missing_ok=True)
            raise AdoptError(f"cannot write {file}: {exc}", "adopt_write", problem=str(exc)[:300]) from None
        try:
            if ctx.reload is not None:
                ctx.reload(new_config)
        except Exception as exc:  # the service refused it: the running configuration and the file agree again
            log.exception("adoption of %s: the reload failed; %s put back", sensor_id, file)
            _write_beside(file, original, mode, owner)
            backup.unlink(missing_ok=True)
            raise AdoptError(f"the service refused the new configuration, nothing changed: {exc}",
                             "adopt_reload_failed", problem=str(exc)[:500]) from None
        ctx.config = new_config
        digest = hashlib.sha256(changed).hexdigest()
        ctx.users.audit("adopt", by, f"sensor:{sensor_id}",
                        {"source": source, "topic": device_topic, "room": room, "kind": kind, "format": device.format,
                         "config": str(file), "backup": backup.name, "sha256": digest})
    return backup
