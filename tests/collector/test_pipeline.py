"""The ingest pipeline on real decoders: routing, validation, calibration, stamping, quarantine."""

from __future__ import annotations

import json
import logging
import sqlite3
from concurrent.futures import Future
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archmon.config import Config, parse_config
from archmon.domain import RawMessage
from collector.pipeline import Pipeline, message_digest
from collector.records import Batch, MqttReceipt, WriteResult
from collector.store import SqliteStore
from devices.modbus import ReadBlock, encode_modbus_payload

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z


def make_config() -> Config:
    return parse_config({
        "site": {"name": "t", "timezone": "Asia/Shanghai"},
        "rooms": [{"id": "paper"}, {"id": "film", "profile": "film_master"}],
        "mqtt": [{"id": "b", "subscriptions": [{"filter": "zigbee2mqtt/#", "format": "zigbee2mqtt"}]}],
        "serial": [
            {"id": "bus", "device": "/dev/null", "protocol": "modbus"},
            {"id": "log", "device": "/dev/null", "protocol": "line",
             "line_pattern": r"T=(?P<temperature>-?\d+(?:\.\d+)?),H=(?P<humidity>-?\d+(?:\.\d+)?)"},
        ],
        "sensors": [
            {"id": "th1", "room": "paper", "source": "b", "topic": "zigbee2mqtt/th1", "format": "zigbee2mqtt",
             "calibration": {"temperature": {"offset": -0.5}, "humidity": {"offset": 2.0}}},
            {"id": "door1", "room": "paper", "kind": "door", "source": "b", "topic": "zigbee2mqtt/door1",
             "format": "zigbee2mqtt"},
            {"id": "film-th", "room": "film", "source": "bus", "address": 1, "preset": "renke-rs-ws-n01"},
            {"id": "film-door", "room": "film", "kind": "door", "source": "bus", "address": 2, "preset": "di8",
             "channel": 0},
            {"id": "film-smoke", "room": "film", "kind": "smoke", "source": "bus", "address": 2, "preset": "di8",
             "channel": 1, "options": {"invert": True}},
            {"id": "logger", "room": "film", "source": "log"},
        ],
    })


class Recorder:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def __call__(self, batch: Batch) -> Future[WriteResult]:
        self.batches.append(batch)
        future: Future[WriteResult] = Future()
        future.set_result(WriteResult(tuple(batch.readings)))
        return future


def pipeline() -> tuple[Pipeline, Recorder]:
    recorder = Recorder()
    return Pipeline(make_config(), recorder, clock=lambda: NOW), recorder


def msg(topic: str, payload: str | bytes, *, source: str = "b", retained: bool = False) -> RawMessage:
    data = payload.encode() if isinstance(payload, str) else payload
    return RawMessage(source, topic, data, NOW, retained)


def test_known_zigbee_sensor_is_calibrated_and_stamped_with_receive_time() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/th1", '{"temperature": 20.0, "humidity": 50, "battery": 90}'))
    got = {r.quantity: r for r in batch.readings}
    assert got["temperature"].value == 19.5
    assert got["humidity"].value == 52.0
    assert got["battery"].value == 90
    assert {r.ts_ms for r in batch.readings} == {NOW}
    assert {r.room for r in batch.readings} == {"paper"}
    assert not batch.quarantine


def test_door_contact_true_is_closed() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/door1", '{"contact": false}'))
    assert [(r.quantity, r.value) for r in batch.readings] == [("door", 1.0)]


def test_out_of_range_value_is_quarantined_and_the_rest_kept() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/th1", '{"temperature": 21.0, "humidity": 180}'))
    assert [r.quantity for r in batch.readings] == ["temperature"]
    assert len(batch.quarantine) == 1
    rec = batch.quarantine[0]
    assert rec.stage == "validate" and rec.sensor == "th1"
    assert "humidity" in rec.reason and "180" in rec.reason
    assert rec.payload == b'{"temperature": 21.0, "humidity": 180}'
    assert batch.counters["rejected"] == 1 and batch.counters["quarantined"] == 1


