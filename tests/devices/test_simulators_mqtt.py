"""Tests of the room-climate model, the MQTT device simulators, the fleet and the embedded broker."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from archmon.errors import TransportError
from archmon.paho import stop_network_loop
from devices.simulators.broker import EmbeddedBroker
from devices.simulators.climate import (
    FILM_MASTER_STORE,
    PAPER_STORE,
    READING_ROOM,
    AlarmModel,
    DoorSchedule,
    RoomClimate,
    RoomModel,
    SimClock,
)
from devices.simulators.mqtt_sensors import (
    EsphomeNode,
    ShellyGen1HT,
    ShellyGen2HT,
    SimulatorFleet,
    TasmotaSensor,
    Zigbee2MqttSensor,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Thursday 2026-11-26 00:00 in Shanghai
MIDNIGHT_MS = int(datetime(2026, 11, 26, tzinfo=SHANGHAI).timestamp() * 1000)
VALUES = {"temperature": 19.37, "humidity": 51.84, "door": 1.0, "smoke": 0.0, "leak": 1.0}


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- climate model -----------------------------------------------------------------------------------


def test_climate_is_deterministic_for_a_seed() -> None:
    times = [MIDNIGHT_MS + i * 601_000 for i in range(300)]
    first = [(PAPER_STORE.temperature(t), PAPER_STORE.humidity(t)) for t in times]
    again = [(replace(PAPER_STORE).temperature(t), replace(PAPER_STORE).humidity(t)) for t in times]
    other = [(replace(PAPER_STORE, seed=99).temperature(t), replace(PAPER_STORE, seed=99).humidity(t)) for t in times]
    assert first == again
    assert first != other


def test_climate_follows_a_daily_curve_warm_afternoon_dry_afternoon() -> None:
    for preset in (PAPER_STORE, FILM_MASTER_STORE, READING_ROOM):
        room = replace(preset, excursion_rate_per_day=0)
        afternoon = [MIDNIGHT_MS + d * DAY_MS + 14 * HOUR_MS + m * 60_000 for d in range(7) for m in range(120)]
        night = [MIDNIGHT_MS + d * DAY_MS + 2 * HOUR_MS + m * 60_000 for d in range(7) for m in range(120)]
        warm = statistics.fmean(room.temperature(t) for t in afternoon)
        cold = statistics.fmean(room.temperature(t) for t in night)
        assert warm - cold > room.daily_amplitude_c  # cos(15-15) vs cos(3-15) spans ~2 amplitudes
        assert statistics.fmean(room.humidity(t) for t in afternoon) < statistics.fmean(room.humidity(t) for t in night)
        day = [room.temperature(MIDNIGHT_MS + m * 60_000) for m in range(1440)]
        assert abs(statistics.fmean(day) - room.temperature_c) < 0.1
        # the peak is mid-afternoon local time, not at UTC 15:00
        peak_minute = max(range(1440), key=lambda m: sum(day[max(0, m - 30) : m + 30]))
        assert 13 * 60 <= peak_minute <= 17 * 60


def test_presets_sit_near_their_set_points() -> None:
    assert (PAPER_STORE.temperature_c, PAPER_STORE.humidity_rh) == (19.0, 52.0)
    assert (FILM_MASTER_STORE.temperature_c, FILM_MASTER_STORE.humidity_rh) == (14.0, 40.0)
    assert READING_ROOM.daily_amplitude_c > PAPER_STORE.daily_amplitude_c


def test_no_excursions_at_rate_zero() -> None:
    room = replace(PAPER_STORE, excursion_rate_per_day=0)
    assert room.excursions(MIDNIGHT_MS, MIDNIGHT_MS + 90 * DAY_MS) == []
    values = [room.temperature(MIDNIGHT_MS + i * 1_800_000) for i in range(90 * 48)]
    assert max(values) < 19.0 + 0.6 + 0.5
    assert min(values) > 19.0 - 0.6 - 0.5


def test_excursions_at_a_high_rate_leave_the_band_and_ramp_back() -> None:
    room = RoomClimate(temperature_c=19.0, humidity_rh=52.0, excursion_rate_per_day=2.0, seed=7)
    excursions = room.excursions(MIDNIGHT_MS, MIDNIGHT_MS + 10 * DAY_MS)
    assert len(excursions) >= 8
    assert excursions == room.excursions(MIDNIGHT_MS, MIDNIGHT_MS + 10 * DAY_MS)
    quiet = replace(room, excursion_rate_per_day=0, noise_c=0, noise_rh=0)
    for excursion in excursions:
        assert 2 * HOUR_MS <= excursion.end_ms - excursion.start_ms <= 5 * HOUR_MS
        middle = (excursion.start_ms + excursion.end_ms) // 2
        if len(room.excursions(middle, middle + 1)) > 1:
            continue  # overlapping faults add up; checked one at a time
        shift_c = room.temperature(middle) - quiet.temperature(middle)
        shift_rh = room.humidity(middle) - quiet.humidity(middle)
        assert abs(shift_c) > 2.0 or abs(shift_rh) > 5.0  # outside a ±2 °C / ±5 % band
        # ramping: a quarter of the ramp in, the room is only partly off
        early = excursion.start_ms + excursion.ramp_ms // 4
        if len(room.excursions(early, early + 1)) == 1:
            assert abs(room.temperature(early) - quiet.temperature(early)) < abs(shift_c) / 2 + 0.3
    outside = excursions[0].start_ms - 1
    if not room.excursions(outside, outside + 1):
        assert abs(room.temperature(outside) - quiet.temperature(outside)) < 0.5


def test_climate_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="excursion_hours"):
        RoomClimate(excursion_hours=(5.0, 2.0))
    with pytest.raises(ValueError, match="excursion_rate_per_day"):
        RoomClimate(excursion_rate_per_day=-1)


def test_door_opens_in_working_hours_and_rarely_at_night() -> None:
    door = DoorSchedule(seed=4)
    start = MIDNIGHT_MS - 3 * DAY_MS  # Monday
    openings = door.openings(start, start + 28 * DAY_MS)
    assert openings == DoorSchedule(seed=4).openings(start, start + 28 * DAY_MS)
    in_hours = 0
    for opening in openings:
        local = datetime.fromtimestamp(opening.start_ms / 1000, SHANGHAI)
        assert (
            timedelta(minutes=2) <= timedelta(milliseconds=opening.end_ms - opening.start_ms) <= timedelta(minutes=10)
        )
        if local.isoweekday() <= 5 and (8, 30) <= (local.hour, local.minute) < (17, 30):
            in_hours += 1
    assert in_hours >= 40  # about 4 a working day over 20 working days
    assert len(openings) - in_hours <= 5
    first = openings[0]
    assert door.is_open(first.start_ms + 1000)
    assert not door.is_open(first.start_ms - 1)
    assert not door.is_open(MIDNIGHT_MS + 3 * HOUR_MS) or any(
        o.start_ms <= MIDNIGHT_MS + 3 * HOUR_MS < o.end_ms for o in openings
    )


def test_alarm_model_is_zero_except_during_the_scripted_alarm() -> None:
    assert AlarmModel().value(MIDNIGHT_MS) == 0
    alarm = AlarmModel(alarm_at_ms=MIDNIGHT_MS, alarm_duration_s=60)
    assert [alarm.value(MIDNIGHT_MS + d) for d in (-1, 0, 59_999, 60_000)] == [0, 1, 1, 0]
    values = RoomModel(smoke=alarm).values(MIDNIGHT_MS + 10)
    assert values["smoke"] == 1.0 and values["leak"] == 0.0


def test_sim_clock_speeds_time_up() -> None:
    real = [1_000_000]
    clock = SimClock(1440, origin_ms=MIDNIGHT_MS, real_clock=lambda: real[0])
    assert clock() == MIDNIGHT_MS
    real[0] += 60_000  # one real minute is one simulated day
    assert clock() == MIDNIGHT_MS + DAY_MS
    with pytest.raises(ValueError, match="speedup"):
        SimClock(0)


# --- payloads ----------------------------------------------------------------------------------------


def _one(messages: list[tuple[str, bytes, bool]]) -> tuple[str, bytes, bool]:
    assert len(messages) == 1
    return messages[0]


def test_zigbee2mqtt_payloads() -> None:
    ts = MIDNIGHT_MS + 123
    topic, payload, retain = _one(Zigbee2MqttSensor("store1_th", "temperature_humidity").payloads(ts, VALUES))
    body = json.loads(payload)
    assert topic == "zigbee2mqtt/store1_th" and not retain
    assert {"temperature", "humidity", "battery", "voltage", "linkquality", "last_seen"} <= body.keys()
    assert (body["temperature"], body["humidity"]) == (19.37, 51.84)
    assert body["last_seen"] == "2026-11-25T16:00:00.123Z"
    door = json.loads(_one(Zigbee2MqttSensor("store1_door", "door").payloads(ts, VALUES))[1])
    assert door["contact"] is False  # the door is open: contact false
    closed = json.loads(_one(Zigbee2MqttSensor("d", "door").payloads(ts, {**VALUES, "door": 0}))[1])
    assert closed["contact"] is True
    assert json.loads(_one(Zigbee2MqttSensor("s", "smoke").payloads(ts, VALUES))[1])["smoke"] is False
    assert json.loads(_one(Zigbee2MqttSensor("w", "leak").payloads(ts, VALUES))[1])["water_leak"] is True
    availability = _one(Zigbee2MqttSensor("s", "smoke", base_topic="z2m").availability(True))
    assert availability == ("z2m/s/availability", b'{"state":"online"}', True)
    with pytest.raises(ValueError, match="kind"):
        Zigbee2MqttSensor("x", "pressure")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="humidity"):
        Zigbee2MqttSensor("x", "temperature_humidity").payloads(ts, {"temperature": 20.0})


def test_tasmota_payloads() -> None:
    topic, payload, retain = _one(TasmotaSensor("store2").payloads(MIDNIGHT_MS + 5_000, VALUES))
    body = json.loads(payload)
    assert topic == "tele/store2/SENSOR" and not retain
    assert body == {"Time": "2026-11-26T00:00:05", "AM2301": {"Temperature": 19.4, "Humidity": 51.8}, "TempUnit": "C"}
    fahrenheit = json.loads(_one(TasmotaSensor("t", "SHT3X", temp_unit="F").payloads(MIDNIGHT_MS, VALUES))[1])
    assert fahrenheit["TempUnit"] == "F" and fahrenheit["SHT3X"]["Temperature"] == pytest.approx(66.9)
    assert fahrenheit["SHT3X"]["DewPoint"] == pytest.approx(9.1, abs=0.2)
    assert TasmotaSensor("store2").availability(False) == [("tele/store2/LWT", b"Offline", True)]


def test_shelly_payloads() -> None:
    gen1 = dict((t, p) for t, p, _ in ShellyGen1HT("shellyht-A1B2C3").payloads(MIDNIGHT_MS, VALUES))
    assert float(gen1["shellies/shellyht-A1B2C3/sensor/temperature"]) == pytest.approx(19.37)
    assert float(gen1["shellies/shellyht-A1B2C3/sensor/humidity"]) == pytest.approx(51.8)
    assert 0 <= int(gen1["shellies/shellyht-A1B2C3/sensor/battery"]) <= 100
    topic, payload, _ = _one(ShellyGen2HT("shellies/plusht", "shellyplusht-08b61f").payloads(MIDNIGHT_MS, VALUES))
    body = json.loads(payload)
    assert topic == "shellies/plusht/events/rpc"
    assert body["method"] == "NotifyStatus" and body["src"] == "shellyplusht-08b61f"
    params = body["params"]
    assert params["ts"] == pytest.approx(MIDNIGHT_MS / 1000)
    assert params["temperature:0"]["tC"] == 19.4 and params["humidity:0"]["rh"] == 51.8
    assert 0 <= params["devicepower:0"]["battery"]["percent"] <= 100


def test_esphome_payloads() -> None:
    node = EsphomeNode("esp-store3", sensors={"temp": "temperature", "rh": "humidity", "door": "door"})
    messages = {t: p for t, p, _ in node.payloads(MIDNIGHT_MS, VALUES)}
    assert messages == {
        "esp-store3/sensor/temp/state": b"19.4",
        "esp-store3/sensor/rh/state": b"51.8",
        "esp-store3/binary_sensor/door/state": b"ON",
    }
    assert node.availability(True) == [("esp-store3/status", b"online", True)]


# --- embedded broker ---------------------------------------------------------------------------------


class Listener:
    """A paho client that records what it receives, for the tests."""

    def __init__(self, port: int, client_id: str, *, clean: bool = True, manual_ack: bool = False) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, manual_ack=manual_ack
        )
        self.client.on_message = lambda _c, _u, message: self.messages.append(message)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.port = port

    def _on_connect(self, _c: object, _u: object, flags: mqtt.ConnectFlags, *_rest: object) -> None:
        self.session_present = flags.session_present
        self._connected.set()

    def connect(self, *subscriptions: str) -> Listener:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self._connected.wait(5), "no CONNACK"
        for topic in subscriptions:
            self._subscribed.clear()
            self.client.subscribe(topic, qos=1)
            assert self._subscribed.wait(5), "no SUBACK"
        return self

    def topics(self) -> list[str]:
        return [m.topic for m in list(self.messages)]

    def close(self) -> None:
        self.client.disconnect()
        stop_network_loop(self.client)


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    for listener in made:
        listener.close()


def _publish(port: int, messages: list[tuple[str, bytes, bool]], client_id: str = "test-pub") -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload, retain in messages:
            client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        stop_network_loop(client)


def test_broker_picks_a_free_port_and_refuses_a_taken_one(broker: EmbeddedBroker) -> None:
    assert broker.port > 0 and broker.running
    with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
        pass
    with pytest.raises(TransportError, match=str(broker.port)):
        EmbeddedBroker(port=broker.port).start()


def test_broker_stop_closes_the_listener() -> None:
    broker = EmbeddedBroker().start()
    port = broker.port
    broker.stop()
    assert not broker.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    broker.stop()  # idempotent


def test_broker_delivers_qos1_and_retained(broker: EmbeddedBroker, listeners: list[Listener]) -> None:
    _publish(broker.port, [("room/1/state", b"retained", True)])
    listener = Listener(broker.port, "t-sub").connect("room/#")
    listeners.append(listener)
    assert wait_until(lambda: len(listener.messages) == 1)
    replay = listener.messages[0]
    assert (replay.topic, replay.payload, replay.retain) == ("room/1/state", b"retained", True)
    _publish(broker.port, [("room/1/live", b"live", False)])
    assert wait_until(lambda: len(listener.messages) == 2)
    live = listener.messages[1]
    assert (live.payload, live.retain, live.qos) == (b"live", False, 1)
    # a client that never subscribed gets no retained messages (amqtt would send them)
    bystander = Listener(broker.port, "t-bystander").connect()
    listeners.append(bystander)
    _publish(broker.port, [("room/1/live", b"again", False)])
    assert wait_until(lambda: len(listener.messages) == 3)
    assert bystander.messages == []


def test_broker_keeps_a_persistent_session(broker: EmbeddedBroker, listeners: list[Listener]) -> None:
    first = Listener(broker.port, "t-collector", clean=False, manual_ack=True).connect("sensors/#")
    first.close()
    _publish(broker.port, [("sensors/a", b"while-away-1", False), ("sensors/b", b"while-away-2", False)])
    again = Listener(broker.port, "t-collector", clean=False, manual_ack=True).connect()
    listeners.append(again)
    assert again.session_present is True
    assert wait_until(lambda: len(again.messages) == 2)
    assert sorted(m.payload for m in again.messages) == [b"while-away-1", b"while-away-2"]
    assert all(m.qos == 1 and not m.retain for m in again.messages)
    for message in again.messages:
        assert again.client.ack(message.mid, message.qos) == mqtt.MQTT_ERR_SUCCESS
    # a clean session forgets the subscription
    clean = Listener(broker.port, "t-collector", clean=True).connect()
    listeners.append(clean)
    again.close()
    _publish(broker.port, [("sensors/c", b"after-clean", False)])
    fresh = Listener(broker.port, "t-watch").connect("sensors/#")
    listeners.append(fresh)
    _publish(broker.port, [("sensors/d", b"marker", False)])
    assert wait_until(lambda: b"marker" in [m.payload for m in fresh.messages])
    assert clean.session_present is False and clean.messages == []


def test_broker_publishes_the_last_will(broker: EmbeddedBroker, listeners: list[Listener]) -> None:
    watcher = Listener(broker.port, "t-watcher").connect("tele/+/LWT")
    listeners.append(watcher)
    dying = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-dying")
    dying.will_set("tele/dying/LWT", b"Offline", qos=1, retain=True)
    dying.connect("127.0.0.1", broker.port)
    assert wait_until(lambda: (dying.loop(0.05), dying.is_connected())[1])
    sock = dying.socket()
    assert sock is not None
    sock.close()  # abnormal disconnect: no DISCONNECT packet
    assert wait_until(lambda: b"Offline" in [m.payload for m in watcher.messages])
    late = Listener(broker.port, "t-late").connect("tele/+/LWT")
    listeners.append(late)
    assert wait_until(lambda: [(m.payload, m.retain) for m in late.messages] == [(b"Offline", True)])


def test_broker_works_with_manual_ack(broker: EmbeddedBroker, listeners: list[Listener]) -> None:
    listener = Listener(broker.port, "t-manual", manual_ack=True).connect("q/#")
    listeners.append(listener)
    _publish(broker.port, [(f"q/{i}", str(i).encode(), False) for i in range(5)])
    assert wait_until(lambda: len(listener.messages) == 5)
    assert [m.payload for m in listener.messages] == [b"0", b"1", b"2", b"3", b"4"]
    for message in listener.messages:
        assert listener.client.ack(message.mid, 1) == mqtt.MQTT_ERR_SUCCESS
    _publish(broker.port, [("q/after", b"after", False)])
    assert wait_until(lambda: listener.topics()[-1:] == ["q/after"])


# --- fleet -------------------------------------------------------------------------------------------


def _fleet_devices() -> list:
    return [
        Zigbee2MqttSensor("store1_th", "temperature_humidity"),
        Zigbee2MqttSensor("store1_door", "door"),
        Zigbee2MqttSensor("store1_smoke", "smoke"),
        Zigbee2MqttSensor("store1_leak", "leak"),
        TasmotaSensor("store2"),
        ShellyGen1HT("shellyht-A1B2C3"),
        ShellyGen2HT("plusht", "shellyplusht-08b61f"),
        EsphomeNode("esp-store3", sensors={"temp": "temperature", "rh": "humidity"}),
    ]


def test_fleet_publishes_every_device(broker: EmbeddedBroker, listeners: list[Listener]) -> None:
    listener = Listener(broker.port, "t-all").connect("#")
    listeners.append(listener)
    devices = _fleet_devices()
    expected = {topic for device in devices for topic, _, _ in device.payloads(MIDNIGHT_MS, VALUES)}
    expected |= {topic for device in devices for topic, _, _ in device.availability(True)}
    fleet = SimulatorFleet(
        "127.0.0.1",
        broker.port,
        devices,
        interval_s=0.2,
        client_id="t-fleet",
        rooms={"store2": RoomModel(climate=FILM_MASTER_STORE)},
    )
    fleet.start()
    try:
        assert wait_until(lambda: expected <= set(listener.topics()) and fleet.counters.rounds >= 2)
        assert wait_until(lambda: fleet.counters.acknowledged >= fleet.counters.sent > 0)
    finally:
        fleet.stop()
    assert fleet.counters.refused == 0 and fleet.counters.connects == 1
    tasmota = [json.loads(m.payload) for m in listener.messages if m.topic == "tele/store2/SENSOR"]
    assert all(12 < body["AM2301"]["Temperature"] < 16 for body in tasmota)  # the film-store room
    zigbee = [json.loads(m.payload) for m in listener.messages if m.topic == "zigbee2mqtt/store1_th"]
    assert all(15 < body["temperature"] < 23 for body in zigbee)  # the default paper store
    assert wait_until(lambda: b"Offline" in [m.payload for m in listener.messages if m.topic == "tele/store2/LWT"])


def test_fleet_survives_a_broker_that_is_down_at_first(listeners: list[Listener]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fleet = SimulatorFleet(
        "127.0.0.1", port, [TasmotaSensor("late")], interval_s=60, client_id="t-late-fleet",
        reconnect_delay_s=(0.1, 0.5),
    )
    fleet.start()
    try:
        assert wait_until(lambda: fleet.counters.rounds >= 1)
        assert not fleet.wait_connected(0)
        with EmbeddedBroker(port=port) as broker:
            listener = Listener(broker.port, "t-late-sub").connect("tele/#")
            listeners.append(listener)
            assert fleet.wait_connected(15)
            assert fleet.publish_once() == 1
            assert wait_until(lambda: "tele/late/SENSOR" in listener.topics())
            assert "tele/late/LWT" in listener.topics()
            fleet.stop()  # mid-way through a 60 s interval: the publishing thread must end now
            assert not [t for t in threading.enumerate() if t.name == "simulator-fleet"]
    finally:
        fleet.stop()
