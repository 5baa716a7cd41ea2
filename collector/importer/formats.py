"""The registry of file formats ``archmon import`` recognises: name → module, detector and what it expects.

Formats are tried in the registry's order, most particular first (archmon's exact header, UCI's header one
name shorter than its rows, HOBO's ``Date Time, GMT...`` column), the most general last (a Testo-style
header naming a timestamp and measured columns). Adding a format means a module in this package with
``TITLE``, ``EXPECTS`` and ``detect(head) -> Layout | None``, and one line in :data:`FORMATS`;
``tests/collector/test_import_formats.py`` fails when a module is not registered or is registered under
another name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from collector.importer import archmon_export, hobo, testo, uci
from collector.importer.layout import Layout
from collector.importer.table import FileHead, ImportRefused

__all__ = ["FORMATS", "FileFormat", "detect_layout"]


@dataclass(frozen=True, slots=True)
class FileFormat:
    """One format of logger export.

    Attributes:
        module: the module reading it (its docstring documents the layout).
        detect: the layout of a file in this format from its first lines, or None when it is not one.
    """

    module: str
    detect: Callable[[FileHead], Layout | None]

    @property
    def title(self) -> str:
        """How the summary names the format."""
        return str(import_module(self.module).TITLE)

    @property
    def expects(self) -> str:
        """What a file of this format starts with (for the error when no format matches)."""
        return str(import_module(self.module).EXPECTS)


FORMATS: dict[str, FileFormat] = {
    "archmon": FileFormat(archmon_export.__name__, archmon_export.detect),
    "uci": FileFormat(uci.__name__, uci.detect),
    "hobo": FileFormat(hobo.__name__, hobo.detect),
    "testo": FileFormat(testo.__name__, testo.detect),
}


def detect_layout(head: FileHead) -> Layout:
    """The layout of the first format in :data:`FORMATS` that recognises the file.

    Raises:
        ImportRefused: no format does: names the file, its first line and what each format expects, and
            ``--columns``; or a format recognised it but cannot tell which column is meant.
    """
    for kind in FORMATS.values():
        layout = kind.detect(head)
        if layout is not None:
            return layout
    filled = head.filled()
    name = head.file.name
    if not filled:
        raise ImportRefused(f"{name}: the file is empty (no line with text in its first {len(head.lines)} lines)")
    first = filled[0]
    shown = first.text if len(first.text) <= 120 else first.text[:117] + "..."
    return _refuse(name, first.number, shown)


def _refuse(name: str, line: int, shown: str) -> Layout:
    lines = [f"{name}: line {line}: {shown!r} does not start a file archmon recognises. Expected one of:"]
    lines += [f"  - {kind.expects}" for kind in FORMATS.values()]
    lines.append("  or name the columns: --columns ts=COLUMN,temperature=COLUMN,humidity=COLUMN (a header name or "
                 "a column number, 1 first)")
    raise ImportRefused(lines)