def test_malformed_payload_is_quarantined_with_source_and_raw_bytes() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/th1", b"\xff{not json"))
    assert not batch.readings
    (rec,) = batch.quarantine
    assert rec.stage == "decode" and rec.source == "b" and rec.payload == b"\xff{not json"
    assert "th1" in rec.reason


def test_unknown_device_is_listed_as_unassigned_with_its_readings() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/new_sensor", '{"temperature": 18.2, "humidity": 47}'))
    assert not batch.readings and not batch.quarantine
    (rec,) = batch.unassigned
    assert rec.device_topic == "zigbee2mqtt/new_sensor" and rec.format == "zigbee2mqtt"
    would_give = json.loads(rec.readings_json)
    assert {(r["quantity"], r["value"]) for r in would_give["readings"]} == {("temperature", 18.2), ("humidity", 47)}
    assert would_give["rejected"] == []
    assert batch.counters["unassigned"] == 1


def test_unassigned_device_values_are_validated_like_any_other() -> None:
    p, _ = pipeline()
    payload = b'{"temperature": NaN, "humidity": 180, "battery": Infinity, "illuminance_lux": 12}'
    batch = p.handle(msg("zigbee2mqtt/new_sensor", payload))
    (rec,) = batch.unassigned
    assert "NaN" not in rec.readings_json and "Infinity" not in rec.readings_json
    would_give = json.loads(rec.readings_json, parse_constant=lambda token: pytest.fail(f"{token} in JSON"))
    assert [(r["quantity"], r["value"]) for r in would_give["readings"]] == [("light", 12)]
    rejected = {r["quantity"]: r for r in would_give["rejected"]}
    assert set(rejected) == {"temperature", "humidity", "battery"}
    assert rejected["temperature"]["value"] == "nan" and "not a finite number" in rejected["temperature"]["reason"]
    assert rejected["battery"]["value"] == "inf"
    assert "outside the physical range" in rejected["humidity"]["reason"] and rejected["humidity"]["value"] == 180
    assert batch.counters["rejected"] == 3 and not batch.readings


def test_topic_without_sensor_or_format_is_quarantined() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("random/topic", "42"))
    (rec,) = batch.quarantine
    assert rec.stage == "route" and "random/topic" in rec.reason


def test_retained_replay_without_device_time_is_not_stored_as_new_reading() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/door1", '{"contact": true}', retained=True))
    assert not batch.readings
    assert batch.counters["retained_skipped"] == 1


def test_retained_replay_with_device_time_is_stored_at_device_time() -> None:
    p, _ = pipeline()
    device_ts = NOW - 3_600_000
    payload = json.dumps({"contact": True, "last_seen": device_ts})
    batch = p.handle(msg("zigbee2mqtt/door1", payload, retained=True))
    assert [(r.quantity, r.value, r.ts_ms) for r in batch.readings] == [("door", 0.0, device_ts)]


def test_implausible_device_time_falls_back_to_receive_time() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/th1", '{"temperature": 20, "last_seen": "2001-01-01T00:00:00Z"}'))
    assert [r.ts_ms for r in batch.readings] == [NOW]


def test_availability_message_is_recorded_for_the_sensor() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/th1/availability", '{"state":"offline"}'))
    assert [(a.sensor, a.state) for a in batch.availability] == [("th1", "offline")]
    assert not batch.readings and not batch.quarantine


def test_modbus_transmitter_and_input_module_channels() -> None:
    p, _ = pipeline()
    th = encode_modbus_payload(1, [(ReadBlock(3, 0, 2), [523, 0xFF33])])
    batch = p.handle(RawMessage("bus", "modbus/bus/1", th, NOW))
    assert {r.quantity: r.value for r in batch.readings} == {"humidity": 52.3, "temperature": -20.5}
    # input 0: door contact closed (1) = door closed; input 1: smoke relay, wired the other way (invert)
    di = encode_modbus_payload(2, [(ReadBlock(2, 0, 8), [1, 1, 0, 0, 0, 0, 0, 0])])
    batch = p.handle(RawMessage("bus", "modbus/bus/2", di, NOW))
    assert sorted((r.sensor, r.quantity, r.value) for r in batch.readings) == [
        ("film-door", "door", 0.0), ("film-smoke", "smoke", 0.0)]
    di = encode_modbus_payload(2, [(ReadBlock(2, 0, 8), [0, 0, 0, 0, 0, 0, 0, 0])])
    batch = p.handle(RawMessage("bus", "modbus/bus/2", di, NOW))
    assert sorted((r.sensor, r.quantity, r.value) for r in batch.readings) == [
        ("film-door", "door", 1.0), ("film-smoke", "smoke", 1.0)]


def test_line_sensor_good_and_garbage_lines() -> None:
    p, _ = pipeline()
    batch = p.handle(RawMessage("log", "line/log", b"T=21.5,H=52.1", NOW))
    assert {r.quantity: r.value for r in batch.readings} == {"temperature": 21.5, "humidity": 52.1}
    assert {r.sensor for r in batch.readings} == {"logger"}
    batch = p.handle(RawMessage("log", "line/log", b"\x00garbage", NOW))
    assert not batch.readings and batch.quarantine[0].stage == "decode"


def test_process_submits_the_batch_and_returns_the_writers_future() -> None:
    p, recorder = pipeline()
    future = p.process(msg("zigbee2mqtt/th1", '{"temperature": 20}'))
    assert future.result(timeout=1).stored[0].sensor == "th1"
    assert recorder.batches[0].counters["received"] == 1


TOPICS = st.sampled_from([
    "zigbee2mqtt/th1", "zigbee2mqtt/th1/availability", "zigbee2mqtt/door1", "zigbee2mqtt/other",
    "zigbee2mqtt/bridge/state", "tele/x/SENSOR", "other",
])
JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["temperature", "humidity", "contact", "battery", "last_seen", "state",
                                       "smoke", "water_leak", "x"]), children, max_size=5),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(topic=TOPICS, payload=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()),
       retained=st.booleans())
