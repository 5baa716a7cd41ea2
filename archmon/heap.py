"""Giving the C heap's free memory back to the system (glibc ``malloc_trim``), for ``archmon run``.

Start-up allocates far more than the running service keeps: the parsed configuration, the alert engine's
rebuild of 20,000 windows from the store (query results, SQLite page caches filled by the scans). glibc
keeps what is freed in its arenas for reuse; at 10,000 sensors that was about 32 MiB of resident memory
free but not returned (measured with ``mallinfo2`` in ``bench/bench_windows.py`` runs), a sixth of the
200 MB budget. ``malloc_trim(0)`` returns the free pages of every arena (``madvise(MADV_DONTNEED)``); it
keeps what is in use, so it changes nothing the service holds. Elsewhere than glibc (musl, macOS) it is a
no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from typing import Any

__all__ = ["TRIM_INTERVAL_S", "trim_heap"]

log = logging.getLogger(__name__)

TRIM_INTERVAL_S = 300
"""How often the service trims (start-up, reloads and monthly reports leave free memory behind)."""

_lock = threading.Lock()
_libc: Any = None
_looked_up = False


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where there is none."""
    global _libc, _looked_up
    with _lock:
        if not _looked_up:
            _looked_up = True
            name = ctypes.util.find_library("c")
            try:
                libc = ctypes.CDLL(name) if name else None
                trim = getattr(libc, "malloc_trim", None)
            except OSError:
                trim = None
            if trim is not None:
                trim.argtypes = [ctypes.c_size_t]
                trim.restype = ctypes.c_int
            _libc = trim
        return _libc


def _rss_kib() -> int | None:
    """This process's resident set in KiB (Linux), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return None


def trim_heap() -> int | None:
    """Return the C heap's free memory to the system.

    Returns:
        the resident KiB released (measured from ``/proc/self/statm``; may be 0 or negative when other
        threads allocated meanwhile), or None where ``malloc_trim`` is not available (not glibc).
    """
    trim = _malloc_trim()
    if trim is None:
        return None
    before = _rss_kib()
    trim(0)
    after = _rss_kib()
    released = before - after if before is not None and after is not None else 0
    log.debug("malloc_trim released %d KiB", released)
    return released
