"""What every page handler needs, built once by :func:`dashboards.web.build_app`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.access import AccessRegister
from alerts.profiles import StandardProfile
from alerts.settings import StaleSettings, stale_settings
from alerts.site import load_settings, room_profiles
from archmon.config import Config, RoomConfig, SensorConfig
from archmon.hub import EventHub
from archmon.sqlite import ReaderPool
from collector.store import SqliteStore
from dashboards.web.ratelimit import LoginLimiter
from dashboards.web.users import UserStore

__all__ = ["Reloader", "WebContext"]

Reloader = Callable[[Config], None]
"""Called with the new configuration after the dashboard changed the config file (adoption)."""


@dataclass
class WebContext:
    """The dashboard's view of the site: configuration, stores, the event hub and the alert service.

    Attributes:
        config: the configuration in force (replaced after an adoption reload).
        db_path: the shared SQLite file.
        hub: the service's event hub (live updates).
        store: the readings store, read-only.
        readers: read connections for the alert tables (:mod:`dashboards.web.queries`).
        users: accounts, sessions, tokens.
        access: the access register.
        alerts: the running ``AlertService`` (acknowledgements go through it), or None: acknowledgements
            are then written through the alert store (``alerts.actions``), as the CLI does.
        reload: called after the config file was changed (None: the change applies at the next start).
        limiter: login rate limits.
        secure_cookies: cookies carry ``Secure`` (the app is served over TLS).
        city: the service's ``archmon.app.city.CityParts`` (a central archmon: the page ``/city``), or None.
    """

    config: Config
    db_path: Path
    hub: EventHub | None
    store: SqliteStore
    readers: ReaderPool
    users: UserStore
    access: AccessRegister
    alerts: Any = None
    reload: Reloader | None = None
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    secure_cookies: bool = False
    city: Any = None
    config_lock: threading.Lock = field(default_factory=threading.Lock)
    _profiles: tuple[Config, dict[str, StandardProfile]] | None = field(default=None, init=False, repr=False)

    @property
    def tz(self) -> ZoneInfo:
        """The site's zone (days and display)."""
        return self.config.site.tz

    @property
    def stale(self) -> StaleSettings:
        """The one stale definition's parameters."""
        return stale_settings(self.config)

    def room_profiles(self) -> dict[str, StandardProfile]:
        """Every room's resolved standards profile, resolved once per configuration (a reload replaces
        ``config``, and with it this): resolving them for 200 rooms was a sixth of the overview's time."""
        cached = self._profiles
        if cached is None or cached[0] is not self.config:
            config = self.config
            cached = self._profiles = (config, room_profiles(config, load_settings(config)))
        return cached[1]

    def room(self, room_id: str) -> RoomConfig | None:
        """A configured room, or None."""
        return next((room for room in self.config.rooms if room.id == room_id), None)

    def room_sensors(self, room_id: str) -> list[SensorConfig]:
        """The enabled sensors of a room, in config order."""
        return [s for s in self.config.sensors if s.room == room_id and s.enabled]

    def sensor_room(self) -> dict[str, str]:
        """sensor id -> room id of the configured sensors."""
        return {s.id: s.room for s in self.config.sensors}

    def close(self) -> None:
        """Close every store the app opened."""
        self.store.close()
        self.readers.close()
        self.users.close()
        self.access.close()