def test_fuzz_mqtt_nothing_raises_and_every_reject_has_a_reason(topic: str, payload: bytes,
                                                               retained: bool) -> None:
    p, _ = pipeline()
    batch = p.handle(RawMessage("b", topic, payload, NOW, retained))
    for reading in batch.readings:
        assert reading.value == reading.value  # not NaN
    for rec in batch.quarantine:
        assert rec.reason and rec.payload == payload and rec.source == "b"
    produced = len(batch.readings) + len(batch.quarantine) + len(batch.unassigned) + len(batch.availability)
    accounted = sum(batch.counters.get(name, 0) for name in ("retained_skipped", "empty", "ignored"))
    assert produced > 0 or accounted > 0


@settings(max_examples=200, deadline=None)
@given(source=st.sampled_from(["bus", "log"]), address=st.integers(0, 300), payload=st.binary(max_size=120))
def test_fuzz_serial_nothing_raises(source: str, address: int, payload: bytes) -> None:
    p, _ = pipeline()
    topic = f"modbus/bus/{address}" if source == "bus" else "line/log"
    batch = p.handle(RawMessage(source, topic, payload, NOW))
    assert batch.readings or batch.quarantine


def test_subscriptions_do_not_overlap() -> None:
    p, _ = pipeline()
    # the sensors' own topics are covered by the source's zigbee2mqtt/# subscription
    assert p.router.mqtt_topics("b") == ["zigbee2mqtt/#"]


def test_routine_device_chatter_is_ignored_not_quarantined() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/th1/set", '{"state": "ON"}'))
    assert not batch.quarantine and not batch.readings
    assert batch.counters["ignored"] == 1


def test_humidity_slightly_over_100_is_saturation() -> None:
    p, _ = pipeline()
    batch = p.handle(msg("zigbee2mqtt/door1", '{"humidity": 101.3}'))
    assert [(r.quantity, r.value) for r in batch.readings] == [("humidity", 100.0)]
    assert batch.counters["clamped"] == 1
    batch = p.handle(msg("zigbee2mqtt/door1", '{"humidity": 130}'))
    assert not batch.readings and batch.quarantine


def test_line_timestamps_without_offset_are_site_local() -> None:
    config = make_config()
    data = config.model_dump()
    data["sources"][2]["line_pattern"] = r"(?P<ts>\S+) T=(?P<temperature>-?\d+(?:\.\d+)?)"
    data.pop("path", None)
    p = Pipeline(parse_config(data), Recorder(), clock=lambda: NOW)
    batch = p.handle(RawMessage("log", "line/log", b"2025-11-24T23:30:00 T=20.5", NOW))
    assert [r.ts_ms for r in batch.readings] == [NOW - 30 * 60_000]  # 23:30 in Shanghai = 15:30Z


# -- redelivered MQTT messages without device time ---------------------------------------------------

def qos1(topic: str, payload: str, *, mid: int = 7, dup: bool = False, received_ms: int = NOW) -> RawMessage:
    return RawMessage("b", topic, payload.encode(), received_ms, mid=mid, dup=dup)


def test_qos1_message_stamped_with_receive_time_leaves_a_receipt() -> None:
    p, _ = pipeline()
    batch = p.handle(qos1("zigbee2mqtt/th1", '{"temperature": 20, "humidity": 50}'))
    assert batch.receipts == [
        MqttReceipt("b", 7, message_digest("zigbee2mqtt/th1", b'{"temperature": 20, "humidity": 50}'), NOW)]
    assert batch.counters["source.b.qos_messages"] == 1
    assert "redelivered" not in batch.counters


def test_no_receipt_for_device_time_qos0_or_nothing_stored() -> None:
    p, _ = pipeline()
    device_time = p.handle(qos1("zigbee2mqtt/th1", json.dumps({"temperature": 20, "last_seen": NOW - 1000})))
    assert device_time.readings and not device_time.receipts
    qos0 = p.handle(msg("zigbee2mqtt/th1", '{"temperature": 20}'))
    assert qos0.readings and not qos0.receipts and "source.b.qos_messages" not in qos0.counters
    rejected = p.handle(qos1("zigbee2mqtt/th1", '{"temperature": 500}'))
    assert not rejected.readings and not rejected.receipts
    availability = p.handle(qos1("zigbee2mqtt/th1/availability", '{"state":"online"}'))
    assert not availability.receipts and availability.counters["source.b.qos_messages"] == 1


def test_redelivery_is_stamped_with_the_first_receive_time() -> None:
    looked_up: list[tuple[str, int, bytes]] = []

    def lookup(source: str, mid: int, digest: bytes) -> int | None:
        looked_up.append((source, mid, digest))
        return NOW - 5000

    recorder = Recorder()
    p = Pipeline(make_config(), recorder, clock=lambda: NOW, receipt_lookup=lookup)
    payload = '{"temperature": 20}'
    first = p.handle(qos1("zigbee2mqtt/th1", payload))  # not a redelivery: no lookup
    assert not looked_up and [r.ts_ms for r in first.readings] == [NOW]
    again = p.handle(qos1("zigbee2mqtt/th1", payload, dup=True))
    digest = message_digest("zigbee2mqtt/th1", payload.encode())
    assert looked_up == [("b", 7, digest)]
    assert [r.ts_ms for r in again.readings] == [NOW - 5000]
    assert again.counters["redelivered"] == 1 and again.counters["redelivered_restamped"] == 1
    assert again.receipts == [MqttReceipt("b", 7, digest, NOW - 5000)]


