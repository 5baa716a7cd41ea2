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
from tests.dashboards.site import PASSWORDS, Site, csrf_of, login


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
    assert kinds.count("login_failed") == 5 and kinds.count("login_blocked") == 2


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
