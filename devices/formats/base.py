"""The decoder interface every MQTT payload format implements.

Conventions shared by all decoders:

- ``decode`` raises :class:`archmon.errors.DecodeError` (one line saying why) and nothing else, whatever
  the topic, payload bytes or options.
- A well-formed message of a kind the device sends routinely but that carries no measured quantity
  (a Zigbee2MQTT state with only ``linkquality``, a Shelly ``NotifyStatus`` about Wi-Fi) decodes to a
  ``Decoded`` with no values; messages that are never sensor data (Zigbee2MQTT ``bridge/...``, Tasmota
  ``STATE``/``RESULT``, Shelly ``NotifyEvent``) raise ``DecodeError``.
- Values are in the quantity's canonical unit (°F converted); binaries are 0/1 with door 1 = open.
  Values are not range-checked here: the pipeline does that with ``archmon.quantities.check_value``.
- An explicit JSON ``null`` for a quantity means "no value this time" and is skipped.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from devices.decoded import Decoded, DecodeOptions

__all__ = ["Decoder"]


@runtime_checkable
class Decoder(Protocol):
    """Turns one MQTT message of one payload format into a :class:`Decoded`."""

    name: str

    def decode(self, topic: str, payload: bytes, options: DecodeOptions) -> Decoded:
        """Decode one message.

        Args:
            topic: the MQTT topic the message arrived on.
            payload: the raw payload bytes.
            options: per-sensor or per-subscription options.

        Returns:
            The device, its topic prefix and the values (or availability) in the message.

        Raises:
            DecodeError: the topic or payload is not a message of this format; the text says why.
        """
        ...