def test_redelivery_without_receipt_or_lookup_gets_the_receive_time() -> None:
    def failing(source: str, mid: int, digest: bytes) -> int | None:
        raise sqlite3.OperationalError("disk I/O error")

    for lookup, counter in ((lambda *_: None, None), (None, None), (failing, "receipt_lookup_errors")):
        p = Pipeline(make_config(), Recorder(), clock=lambda: NOW, receipt_lookup=lookup)
        batch = p.handle(qos1("zigbee2mqtt/th1", '{"temperature": 20}', dup=True))
        assert [r.ts_ms for r in batch.readings] == [NOW]
        assert batch.counters["redelivered"] == 1 and "redelivered_restamped" not in batch.counters
        assert [r.received_ms for r in batch.receipts] == [NOW]
        if counter:
            assert batch.counters[counter] == 1


def test_redelivery_with_device_time_needs_no_receipt() -> None:
    p = Pipeline(make_config(), Recorder(), clock=lambda: NOW, receipt_lookup=lambda *_: NOW - 5000)
    batch = p.handle(qos1("zigbee2mqtt/th1", json.dumps({"temperature": 20, "last_seen": NOW - 1000}), dup=True))
    assert [r.ts_ms for r in batch.readings] == [NOW - 1000]
    assert not batch.receipts and "redelivered_restamped" not in batch.counters


def test_redelivery_after_a_crash_is_a_duplicate_in_the_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db", tz=ZoneInfo("Asia/Shanghai"))
    try:
        p = Pipeline(make_config(), lambda b: _done(store.write(b)), clock=lambda: NOW,
                     receipt_lookup=store.receipt_time)
        payload = '{"temperature": 20, "humidity": 50}'
        p.process(qos1("zigbee2mqtt/th1", payload, mid=41, received_ms=NOW - 2000))
        # ... killed before the PUBACK: the broker sends it again, same packet id, DUP set
        result = p.process(qos1("zigbee2mqtt/th1", payload, mid=41, dup=True)).result()
        assert result.stored == () and result.duplicates == 2
        # a different message that happens to reuse the packet id is new data
        result = p.process(qos1("zigbee2mqtt/th1", '{"temperature": 21}', mid=41, dup=True)).result()
        assert [(r.value, r.ts_ms) for r in result.stored] == [(20.5, NOW)]  # calibrated -0.5
        assert store.count_readings() == 3
        counters = store.counters()
        assert counters["redelivered_restamped"] == 1 and counters["duplicates"] == 2
    finally:
        store.close()


def _done(result: WriteResult) -> Future[WriteResult]:
    future: Future[WriteResult] = Future()
    future.set_result(result)
    return future


def test_messages_received_in_the_same_millisecond_keep_distinct_keys() -> None:
    p, _ = pipeline()
    burst = [p.handle(msg("zigbee2mqtt/th1", f'{{"temperature": {20 + i}}}')) for i in range(3)]
    stamps = [b.readings[0].ts_ms for b in burst]
    assert stamps == [NOW, NOW + 1, NOW + 2]  # a backlog delivered at once is not collapsed into one reading
    other = p.handle(msg("zigbee2mqtt/door1", '{"contact": true}'))
    assert other.readings[0].ts_ms == NOW  # per sensor: other sensors keep the real receive time


def test_handle_many_is_the_merge_of_handling_each_message() -> None:
    messages = [
        msg("zigbee2mqtt/th1", '{"temperature": 20.0, "humidity": 50}'),
        msg("zigbee2mqtt/th1", "not json"),
        RawMessage("b", "zigbee2mqtt/th1", b'{"temperature": 21.0}', NOW, mid=7),
        msg("zigbee2mqtt/unknown", '{"temperature": 19.0}'),
    ]
    one, _ = pipeline()
    merged = Batch()
    for message in messages:
        merged.extend(one.handle(message))
    many, recorder = pipeline()
    assert many.handle_many(messages) == merged
    many.process_many(messages).result(0)
    assert len(recorder.batches) == 1 and recorder.batches[0].counters["received"] == 4


# -- bounded quarantine, implausible device times ------------------------------------------------------

def test_quarantine_keeps_a_prefix_with_the_full_size_and_digest(tmp_path: Path) -> None:
    import hashlib

    p, _ = pipeline()
    payload = b"\x00garbage" * 20_000  # 160 kB
    batch = p.handle(msg("zigbee2mqtt/th1", payload))
    (rec,) = batch.quarantine
    assert rec.payload == payload[:65_536] and rec.payload_size == len(payload)
    assert rec.payload_sha256 == hashlib.sha256(payload).digest()
    store = SqliteStore(tmp_path / "q.db", tz=ZoneInfo("UTC"))
    try:
        store.write(batch)
        (kept,) = store.quarantine()
        assert (len(kept.payload), kept.payload_size, kept.truncated) == (65_536, len(payload), True)
        assert kept.payload_sha256 == hashlib.sha256(payload).digest()
    finally:
        store.close()


