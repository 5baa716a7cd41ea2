"""The Grafana board (``dashboards/grafana/``): its JSON and provisioning files are checked for what Grafana
needs, and every query it holds runs against a real InfluxDB 1.6 holding readings forwarded by archmon's own
outbox, with Grafana's template variables substituted as Grafana does; each answer is compared with what the
sites stored.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerts.profiles import load_profile
from archmon.domain import Reading
from archmon.forward_config import InfluxForwardConfig
from collector.forward import Forwarder, InfluxClient, Outbox, OutboxLimits
from collector.records import Batch
from collector.store import SqliteStore
from tests.fixtures.tsdb import InfluxServer
from tests.fixtures.waiting import wait_for

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
TZ = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000
STEP = 600_000  # one reading per sensor every 10 minutes
DAYS = 3
SITES = ("城东 档案馆", "west")  # CJK and a space inside a regex, and a second site the filter must leave out
SENSORS = {"th0": "paper", "th1": "film", "th2": "paper", "th3": "film"}
DOORS = {"d0": "paper", "d1": "film"}
BUILTINS = {"timeFilter", "__interval"}
PANEL_TYPES = {"row", "stat", "timeseries", "state-timeline"}


class Dashboard(NamedTuple):
    """The board and the data source the provisioning file defines."""

    board: dict[str, Any]
    datasource: dict[str, Any]
    provider: dict[str, Any]


def _load() -> Dashboard:
    board = json.loads((GRAFANA / "archmon.json").read_text(encoding="utf-8"))
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "archmon.yaml").read_text(encoding="utf-8"))
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "archmon.yaml").read_text(encoding="utf-8"))
    return Dashboard(board, sources["datasources"][0], providers["providers"][0])


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def _by_title(board: dict[str, Any], english: str) -> dict[str, Any]:
    return next(p for p in board["panels"] if p["title"].endswith("/ " + english))


def test_board_and_provisioning_have_what_grafana_needs() -> None:
    board, source, provider = _load()
    assert source["type"] == "influxdb" and source["access"] == "proxy"
    assert source["jsonData"]["dbName"] == InfluxForwardConfig(url="http://x").database  # what the sites write
    assert "${" in source["url"] and "${" in source["secureJsonData"]["password"]  # no address or secret in it
    assert provider["type"] == "file" and provider["options"]["path"]
    ref = {"type": "influxdb", "uid": source["uid"]}
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"site", "room", "tz"} <= set(variables)
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == ref and variable["query"].startswith("SHOW TAG VALUES")
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in _panels(board):
        assert panel["datasource"] == ref and panel["targets"], f"{panel['title']}: no query"
        assert "/" in panel["title"], f"{panel['title']}: titles are Chinese / English"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"] == ref and target["rawQuery"] is True and target["query"].strip()
            assert "$timeFilter" in target["query"], f"{panel['title']}: not bound to the dashboard's time range"
            used = set(re.findall(r"\$(\w+)", target["query"]))
            assert used <= set(variables) | BUILTINS, f"{panel['title']}: unknown variables {used - set(variables)}"


def test_bands_drawn_are_the_default_profiles() -> None:
    board = _load().board
    paper = load_profile("paper")
    for quantity, titles in (("temperature", ("Temperature now", "Temperature")),
                             ("humidity", ("Humidity now", "Relative humidity"))):
        band = paper.band(quantity)
        assert band is not None
        for title in titles:
            steps = _by_title(board, title)["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert [(s["color"], s["value"]) for s in steps] == [("red", None), ("green", band.low),
                                                                 ("red", band.high)], title
        daily = _by_title(board, f"Daily {quantity} range")["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert daily[-1]["value"] == paper.stability.limit(quantity)


# -- every query against InfluxDB 1.6 ----------------------------------------------------------------------------

class Forwarded(NamedTuple):
    """What the sites stored (and forwarded) and the range covering it."""

    readings: dict[str, list[Reading]]  # by site
    start_ms: int
    end_ms: int


def _site_readings(site_index: int, base: int) -> list[Reading]:
    out = []
    for step in range(DAYS * 24 * 6):
        for index, (sensor, room) in enumerate(SENSORS.items()):
            ts = base + step * STEP + index * 1000  # sensors of one room never share a timestamp: last() is one
            value = round(18 + site_index + index / 10 + (step % 37) / 10, 2)
            out.append(Reading(sensor, "temperature", value, ts, room=room))
            out.append(Reading(sensor, "humidity", round(value * 2.5, 2), ts, room=room))
        for index, (sensor, room) in enumerate(DOORS.items()):
            out.append(Reading(sensor, "door", float((step // (6 + index)) % 2), base + step * STEP + 5000 + index,
                               room=room))
    return out


@pytest.fixture
def forwarded(tmp_path: Path, influx: InfluxServer) -> Iterator[Forwarded]:
    """Both sites' readings written to their SQLite stores and forwarded by the outbox to ``influx``."""
    base = (int(datetime.now(TZ).timestamp() * 1000) // HOUR - DAYS * 24 - 1) * HOUR
    target = InfluxForwardConfig(url=influx.url, api="v1", batch_size=5000, timeout_s=10)
    stored: dict[str, list[Reading]] = {}
    for index, site in enumerate(SITES):
        store = SqliteStore(tmp_path / f"site{index}.db", tz=TZ)
        outbox = Outbox(store.path, site=site, limits=OutboxLimits(10**6, 10**9, 10**5, 10**8)).open()
        store.add_write_hook(outbox.enqueue)
        client = InfluxClient(target)
        forwarder = Forwarder(outbox, lambda c=client: c, raw=store.readings, batch_size=target.batch_size,
                              retry_min_s=0.05, retry_max_s=0.5)
        forwarder.start()
        try:
            items = stored[site] = _site_readings(index, base)
            for start in range(0, len(items), 2000):
                store.write_many([Batch(readings=items[start:start + 2000])])
                forwarder.wake()
            wait_for(lambda o=outbox: o.totals().rows == 0, f"{site}: the outbox to drain", 60)
            assert outbox.totals().forwarded == len(items)
        finally:
            forwarder.stop(10)
            outbox.close()
            store.close()
            client.close()
    yield Forwarded(stored, base, base + DAYS * 24 * HOUR)


def _regex(values: list[str]) -> str:
    """A multi-value variable inside ``/^$var$/``, as Grafana writes it: ``(a|b)``, each value escaped."""
    escaped = [re.sub(r"([\\^$*+?.()|{}\[\]/])", r"\\\1", value) for value in values]
    return "(" + "|".join(escaped) + ")" if len(escaped) > 1 else escaped[0]


def _substitute(query: str, values: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], query)


