"""What a configuration reload (SIGHUP) may change in a running ``archmon run``, and what waits for a restart.

Applied at once: rooms and their profiles and overrides, sensors (room, kind, topic, format, options,
calibration, expected interval, enabled, Modbus address/preset/channel/timeout: new MQTT topics are
subscribed, Modbus devices polled), custom Modbus register maps, the ``[alerts]`` table, the source-level
MQTT ``subscriptions`` (formats of unassigned devices), ``site.language``, ``storage.*_retention_days``
and ``[service]`` but ``partition`` and ``store_only``. (``[notify]`` is the notifier's: see ``alerts.notify``.)

Only at the next restart (:data:`RESTART_ONLY`): ``site.name`` (it is in the MQTT client id and status
topic) and ``site.timezone`` (days already rolled up and judged in it); ``storage.sqlite_path``,
``batch_size`` and ``flush_interval_ms`` (the store and its writer are open),
``quarantine_per_source_per_minute`` and ``quarantine_payload_max_bytes`` (the pipeline's quarantine keeper
is built once); the whole ``[http]`` table (the dashboard's socket, TLS and proxies are set up at start); ``[forward]``
(the outbox and the forwarder are built at start); ``service.partition`` and ``store_only`` (the sources'
client ids and subscriptions are this instance's: until the restart it keeps its share of the new file's sensors);
``[city]`` and ``[central]`` (their connections to the city's broker);
every option of a source table but an MQTT source's ``subscriptions``, and sources added or removed
(connections and ports are open).
Until then the running values stay in force; sensors on a source that is not running yet are left out.
A reload that changes any of these still applies the rest, and says which keys wait (log and audit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from archmon.config import IMPORT_SOURCE, Config
from archmon.partition import split_config

__all__ = ["LIVE_SOURCE_OPTIONS", "RESTART_ONLY", "ReloadOutcome", "ReloadPlan", "plan_reload"]

RESTART_ONLY: dict[str, tuple[str, ...]] = {
    "site": ("name", "timezone"),
    "storage": ("sqlite_path", "batch_size", "flush_interval_ms", "quarantine_per_source_per_minute",
                "quarantine_payload_max_bytes"),
    "http": ("enabled", "host", "port", "tls_cert", "tls_key", "trusted_proxies", "public_url"),
    "forward": ("influxdb",),
    "service": ("partition", "store_only"),
}
"""Keys of single tables that a reload cannot change; source tables cannot change either, except the options
in :data:`LIVE_SOURCE_OPTIONS`."""

WHOLE_RESTART_ONLY = ("city", "central")
"""Optional tables a reload cannot change at all (their MQTT connections are set up at start)."""

LIVE_SOURCE_OPTIONS: dict[str, tuple[str, ...]] = {"mqtt": ("subscriptions",)}
"""Options of a source table a reload applies at once (per kind): an MQTT source's subscriptions (formats of
unassigned devices)."""


@dataclass(frozen=True)
class ReloadPlan:
    """The outcome of comparing the running configuration with a new file.

    Attributes:
        config: what the service runs with from now on: the new file, with the restart-only values of the
            running one, and without sensors on sources that are not running.
        changed: top-level sections (``rooms``, ``sensors``, ``alerts`` ...) that differ and are applied.
        restart_needed: keys changed in the file that take effect only at the next restart.
        left_out: sensors of the new file not started (their source starts at the next restart).
    """

    config: Config
    changed: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did (``Service.reload``), as logged and audited.

    Attributes:
        path: the file read.
        sha256: its digest ("" if it could not be read).
        applied: False when the file was refused (the running configuration stays in force).
        problems: why it was refused (one line per problem, as ``archmon check-config`` prints them).
        plan: what was applied and what waits for a restart (None when refused).
        open_alerts_of_removed: open alerts of sensors the reload removed (``alert 12 band th2 active``):
            no reading of theirs comes any more to clear them.
        skipped: not even read: archmon was stopping (not audited; the next start reads the file).
    """

    path: str
    sha256: str
    applied: bool
    problems: list[str] = field(default_factory=list)
    plan: ReloadPlan | None = None
    open_alerts_of_removed: list[str] = field(default_factory=list)
    skipped: bool = False

    def log(self, log: logging.Logger) -> None:
        """Log the outcome: refusals as errors with every problem, restart-only changes as warnings."""
        if self.skipped:
            log.info("reload of %s not applied: archmon is stopping (the next start reads the file)", self.path)
            return
        if not self.applied:
            log.error("reload of %s REFUSED, the running configuration stays in force; %d problem(s):\n  %s",
                      self.path, len(self.problems), "\n  ".join(self.problems))
            return
        assert self.plan is not None
        log.info("reloaded %s (sha256 %s): changed %s", self.path, self.sha256[:12],
                 ", ".join(self.plan.changed) or "nothing")
        if self.plan.restart_needed:
            log.warning("reload: these changes take effect only at the next restart (the running values stay "
                        "until then): %s", "; ".join(self.plan.restart_needed))
        if self.plan.left_out:
            log.warning("reload: sensor(s) %s are on sources that start at the next restart", self.plan.left_out)
        if self.open_alerts_of_removed:
            log.warning("reload: removed sensor(s) still have open alerts (no reading of theirs will clear them; "
                        "clear them by hand: archmon alerts clear ID): %s", "; ".join(self.open_alerts_of_removed))

    def audit_payload(self) -> dict[str, Any]:
        """The audit entry's details."""
        payload: dict[str, Any] = {"event": "reload" if self.applied else "reload_refused", "path": self.path,
                                   "sha256": self.sha256}
        if self.plan is not None:
            payload.update(changed=self.plan.changed, restart_needed=self.plan.restart_needed,
                           left_out=self.plan.left_out)
        if self.open_alerts_of_removed:
            payload["open_alerts_of_removed"] = self.open_alerts_of_removed[:200]
        if self.problems:
            payload["problems"] = self.problems[:50]
        return payload