def _config_with(**storage: object) -> Config:
    data = make_config().model_dump()
    data.pop("path", None)
    data["storage"].update(storage)
    return parse_config(data)


def test_a_flood_keeps_at_most_the_limit_in_any_minute_per_device_and_per_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A garbage device sending once a second for ten minutes: its sensor keeps at most 10 records in any 60 s
    (not a burst plus a refill), the source at most its limit, and another sensor's bad value is still kept."""
    p = Pipeline(_config_with(quarantine_per_source_per_minute=15), Recorder(), clock=lambda: NOW)
    kept: list[int] = []
    suppressed = 0
    for i in range(600):
        batch = p.handle(RawMessage("b", "zigbee2mqtt/th1", b"garbage", NOW + i * 1000))
        kept += [q.received_ms for q in batch.quarantine]
        suppressed += batch.counters.get("quarantine_suppressed", 0)
        if i == 30:  # mid-flood, the other sensor's out-of-range value: its own allowance
            other = p.handle(RawMessage("b", "zigbee2mqtt/door1", b'{"contact": false, "humidity": 180}', NOW + i))
            assert [q.sensor for q in other.quarantine] == ["door1"]
    assert len(kept) + suppressed == 600 and len(kept) == 100  # 10 a minute for 10 minutes
    assert max(sum(1 for t in kept if start <= t < start + 60_000) for start in kept) == 10
    later = NOW + 700_000  # the flood's minute is over: topics no sensor claims share one device's allowance
    unclaimed = [p.handle(RawMessage("b", f"nosuch/{i}", b"x", later + i)) for i in range(30)]
    assert sum(len(b.quarantine) for b in unclaimed) == 10
    lines = [r.getMessage() for r in caplog.records if "floods the quarantine" in r.getMessage()]
    assert len(lines) == 1 and "sensor th1: more than 10 rejects a minute" in lines[0]  # once per flood


def test_a_flood_ends_after_quiet_minutes_with_its_total(caplog: pytest.LogCaptureFixture) -> None:
    p = Pipeline(_config_with(quarantine_per_source_per_minute=5), Recorder(), clock=lambda: NOW)
    flood = p.handle_many([RawMessage("b", "zigbee2mqtt/th1", b"garbage", NOW + i) for i in range(100)])
    assert len(flood.quarantine) == 5 and flood.counters["quarantine_suppressed"] == 95
    assert flood.counters["source.b.quarantine_suppressed"] == 95
    other = p.handle(RawMessage("log", "line/log", b"\x00garbage", NOW))  # another source is not limited
    assert len(other.quarantine) == 1
    assert p.quarantine.flooding() == {"b": 95}
    later = p.handle_many([RawMessage("b", "zigbee2mqtt/th1", b"garbage", NOW + 9 * 60_000 + i) for i in range(10)])
    assert len(later.quarantine) == 5 and p.quarantine.flooding() == {"b": 100}  # the window moved; still flooding
    p.handle(RawMessage("log", "line/log", b"\x00garbage", NOW + 20 * 60_000))  # ten quiet minutes later
    assert p.quarantine.flooding() == {}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("floods the quarantine" in m for m in messages) == 1
    (over,) = [m for m in messages if "flood is over" in m]
    assert "100 reject(s) suppressed" in over


def test_quarantined_text_is_bounded() -> None:
    from collector.quarantine import TEXT_MAX_BYTES

    p, _ = pipeline()
    big = "A" * 1_000_000
    value = p.handle(msg("zigbee2mqtt/th1", json.dumps({"temperature": big})))
    route = p.handle(msg("nosuch/" + "x" * 60_000, b"y" * 1_000_000))
    long_device = p.handle(msg("zigbee2mqtt/" + "d" * 5000, b'{"temperature": 20}'))  # not listed as unassigned
    records = [*value.quarantine, *route.quarantine, *long_device.quarantine]
    assert len(records) == 3 and not long_device.unassigned
    for rec in records:
        assert len(rec.topic.encode()) <= TEXT_MAX_BYTES and len(rec.reason.encode()) <= TEXT_MAX_BYTES
        assert len(rec.payload) <= 65_536 and rec.payload_size >= len(rec.payload)
    assert route.quarantine[0].topic.endswith(f"… ({len('nosuch/') + 60_000} bytes)")
    unassigned = p.handle(msg("zigbee2mqtt/new", json.dumps({"temperature": 999.0, "humidity": 50, "pad": big})))
    (rec,) = unassigned.unassigned
    assert len(rec.payload) == 1024 and len(rec.readings_json) < 1000
    assert json.loads(rec.readings_json)["rejected"][0]["quantity"] == "temperature"


