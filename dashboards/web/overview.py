"""The overview's room cards: "is every store safe right now, and what needs me?".

One :class:`SiteSnapshot` is read per request (latest values, last-seen times, 24 h ranges from the hour
rollups, open alerts, open access sessions: a handful of queries whatever the number of rooms), then each
room's :class:`RoomCard` is computed from it in memory, in time linear in the sensors (the snapshot holds
each room's sensors and every lookup is by key). A card states everything in words and symbols as
well as colour: position against the band (偏高/偏低/正常), the 24 h range against the stability limit,
door/smoke/leak, the 八防 items, stale sensors and active alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from alerts.access import AccessSession
from alerts.profiles import StandardProfile
from alerts.settings import StaleSettings, stale_after_ms
from archmon.config import RoomConfig, SensorConfig
from archmon.timeutil import now_ms
from dashboards.web import queries
from dashboards.web.context import WebContext

__all__ = ["EIGHT_GUARDS", "Latest", "QuantityView", "Range", "RoomCard", "SiteSnapshot", "room_cards", "snapshot"]

HOUR_MS = 3_600_000
Status = Literal["alarm", "warning", "ok", "nodata"]
ItemState = Literal["alarm", "warning", "ok", "unknown", "unmonitored"]
STATUS_ORDER = {"alarm": 0, "warning": 1, "nodata": 2, "ok": 3}
EIGHT_GUARDS = ("temperature", "humidity", "water", "fire", "theft", "light", "dust", "pests")
"""八防: 防高低温、防高低湿、防水、防火、防盗、防光、防尘、防有害生物 (JGJ 25-2010 §5.1.1)."""
_RULE_GUARD = {"smoke": "fire", "leak": "water", "door_open": "theft", "door_hours": "theft",
               "unregistered_entry": "theft", "mould": "humidity"}
_KIND_QUANTITIES = {"temperature_humidity": ("temperature", "humidity"), "temperature": ("temperature",),
                    "humidity": ("humidity",), "smoke": ("smoke",), "door": ("door",), "leak": ("leak",),
                    "light": ("light",)}


class Latest(NamedTuple):
    """A series' newest stored value and its time."""

    value: float
    ts_ms: int


class Range(NamedTuple):
    """The lowest and highest value of a series over the last 24 h (hour rollups)."""

    low: float
    high: float


@dataclass
class SiteSnapshot:
    """Everything the cards need, read in one go.

    Attributes:
        values: sensor -> quantity -> newest value.
        ranges: ``(sensor, quantity)`` -> the 24 h range of temperature and humidity.
        sensors: room -> its enabled sensors, in config order.
    """

    now_ms: int
    values: dict[str, dict[str, Latest]]
    last_seen: dict[str, int]
    offline: set[str]
    ranges: dict[tuple[str, str], Range]
    alerts: dict[str, list[dict[str, Any]]]
    sessions: dict[str, AccessSession]
    profiles: dict[str, StandardProfile]
    sensors: dict[str, list[SensorConfig]]
    stale: StaleSettings


def snapshot(ctx: WebContext, *, now: int | None = None) -> SiteSnapshot:
    """Read the site's current state (blocking: call from a worker thread)."""
    now = now_ms() if now is None else now
    values: dict[str, dict[str, Latest]] = {}
    for item in ctx.store.latest():
        values.setdefault(item.sensor, {})[item.quantity] = Latest(item.value, item.ts_ms)
    last_seen = ctx.store.last_seen()
    offline = {sensor for sensor, (state, ts) in ctx.store.availability().items()
               if state == "offline" and ts >= last_seen.get(sensor, 0)}
    since = now - now % HOUR_MS - 23 * HOUR_MS
    with ctx.readers.read() as conn:
        ranges = {key: Range(*span) for key, span in queries.ranges_24h(conn, since).items()}
        alerts = queries.open_alerts_by_room(conn)
    sessions = {s.room: s for s in ctx.access.sessions(open_only=True)}
    config = ctx.config
    profiles = ctx.room_profiles()
    sensors: dict[str, list[SensorConfig]] = {}
    for sensor in config.sensors:
        if sensor.enabled:
            sensors.setdefault(sensor.room, []).append(sensor)
    return SiteSnapshot(now, values, last_seen, offline, ranges, alerts, sessions, profiles, sensors,
                        ctx.stale)


@dataclass
class QuantityView:
    """Temperature or RH of a room: the current value(s) against the band and the 24 h range."""

    quantity: str
    low: float | None
    high: float | None
    value_min: float | None = None
    value_max: float | None = None
    position: Literal["low", "high", "in", "unknown"] = "unknown"
    range_24h: float | None = None
    stability_max: float | None = None

    @property
    def range_over(self) -> bool | None:
        """Whether the 24 h range exceeds the stability limit (None: not judged)."""
        if self.range_24h is None or self.stability_max is None:
            return None
        return round(self.range_24h, 3) > self.stability_max


@dataclass
class RoomCard:
    """One room on the overview."""

    room: RoomConfig
    profile: StandardProfile | None
    status: Status = "nodata"
    quantities: list[QuantityView] = field(default_factory=list)
    door: Literal["open", "closed"] | None = None
    smoke: bool | None = None
    leak: bool | None = None
    guards: dict[str, ItemState] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    session: AccessSession | None = None
    updated_ms: int | None = None
    sensors: int = 0


