"""A human-readable view of a configuration (``archmon check-config``)."""

from __future__ import annotations

from archmon.config import Config, SourceTable

__all__ = ["config_summary"]


def config_summary(config: Config) -> str:
    """A few lines saying what a valid configuration contains."""
    lines = [
        f"{config.path}: ok",
        f"site {config.site.name!r}, time zone {config.site.timezone}, language {config.site.language}",
        f"storage: {config.resolve(config.storage.sqlite_path)} (raw retention "
        f"{config.storage.raw_retention_days or 'forever'}{' days' if config.storage.raw_retention_days else ''})",
        f"{len(config.rooms)} room(s): " + ", ".join(f"{r.id} [{r.profile}]" for r in config.rooms),
        f"{len(config.sources)} source(s): " + ", ".join(_describe(t) for t in config.sources),
        f"{len(config.sensors)} sensor(s)",
    ]
    part = config.service.instance
    if part.split or config.service.store_only:
        total = len(config.sensors) + len(config.foreign_sensors)
        lines.append(f"instance {part.label}: {len(config.sensors)} of the file's {total} sensor(s) are this "
                     "instance's" + ("; store-only: no alert rule runs" if config.service.store_only else ""))
    target = config.forward.active
    if target is not None:
        lines.append(f"forwarding to {target.url} ({target.api} API, database {target.database}; outbox bound "
                     f"{target.outbox_max_rows:,} rows, warning at {target.warn_rows_at:,})")
    if config.city is not None and config.city.enabled:
        broker = config.city.broker
        lines.append(f"city: alerts and health published to {broker.host}:{broker.port} every "
                     f"{config.city.status_interval_s:g} s")
    if config.central is not None and config.central.enabled:
        broker, influx = config.central.broker, config.central.influxdb
        lines.append(f"central: city overview (/city) of every site on {broker.host}:{broker.port}"
                     + (f", series from {influx.url}" if influx is not None else ""))
    return "\n".join(lines)


def _describe(table: SourceTable) -> str:
    """``id (kind)``, with the device or host when the table names one."""
    place = table.options.get("device") or table.options.get("host")
    return f"{table.id} ({table.kind})" + (f" {place}" if isinstance(place, str) else "")