def test_implausible_device_time_is_counted_and_logged_once_per_sensor(caplog: pytest.LogCaptureFixture) -> None:
    p, _ = pipeline()
    ahead = json.dumps({"temperature": 20, "humidity": 50, "last_seen": NOW + 3_600_000})
    batches = [p.handle(msg("zigbee2mqtt/th1", ahead)) for _ in range(3)]
    assert [r.ts_ms for r in batches[0].readings] == [NOW, NOW]  # the receive time instead
    assert all(b.counters["device_time_rejected"] == 1 for b in batches)  # once per message, not per value
    assert batches[0].counters["sensor.th1.device_time_rejected"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "th1: device time" in w]) == 1
    assert any("ahead of the receive time" in w and "NTP" in w for w in warnings)
    old = p.handle(msg("zigbee2mqtt/door1", '{"contact": true, "last_seen": "2001-01-01T00:00:00Z"}'))
    assert old.counters["device_time_rejected"] == 1
    assert any("door1: device time 2001-01-01" in r.getMessage() for r in caplog.records)
    plausible = p.handle(msg("zigbee2mqtt/th1", json.dumps({"temperature": 20, "last_seen": NOW - 1000})))
    assert "device_time_rejected" not in plausible.counters


class HeldRecorder(Recorder):
    """A writer whose commits are held back: futures resolve only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.futures: list[Future[WriteResult]] = []

    def __call__(self, batch: Batch) -> Future[WriteResult]:
        self.batches.append(batch)
        self.futures.append(Future())
        return self.futures[-1]


def test_copy_sent_again_before_the_first_commit_gets_the_first_time() -> None:
    held = HeldRecorder()
    p = Pipeline(make_config(), held, clock=lambda: NOW, receipt_lookup=lambda *_: None)  # nothing committed
    payload = '{"temperature": 20}'
    p.process_many([qos1("zigbee2mqtt/th1", payload, received_ms=NOW - 3000)])
    assert p.receipts.pending() == 1
    p.process_many([qos1("zigbee2mqtt/th1", payload, dup=True)])
    first, again = held.batches
    assert [r.ts_ms for r in again.readings] == [r.ts_ms for r in first.readings] == [NOW - 3000]
    assert again.counters["redelivered_restamped"] == 1
    held.futures[0].set_result(WriteResult())
    held.futures[1].set_result(WriteResult())
    assert p.receipts.pending() == 0  # committed: the store has them now


def test_replayed_messages_are_stored_anew_and_counted_when_they_may_be_copies() -> None:
    """After a broker crash a replay (no DUP) and a new message under a reused packet id look alike, even in
    content (a stable room sends the same payload every minute): neither may take an old time, or the new
    reading would be dropped as a duplicate. One that matches a stored receipt is counted as a possible copy."""
    committed = {(7, message_digest("zigbee2mqtt/th1", b'{"temperature": 20}')): NOW - 9000}
    p = Pipeline(make_config(), Recorder(), clock=lambda: NOW,
                 receipt_lookup=lambda source, mid, digest: committed.get((mid, digest)))

    def replayed(mid: int, payload: str, received_ms: int) -> Batch:
        return p.handle(RawMessage("b", "zigbee2mqtt/th1", payload.encode(), received_ms, mid=mid, replayed=True))

    same = replayed(7, '{"temperature": 20}', NOW)  # a resend, or a new identical reading: stored either way
    assert [r.ts_ms for r in same.readings] == [NOW]
    assert same.counters["replayed"] == 1 and same.counters["replayed_possible_duplicates"] == 1
    assert same.counters["source.b.replayed_possible_duplicates"] == 1 and "redelivered_restamped" not in same.counters
    assert [(r.mid, r.received_ms) for r in same.receipts] == [(7, NOW)]  # its own time, for a later DUP copy
    other = replayed(8, '{"temperature": 21}', NOW + 10)  # no receipt: new
    assert [r.ts_ms for r in other.readings] == [NOW + 10] and "replayed_possible_duplicates" not in other.counters
    dup = p.handle(RawMessage("b", "zigbee2mqtt/th1", b'{"temperature": 20}', NOW + 20, mid=7, dup=True))
    assert [r.ts_ms for r in dup.readings] == [NOW - 9000]  # DUP: the broker sent this very message before


# -- handing the same messages over again ------------------------------------------------------------------

def test_a_chunk_held_back_by_a_full_writer_gets_the_same_stamps_and_quarantine_decisions_again(
    tmp_path: Path,
) -> None:
    """The MQTT source's network thread never waits: a full writer raises at once and the chunk is offered
    again later, through the whole pipeline again. Its readings must keep their receive times (not "the
    sensor's last + 1 ms") and its rejects must not take a second flood-limit token."""
    from archmon.errors import RetryLater
    from collector.writer import StoreWriter
    from tests.fixtures.serial_ports import wait_until
    from tests.fixtures.store_stall import StoreStall

    data = make_config().model_dump()
    data.pop("path", None)
    data["storage"]["quarantine_per_source_per_minute"] = 2  # the chunk's two rejects use up the minute
    store = SqliteStore(tmp_path / "a.db", tz=ZoneInfo("Asia/Shanghai"))
    writer = StoreWriter(store, flush_interval_ms=20, max_queued_records=3)
    writer.start()
    try:
        p = Pipeline(parse_config(data), writer.submit, clock=lambda: NOW)
        chunk = [
            qos1("zigbee2mqtt/th1", '{"temperature": 21}', mid=2, received_ms=NOW - 3000),
            qos1("zigbee2mqtt/th1", "not json", mid=3, received_ms=NOW - 2900),
            qos1("zigbee2mqtt/th1", "nor this", mid=4, received_ms=NOW - 2800),
            qos1("zigbee2mqtt/th1", '{"temperature": 22}', mid=5, received_ms=NOW - 2000),
        ]
        with StoreStall(store.path):
            p.process_many([qos1("zigbee2mqtt/th1", '{"temperature": 20, "humidity": 50, "battery": 90}', mid=1,
                                 received_ms=NOW - 5000)], timeout=0)  # three records: the queue is full
            for _ in range(3):  # held back, offered again, held back again...
                with pytest.raises(RetryLater, match="queue full"):
                    p.process_many(chunk, timeout=0)
        future: list[Future[WriteResult]] = []
        assert wait_until(lambda: _offered(p, chunk, future), timeout=30)
        future[0].result(timeout=30)
        assert [ts for ts, _ in store.series("th1", "temperature", 0, 2**62)] == [NOW - 5000, NOW - 3000, NOW - 2000]
        assert store.quarantine_count() == 2
        assert "quarantine_suppressed" not in store.counters()
    finally:
        writer.close()
        store.close()


def _offered(p: Pipeline, chunk: list[RawMessage], future: list[Future[WriteResult]]) -> bool:
    from archmon.errors import RetryLater

    try:
        future.append(p.process_many(chunk, timeout=0))
    except RetryLater:
        return False
    return True


class FullThenTaking:
    """A writer that raises ``RetryLater`` for the first ``full`` submits (``timeout=0``), then takes batches."""

    def __init__(self, full: int) -> None:
        self.full = full
        self.batches: list[Batch] = []

    def __call__(self, batch: Batch, *, timeout: float | None = None) -> Future[WriteResult]:
        from archmon.errors import RetryLater

        if self.full > 0:
            self.full -= 1
            raise RetryLater("queue full")
        self.batches.append(batch)
        future: Future[WriteResult] = Future()
        future.set_result(WriteResult(tuple(batch.readings)))
        return future


def _offered_until_taken(p: Pipeline, messages: list[RawMessage]) -> int:
    from archmon.errors import RetryLater

    refused = 0
    while True:
        try:
            p.process_many(messages, timeout=0)
            return refused
        except RetryLater:
            refused += 1


def test_a_thousand_refused_offers_change_no_stamp_no_quarantine_place_and_no_replay_decision() -> None:
    """The MQTT source offers a held chunk again every pass until the writer takes it: each offer runs the
    whole pipeline again, and must give what the first gave (a 1 ms drift per offer moved readings by a second)."""
    committed = {(31, message_digest("zigbee2mqtt/th1", b'{"temperature": 25}')): NOW - 60_000}
    writer = FullThenTaking(full=1000)
    p = Pipeline(_config_with(quarantine_per_source_per_minute=1), writer, clock=lambda: NOW,
                 receipt_lookup=lambda source, mid, digest: committed.get((mid, digest)))
    chunk = [qos1("zigbee2mqtt/th1", f'{{"temperature": {20 + i / 10}}}', mid=i + 1, received_ms=NOW + i * 10)
             for i in range(20)]
    chunk.append(qos1("zigbee2mqtt/th1", "not json", mid=30, received_ms=NOW + 300))  # the minute's one record
    chunk.append(RawMessage("b", "zigbee2mqtt/th1", b'{"temperature": 25}', NOW + 400, mid=31, replayed=True))
    chunk.append(RawMessage("b", "zigbee2mqtt/th1", b'{"temperature": 26}', NOW + 500, mid=32, replayed=True))
    assert _offered_until_taken(p, chunk) == 1000
    (batch,) = writer.batches
    stamps = {r.value: r.ts_ms for r in batch.readings}
    assert [stamps[round(20 + i / 10 - 0.5, 2)] for i in range(20)] == [NOW + i * 10 for i in range(20)]
    assert stamps[24.5] == NOW + 400 and stamps[25.5] == NOW + 500  # replays stamped anew, once
    assert len(batch.quarantine) == 1 and "quarantine_suppressed" not in batch.counters
    assert batch.counters["replayed_possible_duplicates"] == 1  # the one matching a stored receipt
    assert [(r.mid, r.received_ms) for r in batch.receipts][-2:] == [(31, NOW + 400), (32, NOW + 500)]


def test_device_time_warnings_survive_ten_thousand_unassigned_devices(caplog: pytest.LogCaptureFixture) -> None:
    p, _ = pipeline()
    for i in range(10_000):  # a big site, or a rogue client, introduces many unassigned topics
        p.handle(RawMessage("b", f"zigbee2mqtt/dev{i}", b'{"temperature": 20}', NOW, False))
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    for i in range(5):  # past the cap new unassigned devices are logged at DEBUG, not one warning each
        p.handle(RawMessage("b", f"zigbee2mqtt/late{i}", b'{"temperature": 20}', NOW, False))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "more than 10000 distinct unassigned conditions" in warnings[0]
    assert sum("late" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG) == 5
    caplog.clear()
    bad = json.dumps({"temperature": 20.0, "last_seen": NOW - 30 * 86_400_000}).encode()
    for _ in range(5):
        p.handle(RawMessage("b", "zigbee2mqtt/th1", bad, NOW, False))
    device_time = [r for r in caplog.records if "device time" in r.getMessage()]
    assert [r.levelno for r in device_time] == [logging.WARNING] + [logging.DEBUG] * 4


def test_a_lone_qos1_message_the_store_refuses_is_quarantined_and_resolves() -> None:
    """Refused for good (a constraint), it would come back on every reconnect and hold an in-flight place."""
    import sqlite3 as sqlite

    from archmon.errors import RetryLater

    submitted: list[Batch] = []
    outcomes: list[BaseException | None] = []

    def store(batch: Batch, *, timeout: float | None = None) -> Future[WriteResult]:
        submitted.append(batch)
        future: Future[WriteResult] = Future()
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is None:
            future.set_result(WriteResult(tuple(batch.readings)))
        else:
            future.set_exception(outcome)
        return future

    p = Pipeline(make_config(), store, clock=lambda: NOW)
    refused = sqlite.IntegrityError("CHECK constraint failed")
    outcomes[:] = [refused]
    result = p.process_many([qos1("zigbee2mqtt/th1", '{"temperature": 20}', mid=9)], timeout=0).result(0)
    assert result == WriteResult()
    first, record = submitted
    assert first.readings and not record.readings
    (kept,) = record.quarantine
    assert kept.stage == "store" and "IntegrityError: CHECK constraint failed" in kept.reason
    assert record.counters["store_refused"] == 1 and record.counters["source.b.store_refused"] == 1
    outcomes[:] = [RetryLater("store writer closed")]  # not refused: stays unacknowledged, nothing quarantined
    with pytest.raises(RetryLater):
        p.process_many([qos1("zigbee2mqtt/th1", '{"temperature": 21}', mid=10)], timeout=0).result(0)
    outcomes[:] = [refused, refused]  # the quarantine record refused too (a broken store): the refusal stands
    with pytest.raises(sqlite.IntegrityError):
        p.process_many([qos1("zigbee2mqtt/th1", '{"temperature": 22}', mid=11)], timeout=0).result(0)
    outcomes[:] = [refused]  # a chunk of several or a serial line: the source decides (split, count)
    with pytest.raises(sqlite.IntegrityError):
        p.process_many([msg("zigbee2mqtt/th1", '{"temperature": 23}')], timeout=0).result(0)


def test_a_refused_chunk_split_after_newer_messages_keeps_its_stamps() -> None:
    """The split thread hands a refused chunk's messages over again while the network thread goes on with newer
    ones: handled again, the older messages keep their stamps and never move past the newer ones."""
    p, recorder = pipeline()
    chunk = [qos1("zigbee2mqtt/th1", f'{{"temperature": {20 + i}}}', mid=i + 1, received_ms=NOW) for i in range(3)]
    p.process_many(chunk)  # same millisecond: NOW, NOW + 1, NOW + 2 (the store refuses this batch)
    newer = p.handle(qos1("zigbee2mqtt/th1", '{"temperature": 30}', mid=4, received_ms=NOW + 1))
    again = [p.handle(message).readings[0].ts_ms for message in chunk]  # the split, one by one
    assert [r.ts_ms for r in recorder.batches[0].readings] == again == [NOW, NOW + 1, NOW + 2]
    assert [r.ts_ms for r in newer.readings] == [NOW + 3]


def test_device_text_in_the_log_cannot_drive_the_terminal_or_fake_a_line() -> None:
    """Topics, device names and reasons come from devices: the log escapes controls (ANSI, bidi overrides) in
    messages and exceptions, indents the lines after a record's first, and cuts long device text."""
    import io

    from archmon.logsetup import ZoneFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(ZoneFormatter())
    logger = logging.getLogger("collector")
    logger.addHandler(handler)
    try:
        p, _ = pipeline()
        evil = "zigbee2mqtt/\x1b[2J\x1b[31mx\u202eevil\n2026-01-01T00:00:00.000+08:00 ERROR archmon: fake" + "y" * 5000
        p.handle(msg(evil, b"garbage"))
        try:
            raise ValueError("bad \x1b]0;title\x07 value\nsecond")
        except ValueError:
            logging.getLogger("collector.test").exception("failed on %s", "\u2066topic")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "\x1b" not in text and "\u202e" not in text and "\u2066" not in text and "\x07" not in text
    assert "\\x1b[2J\\x1b[31mx\\u202eevil" in text and "\\x1b]0;title\\x07" in text and "\\u2066topic" in text
    lines = text.splitlines()
    assert sum(not line.startswith("  ") for line in lines) == 2  # two records, every other line indented
    assert any(line.startswith("  2026-01-01T00:00:00.000+08:00 ERROR archmon: fake") for line in lines)
    assert max(len(line) for line in lines) < 600  # the 5 kB topic is cut
