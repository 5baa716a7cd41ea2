"""Timestamps of logger exports: the forms loggers write, the zone they are in, and clock changes.

Forms read (a time of day is optional, seconds and fractions too):

- ISO-8601: ``2015-02-02 14:19:00``, ``2024-03-05T08:00:00.250Z``, ``2024-03-05 08:00:00+08:00``;
- day first with dots, the German form: ``05.03.2024 08:00:00`` (a two-digit year is 20yy);
- slashes: ``2024/03/05 08:00`` (year first), or ``03/05/24 08:00:00 AM``, where month first or day first is
  the file's: :class:`DateOrderEvidence` collects what the file's dates allow and :func:`resolve_order`
  decides (a file whose every date fits both needs ``--date-order``);
- a 12-hour clock with ``AM``/``PM`` (or ``上午``/``下午``) before or after the time.

Which zone: an offset written in the timestamp (``Z``, ``+08:00``) wins; else the zone the file's header
names (HOBO's ``Date Time, GMT+08:00``); else the zone given (``--tz``, by default the site's). A local time
in a zone with clock changes may not exist (the hour skipped in spring: the row is refused, naming it) or may
exist twice (the hour repeated in autumn). The file's direction decides which instant a repeated time is: it
is found first from rows outside that hour (:func:`file_direction`: the first and last row's times). In a
file oldest first, the repeated hour is first read as the earlier instant, and once the times go back, as
the later one; in a file newest first, it is first read as the later instant, and once the times go
forward, as the earlier one. So a logger that logs local wall time keeps every reading either way.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["DateOrder", "DateOrderEvidence", "TimeReader", "file_direction", "fixed_zone", "resolve_order"]

DateOrder = Literal["mdy", "dmy", "ymd"]
"""How a slash date is ordered: month/day/year (HOBOware's default in the US), day/month/year, year/month/day."""

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
_TIME = r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?"
_ZONE = r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})" + _TIME + _ZONE, re.IGNORECASE)
_DOTS = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})" + _TIME + _ZONE, re.IGNORECASE)
_SLASH = re.compile(r"(\d{1,4})/(\d{1,2})/(\d{1,4})" + _TIME + _ZONE, re.IGNORECASE)
_MERIDIEM = re.compile(r"\s*(?:\b([AP])\.?M\.?(?![A-Za-z])|(上午|下午))\s*", re.IGNORECASE)
_GMT = re.compile(r"(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


def fixed_zone(text: str) -> dt.tzinfo | None:
    """The fixed offset a header names (``GMT+08:00``, ``UTC-5``), ``UTC`` for a bare ``GMT``/``UTC``, or None."""
    match = _GMT.search(text)
    if match is None:
        return dt.UTC if re.search(r"\b(GMT|UTC)\b", text, re.IGNORECASE) else None
    sign, hours, minutes = match.groups()
    offset = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
    if offset > dt.timedelta(hours=14):
        return None
    return dt.timezone(-offset if sign == "-" else offset)


@dataclass(slots=True)
class DateOrderEvidence:
    """What a file's slash dates (``a/b/c`` with a short first part) allow: the largest first and second parts.

    A first part over 12 can only be a day (day first), a second part over 12 only a day (month first).
    """

    first_max: int = 0
    second_max: int = 0
    seen: int = 0

    def add(self, text: str) -> None:
        """Take one timestamp cell into account (other forms are ignored)."""
        match = _SLASH.match(text.strip())
        if match is None or len(match.group(1)) == 4:
            return
        self.seen += 1
        self.first_max = max(self.first_max, int(match.group(1)))
        self.second_max = max(self.second_max, int(match.group(2)))


def resolve_order(evidence: DateOrderEvidence, given: DateOrder | None) -> DateOrder | None:
    """The order of the file's slash dates: ``given`` (``--date-order``) if any, else what the dates allow.

    Returns:
        The order, or None when the file has no such dates (only year-first or other forms).

    Raises:
        ValueError: the dates fit neither order, or both (then ``--date-order`` must say).
    """
    if given is not None:
        return given
    if not evidence.seen:
        return None
    day_first, month_first = evidence.first_max > 12, evidence.second_max > 12
    if day_first and month_first:
        raise ValueError(f"its dates fit neither month/day/year nor day/month/year (a first part up to "
                         f"{evidence.first_max}, a second up to {evidence.second_max})")
    if day_first:
        return "dmy"
    if month_first:
        return "mdy"
    raise ValueError("its dates read both as month/day/year and as day/month/year (no day after the 12th); "
                     "say which with --date-order mdy or --date-order dmy")


class _Parsed:
    """A timestamp cell read: the wall time and the offset written in it (None: none)."""

    __slots__ = ("offset", "wall")

    def __init__(self, wall: dt.datetime, offset: dt.tzinfo | None) -> None:
        self.wall = wall
        self.offset = offset


class TimeReader:
    """Reads a file's timestamp cells into UTC epoch milliseconds (see the module docstring).

    One reader per file: it remembers the previous row's wall time to read a repeated autumn hour.

    Args:
        zone: the zone of times written without an offset (the header's, else ``--tz``, else the site's).
        order: the file's slash-date order (:func:`resolve_order`); None: the file has none.
        descending: the file lists its rows newest first (:func:`file_direction`).
    """

    def __init__(self, zone: dt.tzinfo, order: DateOrder | None, *, descending: bool = False) -> None:
        self.zone = zone
        self.order = order
        self.descending = descending
        self._previous: dt.datetime | None = None
        self._ambiguous_fold: int | None = None  # the fold of the previous row, if it was in a repeated hour

    def epoch_ms(self, text: str) -> int:
        """The instant of one timestamp cell.

        Raises:
            ValueError: not a timestamp in a known form, not a real date or time, or a local time that the
                clock change skipped; the message quotes the text.
        """
        parsed = self._parse(text)
        if parsed.offset is not None:
            moment = parsed.wall.replace(tzinfo=parsed.offset)
        else:
            moment = self._local(parsed.wall, text)
        return (moment - EPOCH) // _MS

    def wall(self, text: str) -> dt.datetime | None:
        """The wall time written in a cell (None: not a timestamp); does not change the reader's state."""
        try:
            return self._parse(text).wall
        except ValueError:
            return None

    def _local(self, wall: dt.datetime, text: str) -> dt.datetime:
        early, late = wall.replace(tzinfo=self.zone, fold=0), wall.replace(tzinfo=self.zone, fold=1)
        fold: int | None = None
        if early.utcoffset() != late.utcoffset():
            if early.astimezone(dt.UTC).astimezone(self.zone).replace(tzinfo=None) != wall:
                raise ValueError(f"timestamp {text.strip()!r} does not exist in {self.zone} (the clocks went "
                                 "forward over it)")
            previous, known = self._previous, self._ambiguous_fold
            if self.descending:  # the later pass comes first; times going forward start the earlier pass
                fold = 0 if known == 0 or (previous is not None and previous < wall) else 1
            else:
                fold = 1 if known == 1 or (previous is not None and previous > wall) else 0
        self._previous, self._ambiguous_fold = wall, fold
        return late if fold else early

    def _parse(self, text: str) -> _Parsed:
        cleaned = text.strip().strip('"').strip()
        meridiem = None
        found = _MERIDIEM.search(cleaned)
        if found is not None:
            meridiem = "pm" if (found.group(1) or "").lower() == "p" or found.group(2) == "下午" else "am"
            cleaned = (cleaned[:found.start()] + " " + cleaned[found.end():]).strip()
            cleaned = re.sub(r"\s+", " ", cleaned)
        for pattern, kind in ((_ISO, "ymd"), (_DOTS, "dmy"), (_SLASH, None)):
            match = pattern.fullmatch(cleaned)
            if match is not None:
                return self._build(match, kind, meridiem, text)
        raise ValueError(f"timestamp {text.strip()!r} is not a date and time archmon reads (e.g. 2024-03-05 "
                         "08:00:00, 05.03.2024 08:00, 03/05/24 08:00:00 AM)")

    def _build(self, match: re.Match[str], kind: DateOrder | None, meridiem: str | None, text: str) -> _Parsed:
        a, b, c, hour, minute, second, fraction, zone = match.groups()
        if kind is None:
            kind = "ymd" if len(a) == 4 else self.order
            if kind is None:
                raise ValueError(f"timestamp {text.strip()!r}: a date with slashes, but the file's order "
                                 "(month/day or day/month) is not known; give --date-order")
        if kind == "ymd":
            year, month, day = a, b, c
        elif kind == "mdy":
            month, day, year = a, b, c
        else:
            day, month, year = a, b, c
        h = int(hour or 0)
        if meridiem is not None:
            if hour is None or not 1 <= h <= 12:
                raise ValueError(f"timestamp {text.strip()!r}: AM/PM with an hour that is not 1 to 12")
            h = h % 12 + (12 if meridiem == "pm" else 0)
        micro = int((fraction or "0").ljust(6, "0"))
        try:
            wall = dt.datetime(_year(year), int(month), int(day), h, int(minute or 0), int(second or 0), micro)
        except ValueError as exc:
            raise ValueError(f"timestamp {text.strip()!r} is not a real date or time ({exc})") from None
        return _Parsed(wall, _offset(zone, text))


def _year(text: str) -> int:
    if len(text) == 2:
        return 2000 + int(text)
    if len(text) != 4:
        raise ValueError(f"year {text!r} must have 2 or 4 digits")
    return int(text)


def _offset(text: str | None, cell: str) -> dt.tzinfo | None:
    if text is None:
        return None
    if text.upper() in ("Z", "UTC", "GMT"):
        return dt.UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 14 or minutes > 59:
        raise ValueError(f"timestamp {cell.strip()!r}: offset {text} is not a time zone offset")
    offset = dt.timedelta(hours=hours, minutes=minutes)
    return dt.timezone(-offset if text[0] == "-" else offset)


def file_direction(reader: TimeReader, first: str | None, last: str | None) -> bool:
    """Whether a file lists its rows newest first, from its first and last row's timestamp cells (rows of a
    repeated hour can only be told apart once the direction is known). False when it cannot tell."""
    a = reader.wall(first) if first is not None else None
    b = reader.wall(last) if last is not None else None
    return a is not None and b is not None and a > b
