"""The dashboard's reports page on a running site: the kept files listed with their SHA-256 and whether the
audit log recorded it, downloads of exactly those bytes as attachments, in both languages; anything not
listed (a changed path, a traversal) is 404."""

from __future__ import annotations

import datetime as dt

from dashboards.reports.produce import produce_report
from dashboards.reports.schedule import reports_dir
from tests.dashboards.site import Site, csrf_of


def test_kept_reports_are_listed_verified_and_downloadable(site: Site) -> None:
    site.history(hours=6)
    today = dt.datetime.now(site.config.site.tz).date()
    made = produce_report(site.config, from_date=today, to_date=today, fmt="json", by="archmon",
                          name="report-2025-03-zh.json")
    folder = reports_dir(site.config) / "2025-03"
    folder.mkdir(parents=True)
    (folder / "report-2025-03-zh.json").write_bytes(made.data)
    (folder / "report-2025-03-zh.csv").write_bytes(b"not made by archmon\r\n")
    with site.client("viewer") as viewer:
        page = viewer.get("/reports")
        assert page.status_code == 200
        html = page.text
        assert "合规报表与温湿度登记表" in html and made.record.sha256 in html
        assert f"已记录（第 {made.record.seq} 条）" in html
        assert "审计日志中没有此哈希" in html  # the CSV nobody recorded
        download = viewer.get("/reports/2025-03/report-2025-03-zh.json")
        assert download.status_code == 200 and download.content == made.data
        assert download.headers["content-disposition"].startswith("attachment")
        assert download.headers["content-type"].startswith("application/json")
        for bad in ("/reports/2025-03/report-2025-03-zh.pdf", "/reports/2025-04/report-2025-03-zh.json",
                    "/reports/2025-03/..%2F..%2Farchmon.db", "/reports/..%2F/archmon.toml",
                    "/reports/2025-03/report-2025-03-zh.json%00.pdf"):
            assert viewer.get(bad).status_code == 404, bad
        viewer.post("/account/language", data={"language": "en", "csrf": csrf_of(html), "next": "/reports"})
        english = viewer.get("/reports").text
        assert "Compliance reports and registers" in english and f"recorded (entry {made.record.seq})" in english
    with site.client() as anonymous:
        assert anonymous.get("/reports/2025-03/report-2025-03-zh.json").status_code == 303
