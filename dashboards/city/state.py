"""What the central archmon knows of the city: every site's last health message and open alerts, as they
arrive from the city's broker (:class:`CityState`), and the overview built from them (:meth:`CityState.sites`).

A site is *online* while its last health message is younger than ``stale_factor`` × its own interval, *out of
contact* (stale) once it is older, and *offline* when its will (or its clean stop) said so. A message
delivered live is as old as its arrival (the site's clock plays no part: a site whose clock is slow or fast
stays online while it publishes); only a retained message replayed when the central archmon connects is aged
by its own time (``ts_ms``, never ahead of now), since that is all there is to say how old it is. A live
message also tells the site's clock offset (its ``ts_ms`` less the arrival time, network delay included),
shown on the overview and warned about from :data:`CLOCK_WARN_MS`. Alerts are rebuilt from the retained
messages at every (re)connect.

Sites are told apart by their topic level (``dashboards.city.topics``, one level per site name); two
messages on one level naming different sites (two sites configured with the same name) are counted in
``collisions`` and warned about once per pair.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from archmon.timeutil import now_ms

__all__ = ["CLOCK_WARN_MS", "CityAlert", "CityState", "Contact", "InstanceView", "RoomView", "SiteView"]

log = logging.getLogger("dashboards.city")

Contact = Literal["online", "stale", "offline"]
_CONTACT_ORDER = {"offline": 0, "stale": 1, "online": 2}
_COMPLIANCE_ORDER = ("alarm", "warning", "out_of_band", "no_data", "ok")
CLOCK_WARN_MS = 60_000
"""A site clock off by more than this is pointed out on the overview."""


@dataclass(frozen=True, slots=True)
class CityAlert:
    """One open alert of a site, as it published it."""

    site: str
    key: str
    room: str
    sensor: str
    rule: str
    severity: str
    state: str
    title_zh: str
    title_en: str
    since_ms: int


@dataclass(slots=True)
class InstanceView:
    """The last health message of one site (or one instance of a split site)."""

    site: str
    instance: str
    state: str
    ts_ms: int
    received_ms: int
    interval_s: float
    message: dict[str, Any]
    clock_offset_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RoomView:
    """One room of a site on the overview (values from the site's message; ``series`` from InfluxDB)."""

    site: str
    room: str
    name_zh: str
    name_en: str
    compliance: str
    sensors: int
    ok: int
    stale: int
    open_alerts: int
    temperature: tuple[float, float] | None
    humidity: tuple[float, float] | None
    bands: dict[str, list[float | None]]


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site on the overview: its contact, rooms and open alerts."""

    site: str
    contact: Contact
    last_contact_ms: int | None
    timezone: str
    rooms: tuple[RoomView, ...]
    alerts: tuple[CityAlert, ...] = field(default=())
    instances: int = 1
    clock_offset_ms: int | None = None
    """The site's clock less the central's (the largest among its instances; None: not known yet)."""

    @property
    def clock_off(self) -> bool:
        """Its clock is off by more than :data:`CLOCK_WARN_MS`."""
        return self.clock_offset_ms is not None and abs(self.clock_offset_ms) > CLOCK_WARN_MS

    @property
    def compliance(self) -> str:
        """The worst of its rooms' states (``no_data`` while out of contact)."""
        if self.contact != "online":
            return "no_data"
        states = {room.compliance for room in self.rooms}
        return next((state for state in _COMPLIANCE_ORDER if state in states), "ok")


def _json(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


class CityState:
    """The city as the central archmon sees it; thread-safe (the MQTT thread writes, pages read).

    Args:
        stale_factor: a site is out of contact after this many of its intervals without a health message.
    """

    def __init__(self, stale_factor: float = 3.0) -> None:
        self.stale_factor = stale_factor
        self._lock = threading.Lock()
        self._instances: dict[tuple[str, str], InstanceView] = {}
        self._alerts: dict[tuple[str, str], CityAlert] = {}  # (topic level, key) -> alert
        self._levels: dict[str, str] = {}  # topic level -> the site name last seen on it
        self._collided: set[tuple[str, str, str]] = set()
        self.ignored = 0
        self.collisions = 0

    def connected(self) -> None:
        """A new connection: the retained alerts come again, the ones closed meanwhile do not."""
        with self._lock:
            self._alerts.clear()

    def on_message(self, topic: str, payload: bytes, received_ms: int | None = None, *,
                   retained: bool = False) -> None:
        """Take one message from ``archmon/<site>/status[/KofN]`` or ``archmon/<site>/alerts/<id>``.

        Args:
            received_ms: when it arrived (default now).
            retained: a retained message the broker replays at subscription (paho's ``msg.retain``), not one
                published now: its age is its own time's.
        """
        received = now_ms() if received_ms is None else received_ms
        parts = topic.split("/")
        if len(parts) == 4 and parts[2] == "alerts":
            self._on_alert(parts[1], parts[3], payload)
        elif len(parts) in (3, 4) and parts[2] == "status":
            self._on_status(parts[1], parts[3] if len(parts) == 4 else "1/1", payload, received, retained)
        else:
            self.ignored += 1

    def _site_of(self, level: str, message: dict[str, Any]) -> str:
        """The site a message on ``level`` is from (its ``site``, else the level); warns about two sites on one
        level (lock held)."""
        site = str(message.get("site") or level)
        known = self._levels.setdefault(level, site)
        if known != site:
            self.collisions += 1
            pair = (level, *sorted((known, site)))
            if pair not in self._collided:
                self._collided.add(pair)
                log.warning("central: sites %r and %r both publish on archmon/%s/: give every site its own "
                            "[site] name (their alerts and status mix up)", known, site, level)
            self._levels[level] = site
        return site

    def _on_status(self, level: str, instance: str, payload: bytes, received: int, retained: bool) -> None:
        message = _json(payload)
        if message is None:  # a source's own "online"/"offline" under the same level, or rubbish
            self.ignored += 1
            return
        stamped = int(message.get("ts_ms") or received)
        with self._lock:
            site = self._site_of(level, message)
            key = (site, str(message.get("instance") or instance))
            known = self._instances.get(key)
            if message.get("state") == "offline":
                if known is not None:
                    known.state, known.received_ms = "offline", received
                else:
                    self._instances[key] = InstanceView(site, key[1], "offline", 0, received, 30.0, {})
                return
            if retained:  # a replay: as old as it says (never ahead of now); the clock offset not known from it
                ts, offset = min(stamped, received), None if known is None else known.clock_offset_ms
            else:
                ts, offset = received, stamped - received
            self._instances[key] = InstanceView(site, key[1], "online", ts, received,
                                                float(message.get("interval_s") or 30.0), message, offset)

    def _on_alert(self, level: str, key: str, payload: bytes) -> None:
        with self._lock:
            if not payload:  # closed: the site cleared its retained message
                self._alerts.pop((level, key), None)
                return
            message = _json(payload)
            if message is None:
                self.ignored += 1
                return
            site = self._site_of(level, message)
            self._alerts[(level, key)] = CityAlert(
                site, key, str(message.get("room") or ""), str(message.get("sensor") or ""),
                str(message.get("rule") or ""), str(message.get("severity") or ""), str(message.get("state") or ""),
                str(message.get("title_zh") or ""), str(message.get("title_en") or ""),
                int(message.get("active_ms") or message.get("opened_ms") or 0))

    def contact(self, view: InstanceView, now: int) -> Contact:
        """``offline`` (its will or stop said so), ``stale`` (silent too long) or ``online``."""
        if view.state == "offline":
            return "offline"
        return "stale" if now - view.ts_ms > self.stale_factor * view.interval_s * 1000 else "online"

    def sites(self, now: int | None = None) -> list[SiteView]:
        """Every site, sorted by name, with its rooms and open alerts (instances of a split site merged: the
        site is as much in contact as its least reachable instance)."""
        now = now_ms() if now is None else now
        with self._lock:
            instances = list(self._instances.values())
            alerts = list(self._alerts.values())
        grouped: dict[str, list[InstanceView]] = {}
        for view in instances:
            grouped.setdefault(view.site, []).append(view)
        out = []
        for site, views in sorted(grouped.items()):
            contact = min((self.contact(v, now) for v in views), key=_CONTACT_ORDER.__getitem__)
            seen = [v.ts_ms for v in views if v.ts_ms]
            rooms = _merge_rooms(site, [v.message for v in views])
            mine = tuple(sorted((a for a in alerts if a.site == site), key=lambda a: (-a.since_ms, a.key)))
            timezone = next((str(v.message["timezone"]) for v in views if v.message.get("timezone")), "")
            offsets = [v.clock_offset_ms for v in views if v.clock_offset_ms is not None]
            offset = max(offsets, key=abs) if offsets else None
            out.append(SiteView(site, contact, max(seen) if seen else None, timezone, rooms, mine, len(views),
                                offset))
        return out


def _merge_rooms(site: str, messages: list[dict[str, Any]]) -> tuple[RoomView, ...]:
    """Rooms of every instance's message; a room two instances share gets the sums, the outer ranges and the
    worse compliance."""
    merged: dict[str, RoomView] = {}
    for message in messages:
        for raw in message.get("rooms") or []:
            if not isinstance(raw, dict) or not raw.get("room"):
                continue
            room = RoomView(site, str(raw["room"]), str(raw.get("name_zh") or ""), str(raw.get("name_en") or ""),
                            str(raw.get("compliance") or "no_data"), int(raw.get("sensors") or 0),
                            int(raw.get("ok") or 0), int(raw.get("stale") or 0), int(raw.get("open_alerts") or 0),
                            _range(raw.get("temperature")), _range(raw.get("humidity")),
                            dict(raw.get("bands") or {}))
            known = merged.get(room.room)
            merged[room.room] = room if known is None else _combine(known, room)
    return tuple(sorted(merged.values(), key=lambda r: r.room))


def _range(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]), float(value[1])
    return None


def _outer(a: tuple[float, float] | None, b: tuple[float, float] | None) -> tuple[float, float] | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1])


def _combine(a: RoomView, b: RoomView) -> RoomView:
    worse = min(a.compliance, b.compliance, key=lambda c: _COMPLIANCE_ORDER.index(c) if c in _COMPLIANCE_ORDER
                else len(_COMPLIANCE_ORDER))
    return RoomView(a.site, a.room, a.name_zh or b.name_zh, a.name_en or b.name_en, worse, a.sensors + b.sensors,
                    a.ok + b.ok, a.stale + b.stale, a.open_alerts + b.open_alerts, _outer(a.temperature, b.temperature),
                    _outer(a.humidity, b.humidity), a.bands or b.bands)
