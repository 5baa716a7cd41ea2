"""A human-readable view of a configuration (``archmon check-config``)."""

from __future__ import annotations

from archmon.config import Config

__all__ = ["config_summary"]


def config_summary(config: Config) -> str:
    """A few lines saying what a valid configuration contains."""
    lines = [
        f"{config.path}: ok",
        f"site {config.site.name!r}, time zone {config.site.timezone}, language {config.site.language}",
        f"storage: {config.resolve(config.storage.sqlite_path)} (raw retention "
        f"{config.storage.raw_retention_days or 'forever'}{' days' if config.storage.raw_retention_days else ''})",
        f"{len(config.rooms)} room(s): " + ", ".join(f"{r.id} [{r.profile}]" for r in config.rooms),
        f"{len(config.mqtt)} MQTT broker(s): " + ", ".join(f"{m.id} {m.host}:{m.port}" for m in config.mqtt),
        f"{len(config.serial)} serial port(s): " + ", ".join(f"{s.id} {s.device} ({s.protocol})"
                                                             for s in config.serial),
        f"{len(config.sensors)} sensor(s)",
    ]
    return "\n".join(lines)
