"""Hostile text stored everywhere a person can put it (config names, device topics, payloads, comments,
access sessions, query strings) and rendered by every page: it must come out escaped, so a future
``|safe`` or ``Markup`` on any of these fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.records import Batch, QuarantineRecord, UnassignedRecord
from tests.dashboards.site import CONFIG, Site, csrf_of, sensor_tables

X = "\"'><img src=x onerror=alert(1)><script>alert(2)</script>{{7*7}}"
RAW = ("<img src=x", "<script>alert", "onerror=alert(1)>")


def _unescaped(text: str) -> list[str]:
    return [marker for marker in RAW if marker in text]


@pytest.fixture
def hostile(tmp_path: Path) -> Site:
    config = (CONFIG.replace('name = "测试档案馆"', "name = " + json.dumps("site" + X))
              .replace('name_zh = "一号库房"', "name_zh = " + json.dumps("zh" + X))
              .replace('name_en = "Store 1"', "name_en = " + json.dumps("en" + X))
              .replace("{sensors}", sensor_tables()))
    config = config.replace('id = "T1"\n', 'id = "T1"\nname = ' + json.dumps("sn" + X) + "\n", 1)
    site = Site(tmp_path, config_text=config)
    yield site
    site.close()


def test_hostile_text_is_escaped_on_every_page_card_and_stream(hostile: Site) -> None:
    site = hostile
    site.history(2, 10)
    ts = now_ms()
    site.store.write_many([Batch(
        unassigned=[UnassignedRecord(ts, "broker", "zigbee2mqtt/" + X, "zigbee2mqtt", X.encode(),
                                     json.dumps({"readings": [{"q": X}]}))],
        quarantine=[QuarantineRecord(ts, "broker", "t/" + X, X.encode() + b"\xff\xfe", "reason" + X, "decode")])])
    site.store_readings([Reading("S1", "smoke", 1.0, now_ms(), "A1")])
    alert_id = site.alerts.store.alerts(active_only=True)[0]["id"]
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/").text)
        admin.post(f"/alerts/{alert_id}/ack", data={"comment": "c" + X, "csrf": token})
        opened = admin.post("/access/open", data={"room": "A1", "people": f"p1{X}\np2{X}", "purpose": "pu" + X,
                                                  "approval": "ap" + X, "csrf": token})
        assert opened.status_code == 303 and "done=open" in opened.headers["location"]
        stored = site.register.sessions(open_only=True)[0]
        assert stored.purpose == "pu" + X  # stored as given (escaping is the page's job)
        admin.post("/users", data={"name": "u", "role": "viewer", "password": "0123456789ab",
                                   "password2": "0123456789ab", "csrf": token})
        pages = ["/", "/?compact=1", f"/?q={X}", "/rooms/A1", "/rooms/A1?range=1y", "/alerts", "/alerts?state=all",
                 f"/alerts/{alert_id}", "/sensors", "/access", "/users", f"/access?error={X}&e_room={X}",
                 f"/alerts/{alert_id}?error=ack_unknown&e_id={X}", f"/sensors?error={X}&adopted={X}",
                 f"/users?error=user_exists&e_name={X}", f"/access?done={X}", f"/rooms/{X}", f"/alerts/{alert_id}0"]
        for path in pages:
            response = admin.get(path)
            assert response.status_code in (200, 404), path
            assert not _unescaped(response.text), path
        assert "site" in admin.get("/").text and "p1" in admin.get("/access").text  # the text is there, escaped
        for path in ("/api/rooms", "/api/alerts?state=all", "/api/access", "/api/latest", "/api/rooms/A1/series"):
            response = admin.get(path)
            assert response.headers["content-type"].startswith("application/json"), path
        with admin.stream("GET", "/events") as stream:  # the live cards are rendered by the same template
            site.app.state.live.publish({"A1"})
            for line in stream.iter_lines():
                if line.startswith("data:") and '"room"' in line:
                    html = json.loads(line[5:])["html"]
                    assert "p1" in html and not _unescaped(html)
                    break
    with site.client() as anon:
        assert not _unescaped(anon.get(f"/login?next={X}").text)
        refused = anon.post("/login", data={"name": X[:60], "password": "x", "csrf": csrf_of(anon.get("/login").text)})
        assert refused.status_code == 401 and not _unescaped(refused.text)
