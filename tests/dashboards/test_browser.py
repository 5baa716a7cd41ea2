"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against the app on
loopback. Also takes the screenshots (overview, room, alerts; zh and en; 1366×768 and 390×844): into
docs/screenshots/ with ``ARCHMON_SCREENSHOTS=1``, else into a temporary folder (a test run leaves the
developer's tree clean)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.dashboards.site import CONFIG, PASSWORDS, Site, sensor_tables

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DOC_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 20_000

def _missing(what: str) -> None:
    """Skip on a developer's machine; FAIL in CI (``$CI`` set, as ``.ci/run`` does): bootstrap installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set: scripts/bootstrap.sh test installs it)", pytrace=False)
    pytest.skip(what)


try:
    import playwright.sync_api as playwright_api
except ImportError:
    playwright_api = None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if playwright_api is None:
        _missing("playwright missing: pip install playwright")
    if shutil.which(CHROMIUM) is None:
        _missing(f"{CHROMIUM} missing: apt-get install chromium fonts-noto-cjk")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: docs/screenshots/ when asked for (``ARCHMON_SCREENSHOTS=1``), else a temp folder."""
    if os.environ.get("ARCHMON_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        return DOC_SHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def live_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # no grace for the session: a door opening is judged at the next tick (the service ticks every second)
    text = CONFIG.replace("{sensors}", sensor_tables()) + "\n[alerts.access]\ngrace_s = 0\n"
    site = Site(tmp_path_factory.mktemp("web"), config_text=text)
    site.history(48, 10)
    try:
        yield site
    finally:
        site.close()


def _login(browser: object, site: Site, user: str, *, width: int = 1366, height: int = 768) -> object:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site.url + "/")
    assert "/login" in page.url  # every page asks for a login first
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_selector("#rooms")
    return page


def test_the_overview_updates_live_when_a_reading_is_stored(browser: object, live_site: Site) -> None:
    page = _login(browser, live_site, "viewer")
    page.wait_for_selector("body[data-live=on]", state="attached")
    assert "18.8" not in page.inner_text("#room-B1")
    live_site.store_readings([Reading("T3", "temperature", 18.8, now_ms(), "B1")])
    page.wait_for_selector("#room-B1 .q[data-quantity=temperature] .qv:has-text('18.8')")
    live_site.store_readings([Reading("T3", "temperature", 23.4, now_ms(), "B1")])  # above 特藏库's 20 ℃
    page.wait_for_selector("#room-B1[data-status=alarm]")
    assert "偏高" in page.inner_text("#room-B1")
    page.context.close()


def test_an_unregistered_door_opening_raises_an_alert_an_operator_acknowledges(browser: object,
                                                                               live_site: Site) -> None:
    page = _login(browser, live_site, "oper")
    page.wait_for_selector("body[data-live=on]", state="attached")
    live_site.store_readings([Reading("D2", "door", 1.0, now_ms(), "A2")])
    live_site.alerts.tick()
    page.wait_for_selector("#room-A2 .card-alerts >> text=未登记进入库房")
    page.click("#room-A2 .card-alerts a:has-text('未登记进入库房')")
    page.fill("textarea[name=comment]", "值班员核实：保洁人员误开，已关门")
    page.click("#ack-button")
    page.wait_for_selector(".notice")
    assert "已确认" in page.inner_text(".facts")
    assert "值班员核实" in page.inner_text(".comments")
    live_site.store_readings([Reading("D2", "door", 0.0, now_ms(), "A2")])
    page.context.close()


def test_an_access_session_is_opened_and_then_the_door_raises_nothing(browser: object, live_site: Site) -> None:
    page = _login(browser, live_site, "oper")
    page.click("nav >> text=出入登记")
    page.select_option("#access-open select[name=room]", "A1")
    page.fill("#access-open textarea[name=people]", "张三\n李四")
    page.fill("#access-open input[name=purpose]", "干部档案查阅")
    page.fill("#access-open input[name=approval]", "组审-2024-031")
    page.click("#access-open button[type=submit]")
    page.wait_for_selector(".notice")
    assert "张三、李四" in page.inner_text(".sessions")
    before = {a["id"] for a in live_site.alerts.store.alerts() if a["rule"] == "unregistered_entry"}
    live_site.store_readings([Reading("D1", "door", 1.0, now_ms(), "A1")])
    live_site.alerts.tick()  # judged: registered
    rule = next(r for r in live_site.alerts.engine.rules if r.name == "unregistered_entry")
    assert rule.snapshot()["waiting"] == [] and rule.snapshot()["judged"]["D1"] > 0
    after = {a["id"] for a in live_site.alerts.store.alerts() if a["rule"] == "unregistered_entry"}
    assert after == before
    page.goto(live_site.url + "/")
    assert "登记进入: 张三、李四" in page.inner_text("#room-A1")
    page.context.close()


def test_switching_language_keeps_the_page_and_the_choice(browser: object, live_site: Site) -> None:
    page = _login(browser, live_site, "admin")
    page.click("nav >> text=告警")
    page.click("#switch-language")
    page.wait_for_selector("h1:has-text('Alerts')")
    assert page.url.endswith("/alerts")
    page.goto(live_site.url + "/")
    assert "All stores" in page.inner_text("h1")
    page.click("#switch-language")
    page.wait_for_selector("h1:has-text('库房总览')")
    page.context.close()


def _scene(site: Site) -> None:
    """What the screenshots show whatever ran before: a room above its band, an unregistered entry,
    a registered one."""
    now = now_ms()
    site.store_readings([Reading("T3", "temperature", 23.4, now, "B1")])
    if not site.register.sessions(room="A1", open_only=True):
        site.register.open_session("A1", ["张三", "李四"], "干部档案查阅", "组审-2024-031", "oper")
    if not any(a["rule"] == "unregistered_entry" for a in site.alerts.store.alerts()):
        site.store_readings([Reading("D2", "door", 1.0, now - 120_000, "A2")])
        site.store_readings([Reading("D2", "door", 0.0, now - 60_000, "A2")])
        site.alerts.tick()


@pytest.mark.parametrize("width,height", [(1366, 768), (390, 844)])
def test_screenshots(browser: object, live_site: Site, shots: Path, width: int, height: int) -> None:
    _scene(live_site)
    page = _login(browser, live_site, "admin", width=width, height=height)
    for lang in ("zh", "en"):
        if page.get_attribute("body", "data-lang") != lang:
            page.click("#switch-language")
            page.wait_for_selector(f"body[data-lang={lang}]")
        for name, path in (("overview", "/"), ("room", "/rooms/A1"), ("alerts", "/alerts?state=all")):
            page.goto(live_site.url + path)
            if name == "room":
                page.wait_for_selector(".chart[data-drawn='1']")
                assert int(page.get_attribute(".chart[data-quantity=temperature]", "data-points")) <= 3 * 2000
            page.screenshot(path=str(shots / f"{name}-{lang}-{width}x{height}.png"))
            assert (shots / f"{name}-{lang}-{width}x{height}.png").stat().st_size > 10_000
    page.context.close()
