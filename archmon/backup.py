"""A verified copy of the site's SQLite file, taken while ``archmon run`` writes to it (``archmon backup``).

SQLite's online backup API copies the database page by page from one read snapshot: the copy holds every
transaction committed before the backup began and none of the later ones, never half of one. The copy is
taken in a single step inside one read transaction of the source connection: in WAL mode a reader never
blocks the writer, so ingest goes on meanwhile (a backup taken in many small steps would start over each time
the writer commits, which on a busy site is forever).

The copy is then checked before it is given its name: ``PRAGMA integrity_check`` must say ``ok``, and every
table must hold as many rows as the source held in the snapshot the copy was taken from. It is written as a
rollback-journal file (no ``-wal`` beside it), fsynced, and renamed into place, so ``--out`` is either a
complete, verified backup or absent. Restoring is copying that file back to ``sqlite_path`` while archmon is
stopped (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from archmon.sqlite import connect

__all__ = ["SIDECARS", "BackupError", "BackupResult", "backup_database"]

SIDECARS = (".unjudged.json", ".audit-pending.jsonl")
"""Files beside the database that hold work a stop could not finish (see docs/operations.md)."""


class BackupError(Exception):
    """The backup could not be taken or did not verify; nothing was left at the output path."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a backup copied and how it was checked.

    Attributes:
        source: the database copied.
        out: the verified copy.
        pages: database pages copied.
        bytes: size of the copy.
        rows: row count of every table, as in the source's snapshot and in the copy (they are equal).
        elapsed_s: wall time of the copy and its checks.
        sidecars: files beside the source holding unfinished work (not part of the snapshot: see the docs).
    """

    source: Path
    out: Path
    pages: int
    bytes: int
    rows: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    sidecars: tuple[Path, ...] = ()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = [str(row[0]) for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {table: int(conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]) for table in tables}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_database(source: Path, out: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy ``source`` to ``out`` with SQLite's online backup, verify the copy, then give it its name.

    Args:
        source: the site's database (it may be written to meanwhile).
        out: where the copy goes; its folder must exist.
        overwrite: replace an existing ``out`` (else refuse).

    Returns:
        What was copied and checked.

    Raises:
        BackupError: the source is missing or unreadable, ``out`` exists, the copy failed, or it did not verify
            (the message says which and nothing is left at ``out``).
    """
    started = time.monotonic()
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise BackupError(f"{source}: no database there")
    if out.resolve() == source.resolve():
        raise BackupError(f"{out}: is the database itself")
    if out.exists() and not overwrite:
        raise BackupError(f"{out}: exists already (give another name, or --force to replace it)")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent}: no such folder")
    partial = out.with_name(out.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        src = connect(source, readonly=True)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"{source}: cannot open: {exc}") from exc
    try:
        try:
            src.execute("BEGIN")  # one read snapshot for the counts and the copy
            counts = _row_counts(src)
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst, pages=-1)  # one step: the snapshot above, never restarted by the writer
                dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            finally:
                dst.close()
            src.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackupError(f"{source}: backup failed: {exc}") from exc
    finally:
        src.close()
    try:
        copied = _verify(partial, counts)
        _fsync(partial)
        os.replace(partial, out)
        with contextlib.suppress(OSError):
            _fsync(out.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    sidecars = tuple(p for p in (source.with_name(source.name + s) for s in SIDECARS) if p.exists())
    return BackupResult(source, out, pages, out.stat().st_size, copied, time.monotonic() - started, sidecars)


def _verify(copy: Path, expected: dict[str, int]) -> dict[str, int]:
    """The copy's row counts, once it passed ``integrity_check`` and matched ``expected``."""
    conn = sqlite3.connect(copy.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError(f"{copy}: integrity_check failed: {'; '.join(problems[:5])}")
        counts = _row_counts(conn)
    except sqlite3.Error as exc:
        raise BackupError(f"{copy}: cannot be read back: {exc}") from exc
    finally:
        conn.close()
    if counts != expected:
        wrong = sorted(t for t in set(counts) | set(expected) if counts.get(t) != expected.get(t))
        raise BackupError(f"{copy}: row counts differ from the source's snapshot in {wrong}")
    return counts
