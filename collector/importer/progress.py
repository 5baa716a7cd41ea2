"""The progress of an import on stderr: a tqdm bar on a terminal, a plain line every tenth otherwise (a log
or a pipe gets a few readable lines, not a stream of carriage returns)."""

from __future__ import annotations

import os
from typing import TextIO

from tqdm import tqdm

from collector.backfill import BackfillResult
from collector.importer.rows import RowCounts

__all__ = ["ImportProgress"]


class ImportProgress:
    """Shows how many of a file's rows are read and stored.

    Args:
        name: the file's name; total_rows: its data rows (from the first pass).
        stream: where to write (stderr); a terminal gets a bar.
    """

    def __init__(self, name: str, total_rows: int, stream: TextIO) -> None:
        self.name = name
        self.total = total_rows
        self.stream = stream
        self._bar: tqdm | None = None
        if stream.isatty():
            columns, lines = _size(stream)
            self._bar = tqdm(total=total_rows, desc=name, unit=" rows", file=stream, leave=True, ncols=columns,
                             nrows=lines)
        self._next_tenth = 1

    def __call__(self, counts: RowCounts, result: BackfillResult) -> None:
        """After each stored batch: the rows read, the counts so far."""
        if self._bar is not None:
            self._bar.update(counts.rows - self._bar.n)
            self._bar.set_postfix(stored=result.stored, refresh=False)
            return
        if not self.total:
            return
        tenth = counts.rows * 10 // self.total
        if tenth >= self._next_tenth and counts.rows < self.total:
            self._next_tenth = tenth + 1
            print(f"{self.name}: {counts.rows:,} of {self.total:,} rows read ({100 * counts.rows // self.total} %), "
                  f"{result.stored:,} readings stored", file=self.stream, flush=True)

    def close(self, counts: RowCounts) -> None:
        """The end: the bar shows every row read."""
        if self._bar is not None:
            self._bar.update(counts.rows - self._bar.n)
            self._bar.close()



def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and lines; 80 × 24 where it reports none (a terminal without a size, as under
    ``script`` or a serial console: tqdm would then draw nothing at all)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        columns, lines = size.columns, size.lines
    except (OSError, ValueError):
        columns = lines = 0
    return (columns if columns >= 20 else 80), (lines if lines >= 2 else 24)