def _tag_values(influx: InfluxServer, query: str) -> list[str]:
    answer = influx.query(query)["results"][0]
    return sorted(value for series in answer.get("series", []) for _key, value in series["values"])


def _series(influx: InfluxServer, query: str) -> dict[tuple[str, ...], list[list[Any]]]:
    """Each answer series by its tag values (site, room[, sensor]); the rows."""
    result = influx.query(query)["results"][0]
    assert "error" not in result, f"{query}: {result['error']}"
    return {tuple(series.get("tags", {}).values()): series["values"] for series in result.get("series", [])}


def test_every_query_returns_the_series_the_sites_forwarded(influx: InfluxServer, forwarded: Forwarded) -> None:
    board = _load().board
    site = SITES[0]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert _tag_values(influx, variables["site"]["query"]) == sorted(SITES)
    rooms = _tag_values(influx, _substitute(variables["room"]["query"], {"site": _regex([site])}))
    assert rooms == sorted(set(SENSORS.values()))
    values = {"site": _regex([site]), "room": _regex(rooms), "tz": "Asia/Shanghai", "__interval": "10m",
              "timeFilter": f"time >= {forwarded.start_ms}ms and time <= {forwarded.end_ms}ms"}
    mine = forwarded.readings[site]
    queries = {p["title"].split("/ ")[-1]: _substitute(p["targets"][0]["query"], values) for p in _panels(board)}
    assert sum(len(p["targets"]) for p in _panels(board)) == len(queries) == 8  # every query is checked below

    for quantity, title in (("temperature", "Temperature"), ("humidity", "Relative humidity")):
        expected = defaultdict(list)
        for r in mine:
            if r.quantity == quantity:  # one reading per sensor in each 10-minute window: its mean is itself
                expected[(r.room, r.sensor, site)].append([r.ts_ms // STEP * STEP, r.value])
        assert _series(influx, queries[title]) == expected, title

        last: dict[tuple[str, str], Reading] = {}
        for r in sorted((r for r in mine if r.quantity == quantity), key=lambda r: r.ts_ms):
            last[(r.room, site)] = r
        now = _series(influx, queries[title.replace("Relative humidity", "Humidity") + " now"])
        assert {tags: rows[0][1] for tags, rows in now.items()} == {k: r.value for k, r in last.items()}

        days: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in mine:
            if r.quantity == quantity:
                midnight = datetime.fromtimestamp(r.ts_ms / 1000, TZ).replace(hour=0, minute=0, second=0,
                                                                               microsecond=0)
                days[(r.room, r.sensor, site)][int(midnight.timestamp() * 1000)].append(r.value)
        spread = {key: [[day, max(v) - min(v)] for day, v in sorted(by_day.items())] for key, by_day in days.items()}
        assert _series(influx, queries[f"Daily {quantity} range"]) == spread

    doors = defaultdict(list)
    for r in mine:
        if r.quantity == "door":
            doors[(r.room, r.sensor, site)].append([r.ts_ms, r.value])
    assert _series(influx, queries["Door events"]) == doors
    open_now = sum(rows[-1][1] for rows in doors.values())
    assert _series(influx, queries["Doors open now"]) == {(): [[0, open_now]]}

    # the site filter leaves the other site out; "All" rooms of both sites is every sensor of both
    both = {**values, "site": _regex(list(SITES))}
    assert {tags[2] for tags in _series(influx, _substitute(
        _by_title(board, "Temperature")["targets"][0]["query"], both))} == set(SITES)
