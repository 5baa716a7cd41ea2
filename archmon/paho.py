"""paho-mqtt glue every part shares: stopping a client's network thread with its sockets accounted for."""

from __future__ import annotations

import contextlib
import socket
import weakref
from typing import Any


def stop_network_loop(client: Any) -> None:
    """``client.loop_stop()``, and the socket pair paho keeps for waking that thread closed with the client.

    paho closes the pair only in ``Client.__del__``, and a client held in a reference cycle by its own
    callbacks (every source's is) is freed by a garbage collection that finalises its sockets in any
    order: they are then reported as unclosed. Tying them to a finaliser of the client closes them in
    order. They are not closed here: another thread may still publish, and paho's publish writes to the
    pair (a closed one would raise EBADF); a later ``loop_start`` makes a new pair, this one still closes.
    """
    client.loop_stop()
    pair = [s for s in (getattr(client, "_sockpairR", None), getattr(client, "_sockpairW", None))
            if isinstance(s, socket.socket)]  # (private: paho has no public call for them)
    if pair:
        weakref.finalize(client, _close, *pair)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
