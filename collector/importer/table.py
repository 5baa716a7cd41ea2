"""Logger exports as text: the encoding, numbered lines, cells, and numbers written with a decimal comma.

Each line is split on its own (``csv`` rules: quotes, a delimiter inside quotes), so a rejected row is named
by its line number in the file as an editor shows it. Logger software writes UTF-8 (HOBOware, with or without
a byte-order mark), UTF-16 with a byte-order mark, or the Windows code page of the PC it ran on (testo's
software on a German PC: Windows-1252), UTF-16 without a mark (recognised by where its NUL bytes sit); a file
that is none of these needs ``--encoding`` (a Chinese PC's export: ``--encoding gb18030``). Cells are split
on the delimiter that splits a header and the rows after it alike (:func:`guess_delimiter`), or the one
``--delimiter`` names.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from archmon.errors import ArchmonError

__all__ = ["DELIMITERS", "GUESS_ROWS", "HEAD_LINES", "FileHead", "ImportRefused", "NumberedLine", "TextFile",
           "guess_delimiter", "open_text",
           "parse_number", "split"]

HEAD_LINES = 60
"""Lines a format looks at to recognise a file (a header may follow a preamble of device details)."""
_CHUNK = 1 << 20


class ImportRefused(ArchmonError):
    """A file that cannot be imported as it is (exit 2): not found, unknown format, unknown sensor...

    Args:
        lines: what to tell the person importing, one line each; the first names the file.
    """

    def __init__(self, lines: list[str] | str) -> None:
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


class NumberedLine(NamedTuple):
    """One line of a file, without its line end, with its line number (the first line is 1)."""

    number: int
    text: str


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text file and the encoding it is read with."""

    path: Path
    encoding: str

    @property
    def name(self) -> str:
        """The file name, as rejections and the summary name it."""
        return self.path.name

    def lines(self) -> Iterator[NumberedLine]:
        """Every line, numbered from 1, without its line end (``\\r\\n``, ``\\n`` or ``\\r``)."""
        with self.path.open(encoding=self.encoding, newline="") as handle:
            for number, line in enumerate(handle, start=1):
                yield NumberedLine(number, line.rstrip("\r\n"))

    def head(self, delimiter: str | None = None) -> FileHead:
        """The first :data:`HEAD_LINES` lines (``delimiter``: the one ``--delimiter`` names, else guessed)."""
        lines = []
        for line in self.lines():
            lines.append(line)
            if len(lines) == HEAD_LINES:
                break
        return FileHead(self, tuple(lines), delimiter)


@dataclass(frozen=True, slots=True)
class FileHead:
    """The first lines of a file: what formats recognise it by.

    Attributes:
        delimiter: the cell delimiter given (``--delimiter``); None: guessed per header line.
    """

    file: TextFile
    lines: tuple[NumberedLine, ...]
    delimiter: str | None = None

    def filled(self) -> list[NumberedLine]:
        """The lines that are not blank."""
        return [line for line in self.lines if line.text.strip()]

    def after(self, number: int) -> NumberedLine | None:
        """The first non-blank line after line ``number`` (None: none in the head)."""
        return next((line for line in self.lines if line.number > number and line.text.strip()), None)

    def delimiter_for(self, line: NumberedLine) -> str:
        """The delimiter of a header candidate: the one given, else :func:`guess_delimiter` from the line and
        the few non-blank lines after it."""
        if self.delimiter is not None:
            return self.delimiter
        following = [other.text for other in self.lines if other.number > line.number and other.text.strip()]
        return guess_delimiter(line.text, following[:GUESS_ROWS])


def open_text(path: Path, encoding: str | None = None) -> TextFile:
    """The file with its encoding: ``encoding`` if given, else a byte-order mark's, else UTF-8 if the whole
    file is UTF-8, else Windows-1252.

    Raises:
        ImportRefused: the file cannot be read, is binary (a logger's own format, not a CSV export), or is in
            none of these encodings.
    """
    try:
        with path.open("rb") as handle:
            start = handle.read(_CHUNK)
    except OSError as exc:
        raise ImportRefused(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ImportRefused(f"{path}: --encoding {encoding!r} is not an encoding Python knows") from None
        return _checked(path, encoding)
    if start.startswith(codecs.BOM_UTF8):
        return _checked(path, "utf-8-sig")
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _checked(path, "utf-16")
    bare = _bare_utf16(start)
    if bare is not None:
        return _checked(path, bare)
    if b"\x00" in start:
        raise ImportRefused(f"{path}: a binary file, not a CSV export (export the logger's data as CSV or text "
                            "from its software first)")
    for candidate in ("utf-8", "cp1252"):
        try:
            return _checked(path, candidate)
        except ImportRefused:
            continue
    raise ImportRefused(f"{path}: neither UTF-8 nor Windows-1252 text; name its encoding with --encoding "
                        "(an export made on a Chinese PC: --encoding gb18030)")


def _bare_utf16(start: bytes) -> str | None:
    """``utf-16-be``/``utf-16-le`` for UTF-16 text written without a byte-order mark (some exports do): the
    NUL bytes of its Latin characters all sit on even (big-endian) or all on odd offsets; else None."""
    sample = start[:4096]
    if len(sample) < 8 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2], sample[1::2]
    for nul_half, other, name in ((even, odd, "utf-16-be"), (odd, even, "utf-16-le")):
        if nul_half.count(0) >= 0.6 * len(nul_half) and other.count(0) == 0:
            return name
    return None


def _checked(path: Path, encoding: str) -> TextFile:
    """``path`` as ``encoding`` if all of it decodes (read in chunks: memory stays bounded)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{path}: not {encoding} text (byte {offset + exc.start}); name its encoding with "
                            "--encoding") from None
    return TextFile(path, encoding)


def split(text: str, delimiter: str) -> list[str]:
    """The cells of one line, quotes removed and surrounding blanks stripped."""
    return [cell.strip() for cell in next(csv.reader([text], delimiter=delimiter), [])]


GUESS_ROWS = 5
"""Data rows looked at beside a header to guess its delimiter."""
DELIMITERS = (",", ";", "\t")


def guess_delimiter(text: str, following: Sequence[str] = ()) -> str:
    """The delimiter of a header line: of ``,``, ``;`` and tab, the one that splits it (quotes respected) into
    more than one cell *and* the rows after it into as many (or one more: a row-number column the header does
    not name), the most cells first; a tie: ``,``.

    A HOBO export with ``;`` has commas inside its quoted header names (``"Date Time, GMT+01:00"``): ``,``
    splits that header into more cells, but not its rows, so ``;`` is chosen.
    """
    best, score = ",", (False, False, 0)
    for candidate in DELIMITERS:
        cells = len(split(text, candidate))
        rows = [len(split(row, candidate)) for row in following]
        consistent = all(n in (cells, cells + 1) for n in rows)
        found = (cells > 1, consistent, cells)
        if found > score:
            best, score = candidate, found
    return best


def parse_number(text: str) -> float:
    """A number as loggers write it: ``19.8``, or with a decimal comma ``19,8`` (testo on a German PC);
    ``1.234,5`` and ``1,234.5`` have a thousands separator.

    Raises:
        ValueError: not a number (the message quotes the text).
    """
    cleaned = text.strip().strip('"').strip().replace("\u2212", "-")
    if "," in cleaned:
        if "." in cleaned:
            thousands, decimal = (".", ",") if cleaned.rfind(",") > cleaned.rfind(".") else (",", ".")
            cleaned = cleaned.replace(thousands, "").replace(decimal, ".")
        else:
            cleaned = cleaned.replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
