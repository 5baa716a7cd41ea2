"""``--columns``: name the columns of a file no format recognises (or read a recognised one differently).

``--columns ts=Datum/Zeit,temperature=3,humidity=Feuchte`` — each key is ``ts`` (date and time in one
column), or ``date`` and ``time`` (two columns), or a quantity (``temperature``, ``humidity``, ``light``...);
each value a header name (compared without case) or a column number in the rows (1 first). A name may hold
commas (``ts=Date Time, GMT+08:00``): a comma starts a new key only where a word and ``=`` follow.
``temperature_unit=F`` says the temperatures are °F (a header name with ``°F`` says so too).

The header is the first line naming every named column; with numbers only, the first line is the header
if its timestamp cell is not a timestamp, else the file has none. As with UCI's files, a header one name
shorter than its rows means the rows start with an unnamed cell; names still find their columns.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from archmon.quantities import QUANTITIES
from collector.importer.layout import TimeColumns, ValueColumn, WideLayout, quantity_of
from collector.importer.table import FileHead, ImportRefused, NumberedLine, split
from collector.importer.timestamps import TimeReader

__all__ = ["ColumnSpec", "columns_layout", "parse_columns"]

TITLE = "columns named with --columns"
_KEYS = ("ts", "date", "time", "temperature_unit", *QUANTITIES)
_SPLIT = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*=)")


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """What ``--columns`` says.

    Attributes:
        refs: key → a header name or a column number (as text), in the order given.
        fahrenheit: ``temperature_unit``: True °F, False ℃, None: from the header name.
    """

    refs: dict[str, str]
    fahrenheit: bool | None = None


def parse_columns(text: str) -> ColumnSpec:
    """Read a ``--columns`` value.

    Raises:
        ImportRefused: an unknown key, a key twice, no timestamp or no quantity.
    """
    refs: dict[str, str] = {}
    fahrenheit = None
    for part in _SPLIT.split(text.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise ImportRefused(f"--columns: {part!r} is not KEY=COLUMN (e.g. ts=Date,temperature=2,humidity=3)")
        if key not in _KEYS:
            raise ImportRefused(f"--columns: unknown key {key!r}; known: ts, date, time, temperature_unit, "
                                f"{', '.join(QUANTITIES)}")
        if key in refs or (key == "temperature_unit" and fahrenheit is not None):
            raise ImportRefused(f"--columns: {key} given twice")
        if key == "temperature_unit":
            if value.upper().lstrip("°") not in ("C", "F"):
                raise ImportRefused(f"--columns: temperature_unit must be C or F, got {value!r}")
            fahrenheit = value.upper().lstrip("°") == "F"
            continue
        refs[key] = value
    if "ts" not in refs and not ("date" in refs and "time" in refs):
        raise ImportRefused("--columns: name the timestamp: ts=COLUMN, or date=COLUMN,time=COLUMN")
    if "ts" in refs and ("date" in refs or "time" in refs):
        raise ImportRefused("--columns: ts= or date= and time=, not both")
    if not set(refs) & set(QUANTITIES):
        raise ImportRefused("--columns: name at least one quantity, e.g. temperature=COLUMN")
    return ColumnSpec(refs, fahrenheit)


def columns_layout(head: FileHead, spec: ColumnSpec) -> WideLayout:
    """The layout ``spec`` gives this file (see the module docstring).

    Raises:
        ImportRefused: a named column is in no header line, a number is out of range.
    """
    name = head.file.name
    filled = head.filled()
    if not filled:
        raise ImportRefused(f"{name}: the file is empty")
    wanted = [ref for ref in spec.refs.values() if not ref.isdigit()]
    header = _header(head, filled, wanted, name) if wanted else _maybe_header(head, filled[0], spec)
    delimiter = head.delimiter_for(header or filled[0])
    names = split(header.text, delimiter) if header else []
    leading = 0
    if header is not None:
        following = head.after(header.number)
        if following is not None and len(split(following.text, delimiter)) == len(names) + 1:
            leading = 1
    lowered = [n.lower() for n in names]
    index: dict[str, int] = {}
    for key, ref in spec.refs.items():
        if ref.isdigit():
            position = int(ref) - 1 - leading
            if position < 0:
                raise ImportRefused(f"--columns: {key}={ref}: column {ref} is "
                                    f"{'the rows’ unnamed first cell' if leading else 'not a column'}")
        else:
            position = lowered.index(ref.lower())
        index[key] = position
    time = TimeColumns(timestamp=index["ts"]) if "ts" in index else TimeColumns(date=index["date"], time=index["time"])
    values = []
    for key, position in index.items():
        if key not in QUANTITIES:
            continue
        header_name = names[position] if position < len(names) else f"column {position + 1 + leading}"
        detected = quantity_of(header_name)
        fahrenheit = spec.fahrenheit if spec.fahrenheit is not None else bool(detected and detected.fahrenheit)
        values.append(ValueColumn(position, key, header_name, fahrenheit=key == "temperature" and fahrenheit))
    width = max(len(names), 1 + max((*time.indexes, *(v.index for v in values))))
    shown = tuple(names) + tuple(f"column {i + 1 + leading}" for i in range(len(names), width))
    return WideLayout("columns", TITLE, header.number if header else 0, shown, delimiter, time, tuple(values),
                      leading=leading)


def _header(head: FileHead, filled: list[NumberedLine], wanted: list[str], name: str) -> NumberedLine:
    """The first line naming every column in ``wanted``."""
    needed = {w.lower() for w in wanted}
    for line in filled:
        cells = {c.lower() for c in split(line.text, head.delimiter_for(line))}
        if needed <= cells:
            return line
    first = filled[0]
    have = split(first.text, head.delimiter_for(first))
    raise ImportRefused(f"{name}: --columns names {sorted(wanted)}, but no line among the first {len(filled)} "
                        f"names them all; line {first.number} has {have}")


def _maybe_header(head: FileHead, first: NumberedLine, spec: ColumnSpec) -> NumberedLine | None:
    """The first line if it is a header (its timestamp cell is not a timestamp), else None."""
    cells = split(first.text, head.delimiter_for(first))
    keys = ("ts",) if "ts" in spec.refs else ("date", "time")
    positions = [int(spec.refs[k]) - 1 for k in keys]
    if max(positions) >= len(cells):
        return first
    try:
        TimeReader(dt.UTC, "mdy").epoch_ms(" ".join(cells[p] for p in positions))
    except ValueError:
        return first
    return None
