"""Recognising messages a broker sends again without the DUP flag (``RawMessage.replayed``).

A broker sends a QoS 1/2 message again only when a client resumes its session (MQTT 3.1.1 §4.4, MQTT 5
§4.4), and normally sets DUP on it. Mosquitto 2.0 does not when it restarts from persisted state older
than the send: with ``autosave_interval`` (Debian's default: every 30 minutes, and on a clean shutdown)
a message queued before the last save and sent to archmon after it is, after a broker crash, restored as
never sent and sent again *without* DUP, under its first packet id. Measured on Mosquitto 2.0.11:
killed (SIGKILL) after an autosave, it resent such messages with DUP clear; stopped cleanly (SIGTERM)
it resent in-flight messages with DUP set.

The same crash rolls the broker's packet-id counter back to the save, so *new* messages then reuse the
packet ids of messages sent after the save (lost by the broker). A replayed message and a new one with
a reused packet id look the same on the wire, and a stable sensor (ESPHome, Shelly: a plain ``21.0``
every minute) sends byte-identical payloads, so not even the content tells them apart. A message is
``replayed`` when it comes on a connection whose CONNACK said "session present", before the first
message whose packet id is ahead of every packet id received on earlier connections. The pipeline
stamps a replayed message anew (never with a receipt's old time: that would drop a new reading as a
duplicate) and counts it ``replayed_possible_duplicates`` when a stored receipt matches it
(``collector._stamping``): after such a crash a reading may be stored twice, never lost.
"""

from __future__ import annotations

__all__ = ["ReplayWatch", "packet_id_ahead"]

_PACKET_IDS = 65_536


def packet_id_ahead(mid: int, newest: int) -> bool:
    """Whether packet id ``mid`` comes after ``newest`` in a broker's sequence (within half a cycle)."""
    return 0 < (mid - newest) % _PACKET_IDS < _PACKET_IDS // 2


class ReplayWatch:
    """Classifies the QoS 1/2 messages of one source as replayed or not (network thread only)."""

    def __init__(self) -> None:
        self._newest: int | None = None  # newest packet id received without DUP and not replayed
        self._in_run = False  # at the start of a resumed session, no message ahead of _newest yet

    def connected(self, session_present: bool) -> None:
        """A new connection: a resumed session may start with replayed messages."""
        self._in_run = session_present and self._newest is not None

    def classify(self, mid: int, dup: bool) -> bool:
        """Whether a message with packet id ``mid`` (and the DUP flag ``dup``) may be a replay without DUP."""
        if dup:
            return False
        if self._in_run:
            assert self._newest is not None
            if not packet_id_ahead(mid, self._newest):
                return True
            self._in_run = False
        self._newest = mid
        return False
