"""Many sites, one city: two sites and one central archmon on loopback (real Mosquitto as the city's broker,
real InfluxDB 1.6 as the central database), and the central's view of what it hears (``CityState``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from archmon.paho import stop_network_loop
from archmon.partition import Partition
from dashboards.city import CityState, alert_topic, status_topic
from tests.archmon.operations import ROOT, ArchmonProcess
from tests.dashboards.site import login
from tests.fixtures.mosquitto import MosquittoBroker, free_port
from tests.fixtures.tsdb import InfluxServer
from tests.fixtures.waiting import wait_for

NOW = 1_767_225_600_000


def _status(site: str, ts: int, interval: float = 10, instance: str = "1/1", rooms: list | None = None) -> bytes:
    return json.dumps({"site": site, "instance": instance, "state": "online", "ts_ms": ts, "interval_s": interval,
                       "rooms": rooms or [{"room": "paper", "sensors": 2, "ok": 2, "compliance": "ok",
                                           "temperature": [19.0, 21.0]}]}).encode()


def test_contact_is_judged_by_arrival_for_live_messages_by_their_own_time_for_replays_and_by_the_will() -> None:
    state = CityState(stale_factor=3)
    state.on_message("archmon/a/status", _status("a", NOW - 20_000), received_ms=NOW)  # live, its clock 20 s slow
    state.on_message("archmon/b/status", _status("b", NOW - 31_000), received_ms=NOW, retained=True)  # an old replay
    state.on_message("archmon/c/status", _status("c", NOW), received_ms=NOW)
    state.on_message("archmon/c/status", b'{"site": "c", "state": "offline"}', received_ms=NOW + 1)
    state.on_message("archmon/c/status/bus", b"online", received_ms=NOW)  # a source's own status: not the site's
    assert [(s.site, s.contact) for s in state.sites(NOW)] == [("a", "online"), ("b", "stale"), ("c", "offline")]
    assert [s.contact for s in state.sites(NOW + 29_000)][:1] == ["online"]
    assert [s.contact for s in state.sites(NOW + 31_000)][:1] == ["stale"]  # a goes silent too


def test_a_site_whose_clock_is_slow_or_fast_stays_online_while_it_publishes_and_its_offset_is_shown() -> None:
    state = CityState(stale_factor=3)
    for step in range(20):  # every 10 s for 200 s: one site 5 minutes slow, one 2 minutes fast, one exact
        now = NOW + step * 10_000
        state.on_message("archmon/slow/status", _status("slow", now - 300_000), received_ms=now)
        state.on_message("archmon/fast/status", _status("fast", now + 120_000), received_ms=now)
        state.on_message("archmon/good/status", _status("good", now - 40), received_ms=now)
        assert {s.site: s.contact for s in state.sites(now + 5_000)} == {"slow": "online", "fast": "online",
                                                                         "good": "online"}
    sites = {s.site: s for s in state.sites(NOW + 200_000)}
    assert {name: (s.clock_offset_ms, s.clock_off) for name, s in sites.items()} == {
        "slow": (-300_000, True), "fast": (120_000, True), "good": (-40, False)}
    assert sites["fast"].last_contact_ms == NOW + 190_000  # when it was heard, not its clock's future
    # a replay at the next connect is aged by its own time and keeps the offset learnt live
    state.on_message("archmon/slow/status", _status("slow", NOW + 190_000 - 300_000), received_ms=NOW + 400_000,
                     retained=True)
    slow = next(s for s in state.sites(NOW + 400_000) if s.site == "slow")
    assert (slow.contact, slow.clock_offset_ms) == ("stale", -300_000)


def test_site_names_never_share_a_topic_level_and_two_sites_on_one_level_are_warned_about(
        caplog: pytest.LogCaptureFixture) -> None:
    part = Partition()
    names = ["a/b", "a+b", "a#b", "a_b", "a%2Fb", "城东 档案馆"]
    levels = [alert_topic(name, part, 1).split("/")[1] for name in names]
    assert len(set(levels)) == len(names)
    assert levels[-1] == "城东 档案馆" and all("/" not in lv and "+" not in lv and "#" not in lv for lv in levels)
    state = CityState()
    for name in ("a/b", "a+b"):
        state.on_message(status_topic(name, part), _status(name, NOW), received_ms=NOW)
        state.on_message(alert_topic(name, part, 1), json.dumps({"site": name, "id": 1, "room": "paper",
                                                                 "state": "active", "active_ms": NOW}).encode())
    state.on_message(alert_topic("a+b", part, 1), b"")  # a+b closes its alert 1: a/b's stays open
    assert {s.site: [a.key for a in s.alerts] for s in state.sites(NOW)} == {"a+b": [], "a/b": ["1"]}
    assert state.collisions == 0
    # two sites left at one name: the central cannot tell them apart, and says so
    with caplog.at_level("WARNING", logger="dashboards.city"):
        state.on_message("archmon/archmon/status", _status("archmon", NOW), received_ms=NOW)
        state.on_message("archmon/archmon/status", _status("城西", NOW), received_ms=NOW)
    assert state.collisions == 1
    assert "both publish on archmon/archmon/" in caplog.text


def test_check_config_refuses_a_city_site_left_at_the_default_name(tmp_path: Path) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text('[city]\n[city.broker]\nport = 1883\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "archmon", "check-config", "--config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "site.name: a site publishing to the city" in done.stderr + done.stdout
    path.write_text('[site]\nname = "城东"\n[city]\n[city.broker]\nport = 1883\n',
                    encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "archmon", "check-config", "--config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert "site.name" not in done.stderr + done.stdout


@pytest.mark.mosquitto
def test_the_subscriber_takes_the_retain_flag_a_live_slow_clock_site_is_online_and_a_replay_is_aged(
        mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    from archmon.config import parse_config
    from dashboards.city import CitySubscriber

    config = parse_config({"site": {"name": "city"}, "central": {"broker": {"port": mosquitto.port}}})
    site = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="slow-site")
    site.connect("127.0.0.1", mosquitto.port)
    site.loop_start()
    subscriber = CitySubscriber(config)
    try:
        old = int(time.time() * 1000) - 600_000  # retained from a site 10 minutes ago
        site.publish("archmon/gone/status", _status("gone", old, interval=10), qos=1, retain=True).wait_for_publish(10)
        subscriber.start()
        wait_for(lambda: subscriber.connected and any(s.site == "gone" for s in subscriber.state.sites()),
                 "the retained status replayed")
        slow = lambda: _status("slow", int(time.time() * 1000) - 300_000, interval=10)  # noqa: E731
        site.publish("archmon/slow/status", slow(), qos=1, retain=True).wait_for_publish(10)
        wait_for(lambda: any(s.site == "slow" for s in subscriber.state.sites()), "the live status")
        sites = {s.site: s for s in subscriber.state.sites()}
        assert (sites["gone"].contact, sites["gone"].clock_offset_ms) == ("stale", None)
        assert sites["slow"].contact == "online"
        assert sites["slow"].clock_offset_ms is not None and -310_000 < sites["slow"].clock_offset_ms < -290_000
    finally:
        subscriber.stop()
        for topic in ("archmon/gone/status", "archmon/slow/status"):
            site.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        stop_network_loop(site)
        site.disconnect()


def test_alerts_follow_their_retained_state_and_a_reconnect_rebuilds_them() -> None:
    state = CityState()
    part = Partition()
    state.on_message(status_topic("城东 档案馆", part), _status("城东 档案馆", NOW), received_ms=NOW)
    topic = alert_topic("城东 档案馆", part, 7)
    state.on_message(topic, json.dumps({"site": "城东 档案馆", "id": 7, "room": "paper", "sensor": "th1",
                                        "rule": "band", "severity": "major", "state": "active",
                                        "active_ms": NOW}).encode())
    (site,) = state.sites(NOW)
    assert [(a.key, a.state) for a in site.alerts] == [("7", "active")] and site.compliance == "ok"
    state.on_message(topic, b"")  # closed: the site emptied its retained message
    assert state.sites(NOW)[0].alerts == ()
    state.on_message(topic.replace("/7", "/8"), b'{"site": "\\u57ce\\u4e1c \\u6863\\u6848\\u9986", "id": 8}')
    state.connected()  # a reconnect: the broker sends the retained ones again
    assert state.sites(NOW)[0].alerts == ()


def test_instances_of_a_split_site_are_one_site_as_reachable_as_the_least_reachable() -> None:
    state = CityState()
    for k, rooms in ((1, [{"room": "paper", "sensors": 3, "ok": 3, "compliance": "ok", "temperature": [18, 20]}]),
                     (2, [{"room": "paper", "sensors": 2, "ok": 1, "compliance": "warning", "temperature": [19, 23]},
                          {"room": "film", "sensors": 1, "ok": 1, "compliance": "ok"}])):
        state.on_message(status_topic("big", Partition(k, 2)), _status("big", NOW, instance=f"{k}/2", rooms=rooms),
                         received_ms=NOW)
    (site,) = state.sites(NOW)
    paper = next(r for r in site.rooms if r.room == "paper")
    assert (site.instances, paper.sensors, paper.ok, paper.compliance, paper.temperature) == (2, 5, 4, "warning",
                                                                                             (18.0, 23.0))
    assert site.compliance == "warning"
    state.on_message(status_topic("big", Partition(2, 2)), b'{"site": "big", "instance": "2/2", "state": "offline"}')
    assert state.sites(NOW)[0].contact == "offline"


# -- two sites and one central on loopback --------------------------------------------------------------------

PASSWORD = "central-admin-password-1"


def _site(folder: Path, name: str, broker: int, influx: str, rooms: dict[str, list[str]]) -> Path:
    folder.mkdir()
    sensors = "".join(f'[[sensors]]\nid = "{sensor}"\nroom = "{room}"\nsource = "b"\ntopic = "zigbee2mqtt/{sensor}"\n'
                      'format = "zigbee2mqtt"\n' for room, members in rooms.items() for sensor in members)
    rooms_toml = "".join(f'[[rooms]]\nid = "{room}"\nname_en = "Store {room}"\n'
                         'overrides = { temperature = { high = 24, delay_s = 0, clear_delay_s = 0 } }\n'
                         for room in rooms)
    path = folder / "archmon.toml"
    path.write_text(
        f'[site]\nname = "{name}"\n[service]\nstop_timeout_s = 10\n[http]\nenabled = false\n{rooms_toml}'
        f'[[mqtt]]\nid = "b"\nport = {broker}\nclient_id = "archmon-{name}"\nreconnect_max_s = 1\n{sensors}'
        f'[forward.influxdb]\nurl = "{influx}"\napi = "v1"\nretry_min_s = 0.1\nretry_max_s = 1\n'
        f'[city]\nstatus_interval_s = 1\n[city.broker]\nport = {broker}\nkeepalive_s = 5\n'
        '[alerts.calibration]\nuncalibrated = false\n', encoding="utf-8")  # only the alerts the test raises
    return path


def _central(folder: Path, broker: int, influx: str) -> Path:
    folder.mkdir()
    path = folder / "archmon.toml"
    path.write_text(f'[site]\nname = "city"\n[service]\nstop_timeout_s = 10\n'
                    f'[central]\nstale_factor = 3\n[central.broker]\nport = {broker}\n'
                    f'[central.influxdb]\nurl = "{influx}"\napi = "v1"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "archmon", "user", "add", "admin", "--role", "admin",
                           "--password-stdin", "--config", str(path)], input=PASSWORD + "\n", capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return path


def _reading(client: mqtt.Client, topic: str, value: float) -> None:
    payload = json.dumps({"temperature": value, "last_seen": int(time.time() * 1000)})
    client.publish(topic, payload, qos=1).wait_for_publish(10)


def _answers(web: httpx.Client) -> bool:
    try:
        return web.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.mosquitto
@pytest.mark.tsdb
@pytest.mark.slow
def test_a_central_archmon_shows_both_sites_their_rooms_new_alerts_and_a_site_out_of_contact(
        tmp_path: Path, mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    east = _site(tmp_path / "east", "城东", mosquitto.port, influx.url, {"paper": ["e1"], "film": ["e2"]})
    west = _site(tmp_path / "west", "west", mosquitto.port, influx.url, {"store": ["w1"]})
    port = free_port()
    central = _central(tmp_path / "central", mosquitto.port, influx.url)
    processes = {name: ArchmonProcess(path, path.parent / "run.log") for name, path in (("east", east), ("west", west))}
    processes["central"] = ArchmonProcess(central, central.parent / "run.log", http=f"127.0.0.1:{port}")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="devices")
    web = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        for name in ("east", "west"):
            processes[name].wait_log("mqtt[b]: subscribed", f"{name} subscribed")
        processes["central"].wait_log("central: subscribed", "the central subscribed")
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        for topic, value in (("zigbee2mqtt/e1", 20.5), ("zigbee2mqtt/e2", 19.0), ("zigbee2mqtt/w1", 21.0)):
            _reading(publisher, topic, value)
        wait_for(lambda: _answers(web), "the central dashboard")
        assert login(web, "admin", PASSWORD).status_code == 303

        def city() -> dict:
            answer = web.get("/api/city")
            assert answer.status_code == 200, answer.text
            return {site["site"]: site for site in answer.json()["sites"]}

        def rooms_with_series() -> dict[str, dict[str, float]]:
            return {name: {room["room"]: room["series"]["temperature"]["last"] for room in site["rooms"]
                           if "temperature" in room.get("series", {})} for name, site in city().items()}

        wait_for(lambda: rooms_with_series() == {"城东": {"paper": 20.5, "film": 19.0}, "west": {"store": 21.0}},
                 "both sites' rooms with their series from the central InfluxDB", 60)
        assert {name: site["contact"] for name, site in city().items()} == {"城东": "online", "west": "online"}

        raised = time.monotonic()
        _reading(publisher, "zigbee2mqtt/w1", 30.0)  # above the band: an alert at once (delay 0)
        wait_for(lambda: "band" in {a["rule"] for a in city()["west"]["alerts"]}, "west's new alert", 20)
        assert {a["sensor"] for a in city()["west"]["alerts"]} == {"w1"}
        alert_seconds = time.monotonic() - raised
        assert city()["west"]["compliance"] == "warning" and city()["城东"]["alerts"] == []
        page = web.get("/city")
        assert page.status_code == 200 and "城东" in page.text and "Store paper" in page.text
        assert 'data-alert="' in page.text

        processes["east"].signal(signal.SIGKILL)  # the site dies: the broker publishes its will
        processes["east"].wait(10)
        wait_for(lambda: city()["城东"]["contact"] == "offline", "east out of contact", 30)
        assert city()["west"]["contact"] == "online"
        assert 'data-contact="offline"' in web.get("/city").text
        for name in ("west", "central"):
            processes[name].signal(signal.SIGTERM)
        for name in ("west", "central"):
            assert processes[name].wait(30) == 0
    finally:
        web.close()
        stop_network_loop(publisher)
        publisher.disconnect()
        for process in processes.values():
            process.kill()
    print(f"a new alert reached the central overview in {alert_seconds:.1f} s")
