"""Building the InfluxDB target from the configuration: its secrets, its client, its outbox limits, and what
``archmon check-config`` says about ``[forward.influxdb]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archmon.config import Config, read_secret
from archmon.errors import ConfigError
from archmon.forward_config import InfluxForwardConfig
from collector.forward.outbox import OutboxLimits

if TYPE_CHECKING:
    from collector.forward.influx import InfluxClient

__all__ = ["client_for", "forward_problems", "make_client", "outbox_limits"]

WHERE = "forward.influxdb"


def outbox_limits(target: InfluxForwardConfig) -> OutboxLimits:
    """The outbox bound and warning levels of ``target``."""
    return OutboxLimits(target.outbox_max_rows, target.outbox_max_bytes, target.warn_rows_at, target.warn_bytes_at)


def make_client(config: Config) -> InfluxClient:
    """The client of the configured target, its token or password read now (from env or file).

    Raises:
        ConfigError: no target configured, or a secret cannot be read.
    """
    target = config.forward.active
    if target is None:
        raise ConfigError(f"{config.label}: [{WHERE}] is not configured")
    return client_for(config, target, WHERE)


def client_for(config: Config, target: InfluxForwardConfig, where: str) -> InfluxClient:
    """The client of ``target`` (a table of ``config`` named ``where`` in errors), its secrets read now.

    Raises:
        ConfigError: a secret cannot be read.
    """
    token = read_secret(target.token_env, _path(config, target.token_file), f"{where}.token")
    password = read_secret(target.password_env, _path(config, target.password_file), f"{where}.password")
    ca_file = _path(config, target.ca_file)
    from collector.forward.influx import InfluxClient  # influxdb-client only where a target is used

    return InfluxClient(target, token=token, password=password, ca_file=str(ca_file) if ca_file else None)


def _path(config: Config, path: Path | None) -> Path | None:
    return None if path is None else config.resolve(path)


def forward_problems(config: Config, *, secrets: bool = True) -> list[str]:
    """Problems of ``[forward.influxdb]`` beyond its schema, one line each (empty: fine or not configured).

    Args:
        secrets: also check that the token and password can be read (``check-config``); a running service
            (False) starts anyway: readings queue in the outbox and the ``forwarding`` alert says why.
    """
    target = config.forward.active
    if target is None:
        return []
    problems = []
    if target.api == "v1" and (target.token_env or target.token_file) and not target.username:
        problems.append(f"{config.label}: {WHERE}: api = \"v1\" (InfluxDB before 1.8) takes username and password, "
                        "not a token")
    if target.ca_file is not None and not config.resolve(target.ca_file).is_file():
        problems.append(f"{config.label}: {WHERE}.ca_file: {config.resolve(target.ca_file)} is not a file")
    if secrets:
        for what, env, file in (("token", target.token_env, target.token_file),
                                ("password", target.password_env, target.password_file)):
            try:
                read_secret(env, _path(config, file), f"{WHERE}.{what}")
            except ConfigError as exc:
                problems += [f"{config.label}: {p}" for p in exc.problems]
    return problems
