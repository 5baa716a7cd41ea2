"""Security of the dashboard against the real app on loopback: login everywhere, CSRF, roles, rate limits,
headers, cookies, audit."""

from __future__ import annotations

import re
import sqlite3

import httpx
from starlette.routing import Mount, Route

from alerts.audit import verify_audit
from archmon.domain import Reading
from archmon.timeutil import now_ms
from dashboards.web.app import routes
from dashboards.web.security import PUBLIC_PATHS
from tests.dashboards.site import CONFIG, PASSWORDS, Site, csrf_of, login, sensor_tables


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "1" if m.group(2) == ":int" else "A1", path)


def test_every_route_but_healthz_and_login_needs_a_login(site: Site) -> None:
    assert {"/healthz", "/login"} == PUBLIC_PATHS
    checked = 0
    with site.client() as anon:
        for route in routes():
            if isinstance(route, Mount):  # static files: the vendored library and the style sheet only
                assert route.path == "/static"
                continue
            assert isinstance(route, Route)
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD" or route.path in PUBLIC_PATHS:
                    continue
                response = anon.request(method, _concrete(route.path))
                if route.path.startswith(("/api", "/events")):
                    assert response.status_code == 401, (method, route.path)
                else:
                    assert response.status_code == 303, (method, route.path)
                    assert response.headers["location"].startswith("/login?next=")
                checked += 1
        assert anon.get("/healthz").json() == {"ok": True}
    assert checked >= 25


