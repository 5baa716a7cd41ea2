"""Logger exports as text: the encoding, numbered lines, cells, and numbers written with a decimal comma.

Each line is split on its own (``csv`` rules: quotes, a delimiter inside quotes), so a rejected row is named
by its line number in the file as an editor shows it. Logger software writes UTF-8 (HOBOware, with or without
a byte-order mark), UTF-16 with a byte-order mark, or the Windows code page of the PC it ran on (testo's
software on a German PC: Windows-1252); a file that is none of these needs ``--encoding`` (a Chinese PC's
export: ``--encoding gb18030``).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from archmon.errors import ArchmonError

__all__ = ["HEAD_LINES", "FileHead", "ImportRefused", "NumberedLine", "TextFile", "guess_delimiter", "open_text",
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

    def head(self) -> FileHead:
        """The first :data:`HEAD_LINES` lines."""
        lines = []
        for line in self.lines():
            lines.append(line)
            if len(lines) == HEAD_LINES:
                break
        return FileHead(self, tuple(lines))


@dataclass(frozen=True, slots=True)
class FileHead:
    """The first lines of a file: what formats recognise it by."""

    file: TextFile
    lines: tuple[NumberedLine, ...]

    def filled(self) -> list[NumberedLine]:
        """The lines that are not blank."""
        return [line for line in self.lines if line.text.strip()]

    def after(self, number: int) -> NumberedLine | None:
        """The first non-blank line after line ``number`` (None: none in the head)."""
        return next((line for line in self.lines if line.number > number and line.text.strip()), None)


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


def guess_delimiter(text: str) -> str:
    """The delimiter that splits a header line into the most cells: ``;``, tab or ``,`` (a tie: ``,``)."""
    best, cells = ",", len(split(text, ","))
    for candidate in (";", "\t"):
        count = len(split(text, candidate))
        if count > cells:
            best, cells = candidate, count
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
