"""Where sites publish on the city's broker (retained, QoS 1):

- ``archmon/<site>/status``: the site's health, a JSON object (:func:`status_topic`); ``{"state": "offline"}``
  as the connection's will and at a clean stop. An instance of a split site (``[service] partition = "K/N"``)
  publishes to ``archmon/<site>/status/KofN`` instead (a source's own ``online``/``offline`` shares that level:
  it is not JSON, and is ignored by the city);
- ``archmon/<site>/alerts/<id>``: one alert's current state, a JSON object; an empty retained message once
  it is closed (the broker then forgets it). A split instance's ids are ``KofN-<id>``.

``<site>`` is ``[site] name`` with ``%``, ``/``, ``+`` and ``#`` percent-encoded (``%25``, ``%2F``, ``%2B``,
``%23``): two different names never share a level (``a/b`` and ``a+b`` once both became ``a_b``, so one site's
closed alert removed the other's open one at the central). Names without those characters are unchanged.
Two sites with the *same* name do share one: ``check-config`` refuses ``[city]`` with the default name, and the
central warns when two different ``site`` values arrive on one level.
"""

from __future__ import annotations

from archmon.partition import Partition

__all__ = ["ALERTS_FILTER", "STATUS_FILTERS", "alert_topic", "site_topic", "status_topic"]

ALERTS_FILTER = "archmon/+/alerts/+"
STATUS_FILTERS = ("archmon/+/status", "archmon/+/status/+")
_UNSAFE = str.maketrans({"%": "%25", "/": "%2F", "+": "%2B", "#": "%23"})


def site_topic(site: str) -> str:
    """The site's topic level (one level per name, see the module docstring)."""
    return site.translate(_UNSAFE) or "%"


def status_topic(site: str, part: Partition) -> str:
    """Where the site (or its instance ``part``) publishes its health."""
    base = f"archmon/{site_topic(site)}/status"
    return f"{base}/{part.index}of{part.count}" if part.split else base


def alert_topic(site: str, part: Partition, alert_id: int) -> str:
    """Where alert ``alert_id`` of the site (or of its instance ``part``) is published."""
    key = f"{part.index}of{part.count}-{alert_id}" if part.split else str(alert_id)
    return f"archmon/{site_topic(site)}/alerts/{key}"