def test_an_api_token_reaches_the_api_without_a_cookie_and_a_wrong_one_does_not(site: Site) -> None:
    token = site.ctx.users.create_token("viewer", "script", by="test")
    with httpx.Client(base_url=site.url) as client:
        assert client.get("/api/rooms", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/api/rooms", headers={"Authorization": "Bearer am_wrong"}).status_code == 401


def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    with site.client("oper") as client:
        page = client.get("/access")
        good = csrf_of(page.text)
        form = {"room": "A1", "people": "甲\n乙", "purpose": "查阅", "approval": "A-1"}
        assert client.post("/access/open", data=form).status_code == 403
        assert client.post("/access/open", data={**form, "csrf": "forged"}).status_code == 403
        assert client.post("/api/access", json={**form, "people": ["甲", "乙"]}).status_code == 403
        cross = client.post("/access/open", data={**form, "csrf": good}, headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
        assert site.register.sessions() == []
        assert client.post("/access/open", data={**form, "csrf": good}).status_code == 303
        assert len(site.register.sessions(open_only=True)) == 1
    with site.client() as anon:  # the login form itself needs its double-submit token
        anon.get("/login")
        refused = anon.post("/login", data={"name": "admin", "password": PASSWORDS["admin"]})
        assert refused.status_code == 403


def _active_alert(site: Site) -> int:
    site.store_readings([Reading("S1", "smoke", 1.0, now_ms(), "A1")])
    alerts = site.alerts.store.alerts(active_only=True)
    return next(a["id"] for a in alerts if a["rule"] == "smoke")


def test_a_viewer_cannot_acknowledge_but_an_operator_can(site: Site) -> None:
    alert_id = _active_alert(site)
    with site.client("viewer") as viewer:
        page = viewer.get(f"/alerts/{alert_id}")
        assert "ack-button" not in page.text
        refused = viewer.post(f"/alerts/{alert_id}/ack", data={"comment": "x", "csrf": csrf_of(page.text)})
        assert refused.status_code == 403
        api = viewer.post(f"/api/alerts/{alert_id}/ack", json={"comment": "x"},
                          headers={"X-CSRF-Token": csrf_of(page.text)})
        assert api.status_code == 403
    assert site.alerts.store.alert(alert_id)["state"] == "active"
    with site.client("oper") as oper:
        page = oper.get(f"/alerts/{alert_id}")
        done = oper.post(f"/alerts/{alert_id}/ack", data={"comment": "烟感误报，已检查", "csrf": csrf_of(page.text)})
        assert done.status_code == 303
    alert = site.alerts.store.alert(alert_id)
    assert (alert["state"], alert["acked_by"]) == ("acknowledged", "oper")
    assert site.alerts.store.comments(alert_id)[-1]["comment"] == "烟感误报，已检查"


def test_wrong_passwords_are_rate_limited_per_account_and_audited(site: Site) -> None:
    with site.client() as anon:
        statuses = [login(anon, "oper", f"wrong-{i}").status_code for i in range(6)]
        assert statuses == [401] * 5 + [429]
        blocked = login(anon, "oper", PASSWORDS["oper"])  # even the right password waits
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert login(anon, "viewer", PASSWORDS["viewer"]).status_code == 303  # other accounts are not locked
    conn = sqlite3.connect(site.db)
    kinds = [k for (k,) in conn.execute("SELECT kind FROM audit_log WHERE subject = 'user:oper' ORDER BY seq")]
    conn.close()
    # one row for the first refusal of the account's limit in this window (the second is counted, not written)
    assert kinds.count("login_failed") == 5 and kinds.count("login_blocked") == 1


def test_session_cookie_flags_security_headers_and_no_open_redirect(site: Site) -> None:
    with site.client() as anon:
        page = anon.get("/login?next=//evil.example/x")
        assert 'value="/"' in page.text  # the next target was dropped
        response = anon.post("/login", data={"name": "admin", "password": PASSWORDS["admin"],
                                             "csrf": csrf_of(page.text), "next": "https://evil.example/"})
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "archmon_session" in v)
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        overview = anon.get("/")
        csp = overview.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert overview.headers["x-frame-options"] == "DENY"
        assert "<script>" not in overview.text and " on" + "click=" not in overview.text


def test_logout_and_disabling_a_user_end_their_sessions(site: Site) -> None:
    with site.client("viewer") as viewer, site.client("admin") as admin:
        assert viewer.get("/").status_code == 200
        page = admin.get("/users")
        assert admin.post("/users/viewer/disable", data={"csrf": csrf_of(page.text)}).status_code == 303
        assert viewer.get("/").status_code == 303
        assert login(viewer, "viewer", PASSWORDS["viewer"]).status_code == 401
        page = admin.get("/")
        admin.post("/logout", data={"csrf": csrf_of(page.text)})
        assert admin.get("/").status_code == 303


def test_the_audit_chain_verifies_after_a_session_of_ui_actions(site: Site) -> None:
    alert_id = _active_alert(site)
    with site.client() as anon:
        login(anon, "admin", "not-the-password")
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/").text)
        admin.post(f"/alerts/{alert_id}/ack", data={"comment": "checked", "csrf": token})
        admin.post("/access/open", data={"room": "A2", "people": "甲, 乙", "purpose": "p", "approval": "n",
                                         "csrf": token})
        session = site.register.sessions(open_only=True)[0]
        admin.post(f"/access/{session.id}/close", data={"note": "", "csrf": token})
        admin.post("/users", data={"name": "new", "role": "viewer", "password": "a-long-password",
                                   "password2": "a-long-password", "csrf": token, "language": "en"})
        admin.post("/users/new/password", data={"password": "another-password", "password2": "another-password",
                                                "csrf": token})
        admin.post("/account/language", data={"language": "en", "csrf": token, "next": "/"})
    conn = sqlite3.connect(site.db)
    kinds = {k for (k,) in conn.execute("SELECT kind FROM audit_log")}
    verdict = verify_audit(conn)
    conn.close()
    assert {"login", "login_failed", "ack", "access_open", "access_close", "user_add", "user_password",
            "user_language", "transition"} <= kinds
    assert verdict.ok, str(verdict)


def test_over_tls_cookies_are_secure_and_hsts_is_sent(tmp_path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from archmon.config import load_config
    from dashboards.web import build_app, serve

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    site = Site(tmp_path)  # creates the database and the users
    try:
        text = site.config_path.read_text(encoding="utf-8")
        site.config_path.write_text(text + '\n[http]\nport = 0\ntls_cert = "c.pem"\ntls_key = "k.pem"\n',
                                    encoding="utf-8")
        config = load_config(site.config_path)
        app = build_app(config, hub=None, db_path=site.db)
        server = serve(app, config)
        try:
            assert server.url.startswith("https://127.0.0.1:")
            with httpx.Client(base_url=server.url, verify=False) as client:
                page = client.get("/login")
                assert page.headers["strict-transport-security"].startswith("max-age=")
                done = client.post("/login", data={"name": "admin", "password": PASSWORDS["admin"],
                                                   "csrf": csrf_of(page.text), "next": "/"})
                cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and "session" in v)
                assert cookie.startswith("__Host-archmon_session=") and "Secure" in cookie
        finally:
            server.stop()
            app.state.ctx.close()
    finally:
        site.close()


# -- login limits under concurrency and behind proxies ---------------------------------------------
def _audit(site: Site, kind: str) -> list[tuple[str, dict]]:
    import json

    conn = sqlite3.connect(site.db)
    try:
        rows = conn.execute("SELECT subject, payload FROM audit_log WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    finally:
        conn.close()
    return [(subject, json.loads(payload)) for subject, payload in rows]


def _burst(site: Site, count: int, *, name=lambda i: "oper", headers=lambda i: {}) -> list[int]:  # type: ignore[no-untyped-def]
    """``count`` wrong-password logins sent at once."""
    import asyncio

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=site.url, timeout=120) as client:
            token = csrf_of((await client.get("/login")).text)

            async def one(i: int) -> int:
                response = await client.post("/login", headers=headers(i), data={
                    "name": name(i), "password": f"wrong-{i}", "csrf": token})
                return response.status_code

            return list(await asyncio.gather(*(one(i) for i in range(count))))

    return asyncio.run(run())


def test_concurrent_wrong_passwords_get_no_more_guesses_than_the_limit(site: Site) -> None:
    codes = _burst(site, 60)
    assert codes.count(401) == 5 and codes.count(429) == 55  # was 51 guesses: the check ran before the count
    assert len(_audit(site, "login_failed")) == 5
    with site.client() as anon:
        assert login(anon, "oper", PASSWORDS["oper"]).status_code == 429
        assert login(anon, "admin", PASSWORDS["admin"]).status_code == 303  # a success gives its reservation back


def test_a_flood_of_blocked_logins_writes_one_audit_row_per_limit_and_window_and_the_count(tmp_path) -> None:
    site = Site(tmp_path)
    try:
        codes = _burst(site, 200)
        assert codes.count(401) == 5 and codes.count(429) == 195
        blocked = _audit(site, "login_blocked")
        assert len(blocked) == 1
        assert blocked[0][1]["limit"] == "account:oper" and blocked[0][1]["refused"] == 1
    finally:
        site.close()
    # the refusals after the first are written at shutdown, counted: none is lost, none floods the log
    summary = _audit(site, "login_blocked")
    assert len(summary) == 2 and summary[1] == ("user:oper", {"limit": "account:oper", "refused": 194})
    conn = sqlite3.connect(site.db)
    try:
        assert verify_audit(conn).ok
    finally:
        conn.close()


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path) -> None:
    rotating = {"headers": lambda i: {"X-Forwarded-For": f"10.0.{i}.1"}, "name": lambda i: f"user{i}"}
    (tmp_path / "plain").mkdir()
    site = Site(tmp_path / "plain")
    try:  # from loopback, with a new forwarded address each time: still one address, limited at 20
        codes = _burst(site, 30, **rotating)
        assert codes.count(401) == 20 and codes.count(429) == 10
        assert {p["address"] for _, p in _audit(site, "login_failed")} == {"127.0.0.1"}
    finally:
        site.close()
    (tmp_path / "proxied").mkdir()
    site = Site(tmp_path / "proxied", trusted_proxies=["127.0.0.1"])
    try:  # behind a configured proxy the client's own address counts
        codes = _burst(site, 30, **rotating)
        assert codes.count(401) == 30
        assert {p["address"] for _, p in _audit(site, "login_failed")} == {f"10.0.{i}.1" for i in range(30)}
    finally:
        site.close()


