"""A site's side of the city: its alerts and its health on the city's broker (topics: :mod:`dashboards.city.topics`).

One thread does everything. It wakes on every alert transition and acknowledgement the event hub carries, and
every ``[city] status_interval_s``, and reads what to say from the database (the alert table, the readings
store), never from the events themselves: so nothing is missed when the hub drops an event or the broker is
away, and after every (re)connect the whole state is published again (retained) rather than what changed.
An alert that is closed gets an empty retained message, so the broker forgets it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from alerts.profiles import StandardProfile
from alerts.site import load_settings, room_profiles
from archmon.config import Config
from archmon.hub import EventHub
from archmon.paho import stop_network_loop
from archmon.sqlite import connect
from archmon.timeutil import now_ms
from dashboards.city.link import city_client
from dashboards.city.topics import alert_topic, site_topic, status_topic

__all__ = ["OPEN_STATES", "SitePublisher", "room_compliance"]

log = logging.getLogger("dashboards.city")

OPEN_STATES = ("pending", "active", "acknowledged", "cleared")
"""Alert states the city sees (a cleared alert waits for an acknowledgement or its close)."""
_FIRING = ("active", "acknowledged")
_COLUMNS = ("id", "rule", "room", "sensor", "quantity", "severity", "state", "detail", "value", "limit_value",
            "title_zh", "title_en", "opened_ms", "updated_ms", "active_ms", "acked_by", "cleared_ms")


def room_compliance(room: dict[str, Any], alerts: list[dict[str, Any]], profile: StandardProfile | None) -> str:
    """``alarm`` (a critical alert fires), ``warning`` (another fires), ``out_of_band`` (a value outside the
    profile's band, before its alert delay), ``no_data`` (no sensor reporting), else ``ok``."""
    firing = [a for a in alerts if a["state"] in _FIRING]
    if any(a["severity"] == "critical" for a in firing):
        return "alarm"
    if firing:
        return "warning"
    if room.get("sensors") and not room.get("ok"):
        return "no_data"
    for quantity in ("temperature", "humidity"):
        band, seen = (profile.band(quantity) if profile else None), room.get(quantity)
        if band is not None and seen and ((band.low is not None and seen[0] < band.low)
                                          or (band.high is not None and seen[1] > band.high)):
            return "out_of_band"
    return "ok"


class SitePublisher:
    """Publishes one site's alerts and health to the city's broker.

    Args:
        config: the site's configuration (``config.city`` must be set).
        db_path: the site's database.
        hub: the service's event hub (alert transitions wake the publisher); None: the interval only.
    """

    def __init__(self, config: Config, db_path: Path, hub: EventHub | None) -> None:
        if config.city is None:
            raise ValueError("no [city] table")
        self.config = config
        self.link = config.city
        self.db_path = db_path
        self.part = config.service.instance
        self.topic = status_topic(config.site.name, self.part)
        client_id = self.link.broker.client_id or f"archmon-city-{site_topic(config.site.name)}{self.part.suffix}"
        self.client = city_client(config, self.link.broker, client_id=client_id, where="city.broker",
                                  will=(self.topic, self._offline()))
        self.client.on_connect = self._on_connect
        self._published: dict[str, bytes] = {}  # alert topic -> what was published there
        self._resync = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sub = (hub.subscribe(["alert", "ack"], name="city", wake_only=True, on_ready=self._wake.set)
                     if hub is not None else None)
        self._thread = threading.Thread(target=self._run, name="city-publisher", daemon=True)
        self.published_status = 0
        self.published_alerts = 0
        self._profiles = room_profiles(config, load_settings(config))

    def _offline(self) -> bytes:
        return json.dumps({"site": self.config.site.name, "instance": self.part.label, "state": "offline"},
                          ensure_ascii=False).encode()

    def start(self) -> None:
        """Connect (in the background: an unreachable broker is retried, never waited for) and start."""
        broker = self.link.broker
        self.client.connect_async(broker.host, broker.port, keepalive=broker.keepalive_s)
        self.client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Publish "offline" (retained) and disconnect, within ``timeout``."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout / 2)
        if self.client.is_connected():
            info = self.client.publish(self.topic, self._offline(), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # not sent in time: the will says it anyway
                info.wait_for_publish(timeout / 2)
        self.client.disconnect()
        stop_network_loop(self.client)
        if self._sub is not None:
            self._sub.close()

    def _on_connect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if not reason.is_failure:
            log.info("city: connected to %s:%d; publishing %s", self.link.broker.host, self.link.broker.port,
                     self.topic)
            self._resync.set()
            self._wake.set()

    def _run(self) -> None:
        next_status = 0.0
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_status - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self.client.is_connected():
                next_status = time.monotonic() + self.link.status_interval_s
                continue
            try:
                if self._resync.is_set():
                    self._resync.clear()
                    self._published.clear()
                changed, alerts = self.publish_alerts()
                if changed or time.monotonic() >= next_status:
                    self.publish_status(alerts)
                    next_status = time.monotonic() + self.link.status_interval_s
            except (sqlite3.Error, OSError) as exc:  # a stalled or missing file: next time
                log.warning("city: not published this time: %s: %s", type(exc).__name__, exc)
                next_status = time.monotonic() + min(5.0, self.link.status_interval_s)
            except Exception:  # a bug must not end the thread: the city would see the site as silent
                log.exception("city: publishing failed")
                next_status = time.monotonic() + self.link.status_interval_s

    def _open_alerts(self) -> list[dict[str, Any]]:
        if not self.db_path.exists():
            return []
        conn = connect(self.db_path, readonly=True)
        try:
            marks = ", ".join("?" for _ in OPEN_STATES)
            cursor = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM alert_alerts WHERE state IN ({marks})",
                                  OPEN_STATES)
            return [dict(zip(_COLUMNS, row, strict=True)) for row in cursor]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def publish_alerts(self) -> tuple[bool, list[dict[str, Any]]]:
        """Publish every open alert whose state changed and forget the closed ones; (changed?, open alerts)."""
        alerts = self._open_alerts()
        site, part = self.config.site.name, self.part
        now: dict[str, bytes] = {}
        for row in alerts:
            payload = {"site": site, "instance": part.label, **row}
            now[alert_topic(site, part, int(row["id"]))] = json.dumps(payload, ensure_ascii=False).encode()
        changed = False
        for topic, payload in now.items():
            if self._published.get(topic) != payload:
                self.client.publish(topic, payload, qos=1, retain=True)
                self.published_alerts += 1
                changed = True
        for topic in set(self._published) - set(now):
            self.client.publish(topic, b"", qos=1, retain=True)  # closed: the broker forgets it
            changed = True
        self._published = now
        return changed, alerts

    def status(self, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The health message: rooms (sensors by state, value ranges, bands, compliance, open alerts)."""
        from dashboards.status import status_report

        report = status_report(self.config)
        by_room: dict[str, list[dict[str, Any]]] = {}
        for alert in alerts:
            by_room.setdefault(str(alert["room"]), []).append(alert)
        rooms = []
        for room in report.get("rooms", []):
            profile = self._profiles.get(room["room"])
            mine = by_room.get(room["room"], [])
            bands = {q: [b.low, b.high] for q in ("temperature", "humidity")
                     if profile is not None and (b := profile.band(q)) is not None}
            rooms.append({**room, "profile": profile.id if profile else "", "bands": bands,
                          "open_alerts": len([a for a in mine if a["state"] in _FIRING]),
                          "compliance": room_compliance(room, mine, profile)})
        severities = Counter(str(a["severity"]) for a in alerts if a["state"] in _FIRING)
        return {"site": self.config.site.name, "instance": self.part.label, "state": "online", "ts_ms": now_ms(),
                "interval_s": self.link.status_interval_s, "timezone": self.config.site.timezone,
                "service_running": bool(report.get("service_running")), "sensors": len(report.get("sensors", [])),
                "open_alerts": dict(severities), "rooms": rooms}

    def publish_status(self, alerts: list[dict[str, Any]]) -> None:
        """Publish the health message (retained)."""
        payload = json.dumps(self.status(alerts), ensure_ascii=False).encode()
        self.client.publish(self.topic, payload, qos=1, retain=True)
        self.published_status += 1
