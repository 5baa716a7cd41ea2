"""``archmon run --http HOST:PORT`` serves the web dashboard beside the collector (a separate process on a
real Mosquitto, real HTTP on loopback); an address that is taken is one error in the log, collection goes on
and ``archmon status`` says the dashboard is not served; an adoption's reload goes through Service.reload."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from archmon.app import Service
from archmon.config import load_config
from archmon.paho import stop_network_loop
from tests.archmon.operations import ROOT, publisher, running
from tests.archmon.sites import line_site, service_audit
from tests.archmon.test_operations import site, stored
from tests.fixtures.mosquitto import MosquittoBroker, free_port
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.mosquitto


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8")


def _status(config: Path) -> str:
    run = subprocess.run([sys.executable, "-m", "archmon", "status", "--config", str(config)], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _send(port: int, db: Path, value: float) -> None:
    pub = publisher(port, "run-dashboard-pub")
    try:
        pub.publish("zigbee2mqtt/th", json.dumps({"temperature": value}), qos=1).wait_for_publish(10)
        wait_for(lambda: value in [v for _, v in stored(db, "th", "temperature")], "the reading stored")
    finally:
        stop_network_loop(pub)
        pub.disconnect()


def test_archmon_run_serves_the_dashboard(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    config.write_text(site(mosquitto.port, high=65), encoding="utf-8")
    port = free_port()
    with running(config, tmp_path / "archmon.log", http=f"127.0.0.1:{port}") as archmon:
        archmon.wait_log(f"dashboard on http://127.0.0.1:{port}", "the dashboard")
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, '{"ok":true}')
        code, page = _get(f"http://127.0.0.1:{port}/login")
        assert code == 200 and 'name="password"' in page and 'type="password"' in page
        _send(mosquitto.port, db, 21.5)
        wait_for(lambda: "dashboard on port" in _status(config), "the dashboard in status")
        assert f"dashboard on port {port}" in _status(config)
        archmon.signal(signal.SIGTERM)
        assert archmon.wait(30) == 0
        log = archmon.log()
    assert log.index("stopping within") < log.index("archmon stopped in")
    with pytest.raises(OSError):  # stopped with the rest
        _get(f"http://127.0.0.1:{port}/healthz")


def test_a_taken_address_is_one_error_and_collection_goes_on(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    config.write_text(site(mosquitto.port, high=65), encoding="utf-8")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with running(config, tmp_path / "archmon.log", http=f"127.0.0.1:{port}") as archmon:
            archmon.wait_log(f"dashboard NOT served: 127.0.0.1:{port} cannot be used", "the error")
            archmon.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
            _send(mosquitto.port, db, 22.5)  # collecting regardless
            wait_for(lambda: "dashboard NOT SERVED" in _status(config), "status saying so")
            archmon.signal(signal.SIGTERM)
            assert archmon.wait(30) == 0
            log = archmon.log()
    finally:
        taken.close()
    assert "every accepted reading is stored" in log
    assert log.count("dashboard NOT served") == 1


def test_an_adoption_reloads_through_the_service_and_a_refusal_undoes_it(tmp_path: Path) -> None:
    path = line_site(tmp_path)
    service = Service(load_config(path))
    service.start()
    try:
        dashboard = service.serve_dashboard("127.0.0.1:0")
        assert dashboard is not None and _get(dashboard.url + "/healthz")[0] == 200
        ctx = dashboard.ctx
        text = path.read_text(encoding="utf-8")
        path.write_text(text + '[[sensors]]\nid = "t9"\nroom = "paper"\nsource = "bus"\n', encoding="utf-8")
        ctx.reload(load_config(path))  # what the adoption calls once it wrote the file
        assert "t9" in {s.id for s in service.config.sensors}
        assert "t9" in {s.id for s in ctx.config.sensors}  # the dashboard follows the configuration in force
        path.write_text(text + "[storag]\n", encoding="utf-8")
        with pytest.raises(RuntimeError, match="storag"):  # the adoption puts the file back
            ctx.reload(service.config)  # (the callback reads the file, as SIGHUP does)
        wait_for(lambda: service.audit.pending() == 0, "the audit entries")
    finally:
        service.stop()
    assert [e["event"] for e in service_audit(service.db_path)] == ["reload", "reload_refused"]
