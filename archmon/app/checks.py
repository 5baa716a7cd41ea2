"""Checks of a configuration beyond its schema, shared by ``archmon check-config`` and ``archmon run``:
references between sections, every source table with its kind's schema, alert and notification settings,
and whether the database file can be written where ``storage.sqlite_path`` says."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from archmon.config import Config, reference_problems
from archmon.errors import ConfigError
from collector.routing import decode_options
from collector.sources import SourceCheck, source_problems

__all__ = ["check_references", "storage_problems"]


def check_references(config: Config, *, checked: SourceCheck | None = None, secrets: bool = True) -> list[str]:
    """Problems the core schema cannot see, one line each: references between sections (for a config
    loaded with ``references=False``), every source table checked with its kind's schema
    (``sources[2] (bus1).baudrate: ...``), what each kind needs of its sensors (MQTT topic and a known
    format, Modbus address and a known preset...), decoder options, alert and notification settings.

    Args:
        config: the configuration.
        checked: its source tables already validated (:func:`collector.sources.check_sources`).
        secrets: also check that every notification channel's secret can be read (``check-config``); a
            running service (False) starts without a channel whose secret is missing and marks it down.
    """
    from alerts import check_config as check_alerts
    from alerts.control import control_problems
    from alerts.notify import check_config as check_notify
    from alerts.notify import check_run_config
    from dashboards.reports.settings import check_config as check_reports

    where = config.label
    problems = [f"{where}: {p}" for p in reference_problems(config)]
    problems += source_problems(config, checked=checked)
    for i, sensor in enumerate(config.sensors):
        try:
            decode_options(sensor.options, device_tz=config.site.timezone)
        except ConfigError as exc:
            problems += [f"{where}: sensors[{i}] ({sensor.id}).options: {p.removeprefix('decode options: ')}"
                         for p in exc.problems]
    problems += [f"{where}: {p}" for p in check_alerts(config)]
    problems += [f"{where}: {p}" for p in check_reports(config)]
    problems += [f"{where}: {p}" for p in control_problems(config)]
    # A running service does not stop for one notification channel's missing secret: that channel is down
    # (and says so through the others); check-config stays strict.
    problems += [f"{where}: {p}" for p in (check_notify if secrets else check_run_config)(config)]
    from collector.forward import forward_problems

    problems += forward_problems(config, secrets=secrets)  # (a running service queues without a readable token)
    from dashboards.city.link import link_problems, site_name_problems

    if secrets:  # check-config (a running site still publishes: the central warns of the shared level)
        problems += site_name_problems(config)
    for table, where_key in ((config.city, "city.broker"), (config.central, "central.broker")):
        if table is not None and table.enabled:
            problems += link_problems(config, table.broker, where_key)
    return problems


def storage_problems(config: Config) -> list[str]:
    """Whether this user can keep the database where ``storage.sqlite_path`` says: an existing file must be a
    file it can read and write; its folder (or, if the folder does not exist yet, the nearest folder that
    does, where it will be made) must take new files (SQLite's ``-wal`` and ``-shm`` files are made beside
    the database). The folder is probed with a temporary file, removed at once: permission bits alone do not
    tell for root, a read-only mount or a sandbox (systemd's ``ProtectSystem=strict``).

    Returns:
        One line per problem, naming the file and the key (empty: fine).
    """
    path = config.resolve(config.storage.sqlite_path)
    where = f"{config.label}: storage.sqlite_path"
    if path.exists() and not path.is_file():
        return [f"{where}: {path} is not a file (a folder?); name the database file, e.g. {path / 'archmon.db'}"]
    if path.is_file():
        try:
            os.close(os.open(path, os.O_RDWR))
        except OSError as exc:
            return [f"{where}: {path}: cannot open the database for writing ({exc.strerror}); "
                    "the service's user needs read and write access to it"]
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return [f"{where}: {path}: {existing} is not a folder"]
    try:
        if existing == folder:
            tempfile.TemporaryFile(dir=folder, prefix=".archmon-probe-").close()
        else:
            Path(tempfile.mkdtemp(dir=existing, prefix=".archmon-probe-")).rmdir()
    except OSError as exc:
        made = "" if existing == folder else f" (to make {folder})"
        return [f"{where}: {path}: cannot write in {existing}{made}: {exc.strerror}; the database and its -wal "
                "and -shm files need a folder the service's user can write (under systemd: /var/lib/archmon)"]
    return []