def test_behind_a_proxy_that_rewrites_host_the_public_url_is_the_origin(tmp_path) -> None:
    text = CONFIG.replace("{sensors}", sensor_tables()) + '\n[http]\npublic_url = "https://Archive.example.org/"\n'
    site = Site(tmp_path, config_text=text)
    try:
        assert site.config.http.public_url == "https://archive.example.org"
        with site.client("oper") as client:
            token = csrf_of(client.get("/access").text)
            form = {"room": "A1", "people": "甲\n乙", "purpose": "查阅", "approval": "A-1", "csrf": token}
            evil = client.post("/access/open", data=form, headers={"Origin": "https://evil.example"})
            assert evil.status_code == 403 and "拒绝来自其他网站的请求" in evil.text
            # nginx passes Host: 127.0.0.1:PORT; the browser's Origin is the public one
            done = client.post("/access/open", data=form, headers={"Origin": "https://archive.example.org"})
            assert done.status_code == 303 and len(site.register.sessions(open_only=True)) == 1
    finally:
        site.close()


def test_refusals_are_in_the_readers_language(site: Site) -> None:
    with site.client("viewer") as viewer:
        token = csrf_of(viewer.get("/").text)
        page = viewer.post("/access/open", data={"room": "A1", "csrf": token})
        assert page.status_code == 403 and "此操作需要值班员（operator）权限" in page.text
        api = viewer.post("/api/access", json={}, headers={"X-CSRF-Token": token})
        assert api.json() == {"error": "此操作需要值班员（operator）权限", "code": "forbidden_operator"}
        forged = viewer.post("/account/language", data={"language": "en", "csrf": "forged"})
        assert forged.status_code == 403 and "安全令牌缺失或不符" in forged.text
        viewer.post("/account/language", data={"language": "en", "csrf": token})
        assert viewer.post("/api/access", json={}, headers={"X-CSRF-Token": token}).json()["error"] == \
            "needs the operator role"
    with site.client("oper") as oper:
        token = csrf_of(oper.get("/").text)
        one = oper.post("/access/open", data={"room": "A1", "people": "张三\n张 三", "purpose": "p", "approval": "n",
                                              "csrf": token})
        assert "error=access_people" in one.headers["location"]
        assert "一次登记至少需要 2 名不同的人员" in oper.get(one.headers["location"]).text
        closed = oper.post("/access/999/close", data={"csrf": token})
        assert "没有编号为 999 的登记" in oper.get(closed.headers["location"]).text
        api = oper.post("/api/access", json={"room": "A1", "people": ["张三"], "purpose": "p", "approval": "n"},
                        headers={"X-CSRF-Token": token})
        assert api.status_code == 400 and api.json()["code"] == "access_people" and "三不查阅" in api.json()["error"]


def test_a_done_or_error_value_from_a_link_never_becomes_a_catalogue_key(site: Site) -> None:
    from dashboards.web import i18n

    before = set(i18n._missing)
    with site.client("oper") as oper:
        for i in range(20):
            page = oper.get(f"/access?done=x{i}-1&error=nonsense{i}")
            assert page.status_code == 200 and 'class="notice"' not in page.text  # no such thing was done
            assert '<p class="error" role="alert">登记失败: 操作未完成</p>' in page.text  # generic, not the value
        assert "已登记进入" in oper.get("/access?done=open-3").text
    assert set(i18n._missing) == before


def test_names_made_of_dots_are_refused(site: Site) -> None:
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/users").text)
        for name in (".", "..", "..."):
            done = admin.post("/users", data={"name": name, "role": "admin", "password": "0123456789ab",
                                              "password2": "0123456789ab", "csrf": token})
            assert "error=user_bad_name" in done.headers["location"]
    assert {u.name for u in site.ctx.users.users()} == set(PASSWORDS)
