"""Compliance reports: the report's data computed from the store's summaries (``build``, one module per part),
its types (``model``), and writers (``json_format``, ``csv_format``; a PDF renderer and the monthly register
read the same types). See ``docs/reports.md``."""

from dashboards.reports.build import ReportRequest, build_report, report_period
from dashboards.reports.csv_format import write_csv
from dashboards.reports.json_format import report_to_json, write_json
from dashboards.reports.model import ComplianceReport
from dashboards.reports.settings import ReportSettings, load_settings

__all__ = ["ComplianceReport", "ReportRequest", "ReportSettings", "build_report", "load_settings", "report_period",
           "report_to_json", "write_csv", "write_json"]