def _worse(a: ItemState, b: ItemState) -> ItemState:
    order = ("alarm", "warning", "unknown", "ok", "unmonitored")
    return a if order.index(a) <= order.index(b) else b


def room_card(ctx: WebContext, snap: SiteSnapshot, room: RoomConfig) -> RoomCard:
    """The card of one room from a snapshot."""
    profile = snap.profiles.get(room.id)
    card = RoomCard(room=room, profile=profile, session=snap.sessions.get(room.id),
                    alerts=snap.alerts.get(room.id, []))
    sensors = snap.sensors.get(room.id, [])
    card.sensors = len(sensors)
    present: dict[str, dict[str, float | None]] = {}  # quantity -> sensor -> newest value
    fresh_any = False
    for sensor in sensors:
        seen = snap.last_seen.get(sensor.id)
        # a sensor whose readings come only from imported files is never stale, and never a live value
        stale = sensor.live and (seen is None or snap.now_ms - seen > stale_after_ms(sensor.expected_interval_s,
                                                                                     snap.stale)
                                 or sensor.id in snap.offline)
        if stale:
            card.stale.append(sensor.id)
        own = snap.values.get(sensor.id, {})
        kinds = set(_KIND_QUANTITIES.get(sensor.kind, ())) | set(own)
        for quantity in kinds:
            latest = own.get(quantity)
            present.setdefault(quantity, {})[sensor.id] = None if latest is None else latest.value
            if latest is not None:
                card.updated_ms = max(card.updated_ms or 0, latest.ts_ms)
                fresh_any = fresh_any or (sensor.live and not stale)
    guards: dict[str, ItemState] = {name: "unmonitored" for name in EIGHT_GUARDS}
    for quantity in ("temperature", "humidity"):
        if quantity not in present:
            continue
        band = profile.band(quantity) if profile else None
        view = QuantityView(quantity, band.low if band else None, band.high if band else None,
                            stability_max=profile.stability.limit(quantity) if profile else None)
        values = [v for v in present[quantity].values() if v is not None]
        if values:
            view.value_min, view.value_max = min(values), max(values)
            if view.high is not None and view.value_max > view.high:
                view.position = "high"
            elif view.low is not None and view.value_min < view.low:
                view.position = "low"
            else:
                view.position = "in"
        spans = [r.high - r.low for r in (snap.ranges.get((s, quantity)) for s in present[quantity]) if r]
        view.range_24h = max(spans) if spans else None
        card.quantities.append(view)
        state: ItemState = {"in": "ok", "unknown": "unknown"}.get(view.position, "alarm")  # type: ignore[assignment]
        if state == "ok" and view.range_over:
            state = "warning"
        guards[quantity] = state
    for quantity, guard in (("smoke", "fire"), ("leak", "water")):
        if quantity in present:
            values = [v for v in present[quantity].values() if v is not None]
            alarm = any(v >= 1 for v in values) if values else None
            setattr(card, quantity, alarm)
            guards[guard] = "unknown" if alarm is None else ("alarm" if alarm else "ok")
    if "door" in present:
        values = [v for v in present["door"].values() if v is not None]
        card.door = None if not values else ("open" if any(v >= 1 for v in values) else "closed")
        guards["theft"] = {"open": "warning", "closed": "ok"}.get(card.door or "", "unknown")  # type: ignore[assignment]
        if card.door == "open" and card.session is not None:
            guards["theft"] = "ok"
    if "light" in present or "uv" in present:
        seen_light = any(v is not None for q in ("light", "uv") for v in present.get(q, {}).values())
        guards["light"] = "ok" if seen_light else "unknown"
    for row in card.alerts:
        guard = _RULE_GUARD.get(row["rule"]) or (row["quantity"] if row["quantity"] in guards else None)
        if guard is not None:
            level: ItemState = "alarm" if row["severity"] in ("critical", "major") else "warning"
            guards[guard] = _worse(guards[guard], level)
    card.guards = guards
    card.status = _status(card, fresh_any)
    return card


def _status(card: RoomCard, fresh_any: bool) -> Status:
    unacked_serious = any(a["severity"] in ("critical", "major") and a["state"] == "active" for a in card.alerts)
    if unacked_serious or card.smoke or card.leak or any(q.position in ("low", "high") for q in card.quantities):
        return "alarm"
    if not fresh_any and card.sensors:
        return "nodata" if not card.stale or card.updated_ms is None else "warning"
    if card.alerts or card.stale or card.door == "open" or any(q.range_over for q in card.quantities):
        return "warning"
    return "ok" if card.sensors else "nodata"


def room_cards(ctx: WebContext, snap: SiteSnapshot, room_ids: set[str] | None = None) -> list[RoomCard]:
    """Cards of every room (or of ``room_ids``), rooms needing attention first, then in config order."""
    cards = [room_card(ctx, snap, room) for room in ctx.config.rooms if room_ids is None or room.id in room_ids]
    order = {room.id: i for i, room in enumerate(ctx.config.rooms)}
    cards.sort(key=lambda c: (STATUS_ORDER[c.status], order[c.room.id]))
    return cards
