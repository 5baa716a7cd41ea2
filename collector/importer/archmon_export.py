"""archmon's own export (``archmon export --format csv``): ``ts,site,room,sensor,quantity,value``.

One reading per row; ``ts`` is ISO-8601 UTC with ``Z``, ``value`` the shortest text that reads back as the
same number, so an export imported into another database gives the same readings. Each row names its sensor:
without ``--sensor`` every row goes to its own sensor (each must be configured), with ``--sensor ID`` only
that sensor's rows are imported. ``site`` and ``room`` are not taken from the file: a reading goes to the
room its sensor is configured in (as every import does).
"""

from __future__ import annotations

from collector.export import COLUMNS
from collector.importer.layout import LongLayout
from collector.importer.table import FileHead, split

__all__ = ["EXPECTS", "TITLE", "detect"]

TITLE = "archmon export"
EXPECTS = "archmon export: the header " + ",".join(COLUMNS)


def detect(head: FileHead) -> LongLayout | None:
    """The layout of a file whose first line is archmon's export header."""
    filled = head.filled()
    if not filled or tuple(name.lower() for name in split(filled[0].text, ",")) != COLUMNS:
        return None
    return LongLayout("archmon", TITLE, filled[0].number)
