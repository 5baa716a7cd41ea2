"""Telling systemd how ``archmon run`` is doing (``Type=notify``): ready, reloading, stopping, status.

The protocol (``sd_notify(3)``) is one datagram of ``KEY=value`` lines to the Unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without that variable (not started
by systemd) every call does nothing. A failed send is logged once and never raised: telling systemd is
a courtesy, collecting readings is the job.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["notify", "notify_ready", "notify_reloading", "notify_stopping"]

log = logging.getLogger(__name__)

_warned = False


def notify(**fields: str | int) -> bool:
    """Send ``KEY=value`` fields (``notify(READY=1, STATUS="...")``); True if a systemd socket took them."""
    global _warned
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        if not _warned:
            _warned = True
            log.warning("cannot notify systemd through %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def notify_ready(status: str) -> bool:
    """Started (or done reloading): systemd considers the service up."""
    return notify(READY=1, STATUS=status)


def notify_reloading(status: str = "reloading the configuration") -> bool:
    """A reload began (``MONOTONIC_USEC`` lets systemd 253+ with ``Type=notify-reload`` match it)."""
    return notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000, STATUS=status)


def notify_stopping(status: str, *, timeout_s: float | None = None) -> bool:
    """Stopping; with ``timeout_s``, ask systemd to wait that long for the final flush (``EXTEND_TIMEOUT_USEC``)."""
    if timeout_s is None:
        return notify(STOPPING=1, STATUS=status)
    return notify(STOPPING=1, STATUS=status, EXTEND_TIMEOUT_USEC=int(timeout_s * 1_000_000))
