"""Two linked pseudo-terminals in pure Python: a null-modem cable without socat.

Whatever a program writes to one end (``a``) is read by the program on the other end (``b``) and
the other way round. Each end is a pty whose master this object keeps; a relay thread copies bytes
master A <-> master B. :meth:`PtyPair.unplug` closes end A's master, which makes its ``/dev/pts/N``
node vanish like an unplugged USB adapter; :meth:`PtyPair.replug` makes a new end A.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = ["PtyPair"]

log = logging.getLogger(__name__)

Side = Literal["a", "b"]
_CHUNK = 4096


class _End:
    """One pty: the master we relay through and a slave fd we hold so the master never sees EIO."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyPair:
    """Two linked pseudo-terminals with a relay thread.

    Args:
        link_dir: if given, stable symlinks ``link_dir/ttyA`` and ``link_dir/ttyB`` point at the two
            ends; after :meth:`replug` the link points at the new end.

    Example:
        >>> with PtyPair() as pair:  # doctest: +SKIP
        ...     serial.Serial(pair.a).write(b"hi")  # read back on pair.b
    """

    def __init__(self, link_dir: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._ends: dict[Side, _End | None] = {"a": _End(), "b": _End()}
        self._links: dict[Side, Path] | None = None
        if link_dir is not None:
            folder = Path(link_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self._links = {"a": folder / "ttyA", "b": folder / "ttyB"}
            for side in ("a", "b"):
                self._link(side)
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._relay, name="pty-pair-relay", daemon=True)
        self._thread.start()

    @property
    def a(self) -> str:
        """Path of end A: the stable link if ``link_dir`` was given, else ``/dev/pts/N``."""
        return self._path("a")

    @property
    def b(self) -> str:
        """Path of end B: the stable link if ``link_dir`` was given, else ``/dev/pts/N``."""
        return self._path("b")

    @property
    def plugged(self) -> bool:
        """False between :meth:`unplug` and :meth:`replug`."""
        return self._ends["a"] is not None

    def _path(self, side: Side) -> str:
        if self._links is not None:
            return str(self._links[side])
        end = self._ends[side]
        if end is None:
            raise RuntimeError(f"end {side} is unplugged")
        return end.path

    def _link(self, side: Side) -> None:
        if self._links is None:
            return
        link = self._links[side]
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        end = self._ends[side]
        if end is not None:
            link.symlink_to(end.path)

    def unplug(self, side: Side = "a") -> None:
        """Make one end vanish (its device node and link disappear; open handles get EOF/EIO)."""
        with self._lock:  # the relay copies under this lock, so it never touches a closed fd
            end = self._ends[side]
            self._ends[side] = None
            if self._links is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._links[side].unlink()
            if end is not None:
                end.close()
        self._wake()
        if end is not None:
            log.debug("pty pair: end %s (%s) unplugged", side, end.path)

    def replug(self, side: Side = "a") -> None:
        """Create a new pty for an unplugged end (a new ``/dev/pts/N``; the link follows it)."""
        with self._lock:
            if self._ends[side] is not None:
                return
            end = _End()
            self._ends[side] = end
            self._link(side)
        self._wake()
        log.debug("pty pair: end %s replugged as %s", side, end.path)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _relay(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                ends = {side: end for side, end in self._ends.items() if end is not None}
            fds = [end.master for end in ends.values()]
            try:
                ready, _, _ = select.select([self._wake_r, *fds], [], [])
            except (OSError, ValueError):
                continue  # an fd was closed under us by unplug(); rebuild the set
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, _CHUNK)
            with self._lock:
                for side, end in ends.items():
                    if end.master in ready and self._ends[side] is end:
                        self._copy(end, self._ends["b" if side == "a" else "a"])

    @staticmethod
    def _copy(src: _End, dst: _End | None) -> None:
        try:
            data = os.read(src.master, _CHUNK)
        except (BlockingIOError, OSError):
            return
        if dst is None or not data:
            return  # nobody on the other end: bytes are lost, as on a cut cable
        with contextlib.suppress(OSError):  # includes BlockingIOError: overflow drops, like a UART
            os.write(dst.master, data)

    def close(self) -> None:
        """Stop the relay and close both ends (their device nodes and links vanish)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        for side in ("a", "b"):
            end = self._ends[side]
            self._ends[side] = None
            if end is not None:
                end.close()
            if self._links is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._links[side].unlink()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
