"""paho-mqtt glue every part shares: stopping a client's network thread and releasing its sockets at once."""

from __future__ import annotations

from typing import Any


def stop_network_loop(client: Any) -> None:
    """``client.loop_stop()``, then close the socket pair paho keeps for waking that thread.

    paho closes the pair only in ``Client.__del__``; a client held in a reference cycle by its own callbacks
    (every source's is) then keeps two loopback sockets open until a garbage collection, which finalises them
    in any order and reports them as unclosed. Closing them here is safe: paho makes a new pair when the
    client connects or loops again.
    """
    client.loop_stop()
    reset = getattr(client, "_reset_sockets", None)  # (private: paho has no public call for it)
    if reset is not None:
        reset(sockpair_only=True)