def _fixed(options: dict[str, Any], live: tuple[str, ...]) -> dict[str, Any]:
    """A source table's options that need a restart to change."""
    return {key: value for key, value in options.items() if key not in live}


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    """Work out what a reload from ``running`` to ``new`` applies now and what waits for a restart."""
    restart: list[str] = []
    updates: dict[str, Any] = {}
    for section, keys in RESTART_ONLY.items():
        old_table, new_table = getattr(running, section), getattr(new, section)
        kept = {key: getattr(old_table, key) for key in keys if getattr(old_table, key) != getattr(new_table, key)}
        restart += [f"{section}.{key}" for key in kept]
        if kept:
            updates[section] = new_table.model_copy(update=kept)
    for section in WHOLE_RESTART_ONLY:
        if getattr(running, section) != getattr(new, section):
            restart.append(f"[{section}]")
            updates[section] = getattr(running, section)
    if "service" in updates:  # the new file's sensors as the running instance's share of them
        new = split_config(new.whole.model_copy(update={"service": updates["service"]}))

    running_tables = {t.id: t for t in running.sources}
    new_tables = {t.id: t for t in new.sources}
    sources = []
    for source_id, old in running_tables.items():
        label = f"{old.kind} ({source_id})"
        table = new_tables.get(source_id)
        if table is None:
            restart.append(f"{label}: removed")
            sources.append(old)
            continue
        live = LIVE_SOURCE_OPTIONS.get(old.kind, ()) if table.kind == old.kind else ()
        if table.kind != old.kind or _fixed(table.options, live) != _fixed(old.options, live):
            restart.append(f"{label}: {'kind' if table.kind != old.kind else 'connection or port options'}")
        options = _fixed(old.options, live) | {key: table.options[key] for key in live if key in table.options}
        sources.append(old.model_copy(update={"options": options}))
    restart += [f"{table.kind} ({source_id}): added" for source_id, table in new_tables.items()
                if source_id not in running_tables]
    updates["sources"] = sources

    live = {*running_tables, IMPORT_SOURCE}  # an import-only sensor waits for no source
    updates["sensors"] = [s for s in new.sensors if s.source in live]
    left_out = [s.id for s in new.sensors if s.source not in live]

    effective = new.model_copy(update=updates)
    before, after = _dump(running), _dump(effective)
    changed = [name for name in after if after[name] != before.get(name)]
    return ReloadPlan(config=effective, changed=changed, restart_needed=restart, left_out=left_out)
