"""``archmon import``: logger CSV exports loaded through the trusted path of historical readings.

A file is recognised by its header (:mod:`collector.importer.formats`: archmon's own export, the UCI
occupancy data set, HOBOware, Testo-style exports; one module per format, each documenting its layout), or
read as ``--columns`` says (:mod:`collector.importer.columns`). Its rows become historical readings
(:mod:`collector.importer.rows`, timestamps by :mod:`collector.importer.timestamps`) and go through
:func:`collector.backfill.backfill`: validation, calibration by each reading's own time, the bounded
quarantine (each rejection naming file and line) and the store's idempotent key (importing twice adds
nothing). :mod:`collector.importer.run` plans and runs one file; :mod:`collector.importer.cli` is the command.
"""

from __future__ import annotations

from collector.importer.columns import ColumnSpec, parse_columns
from collector.importer.formats import FORMATS, FileFormat, detect_layout
from collector.importer.run import ImportOptions, ImportOutcome, ImportPlan, plan_import, run_import
from collector.importer.table import ImportRefused

__all__ = ["FORMATS", "ColumnSpec", "FileFormat", "ImportOptions", "ImportOutcome", "ImportPlan", "ImportRefused",
           "detect_layout", "parse_columns", "plan_import", "run_import"]
