"""Subscription filters: no overlaps (a broker delivers once per matching filter), computed in linear time."""

from __future__ import annotations

import pytest

from collector.routing import minimal_filters


@pytest.mark.parametrize(("filters", "expected"), [
    (["zigbee2mqtt/a/#", "zigbee2mqtt/#", "tele/x/#", "tele/+/SENSOR", "a/+/b", "a/#", "$share/g/z/#", "tele/+/#"],
     ["zigbee2mqtt/#", "a/#", "$share/g/z/#", "tele/+/#"]),
    (["zigbee2mqtt/a/#", "zigbee2mqtt/a", "x/y/#", "x/y", "x/y/z/#", "q/+/r", "q/#"],
     ["zigbee2mqtt/a/#", "x/y/#", "q/#"]),
    (["a/#", "#", "$share/g/b/#"], ["#", "$share/g/b/#"]),
    (["a/b", "a/b", "a/c"], ["a/b", "a/c"]),
])
def test_covered_filters_are_dropped(filters: list[str], expected: list[str]) -> None:
    assert minimal_filters(filters) == expected


def test_ten_thousand_device_topics() -> None:
    topics = [f"zigbee2mqtt/th{i:05d}/#" for i in range(10_000)]
    assert minimal_filters(topics) == topics
    assert minimal_filters([*topics, "zigbee2mqtt/#"]) == ["zigbee2mqtt/#"]
