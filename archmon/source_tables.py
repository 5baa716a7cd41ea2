"""How the core holds sources: ``[[sources]]`` tables with a ``kind`` and an ``id``, the rest unchecked.

Sources are plugins: the collector's source registry (``collector/sources.py``) validates each
table's other keys with its kind's own schema. The older tables keep working, read into the same
form: ``[[mqtt]]`` is ``kind = "mqtt"``; ``[[serial]]`` with ``protocol = "modbus"`` or ``"line"`` is
that kind. Messages name a table as written: ``sources[2] (bus1)``, ``mqtt[0] (broker)``,
``serial[0] (bus1)``.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_serializer

from archmon.config_problems import validation_problems

__all__ = ["ID_PATTERN", "SOURCE_SECTIONS", "SourceTable", "SourceTables", "read_source_tables"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""Ids of rooms, sensors and sources: letters, digits, ``_``, ``.`` and ``-``, not starting with a sign."""
KIND_PATTERN = r"^[a-z][a-z0-9_]*$"
SOURCE_SECTIONS = ("sources", "mqtt", "serial")
"""Top-level keys holding source tables: the ``[[sources]]`` form, then the older ones."""
LEGACY_SERIAL_PROTOCOLS = ("modbus", "line")
"""``protocol`` of an older ``[[serial]]`` table, which is also its source kind."""


class SourceTable(BaseModel):
    """One source table as the core sees it: its kind, its id and the kind's own options, unchecked.

    The collector's source registry validates ``options`` with the kind's schema
    (``collector.sources.source_configs``); the core checks only ``kind`` and ``id``.

    Attributes:
        kind: the source kind, e.g. ``mqtt``, ``modbus`` or ``line``.
        id: the source id that sensors name with ``source = "<id>"``.
        options: every other key of the table, as written.
        where: the table's key path in the file for messages: ``sources[2] (bus1)``, or for the older
            form ``mqtt[0] (broker)`` / ``serial[0] (bus1)``.
        form: how the table was written: ``sources``, or the older ``mqtt`` or ``serial``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(pattern=KIND_PATTERN)
    id: str = Field(pattern=ID_PATTERN)
    options: dict[str, Any] = Field(default_factory=dict)
    # Where the table came from, not options written in it.
    where: str = Field(default="", exclude=True)
    form: Literal["sources", "mqtt", "serial"] = Field(default="sources", exclude=True)

    @model_serializer(mode="plain")
    def _as_written(self) -> dict[str, Any]:
        """Dumped as a ``[[sources]]`` table, so a dumped Config parses again."""
        return {"kind": self.kind, "id": self.id, **self.options}


class SourceTables(NamedTuple):
    """The source tables of a file and the problems of their ``kind``, ``id`` or (older form) ``protocol``.

    Attributes:
        tables: in the order sources, mqtt, serial (each in file order).
        problems: one line per problem, each starting with the file name.
    """

    tables: list[SourceTable]
    problems: list[str]


def read_source_tables(data: dict[str, Any], source: str) -> SourceTables:
    """Every source table of a parsed file, ``[[sources]]`` and the older forms, as SourceTables.

    Args:
        data: the parsed TOML document.
        source: the file name messages start with.

    Returns:
        The tables and the problems of their ``kind``, ``id`` or (older form) ``protocol``.
    """
    tables: list[SourceTable] = []
    problems: list[str] = []
    for form in SOURCE_SECTIONS:
        items = data.get(form)
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(f"{source}: {form}: must be a list of [[{form}]] tables (got {items!r})")
            continue
        for i, item in enumerate(items):
            where = f"{form}[{i}]"
            if not isinstance(item, dict):
                problems.append(f"{source}: {where}: must be a table (got {item!r})")
                continue
            if isinstance(item.get("id"), str):
                where += f" ({item['id']})"
            options = dict(item)
            head = {"id": options.pop("id")} if "id" in options else {}
            if form == "sources":
                if "kind" in options:
                    head["kind"] = options.pop("kind")
            elif form == "mqtt":
                head["kind"] = "mqtt"
            else:  # the protocol of an older [[serial]] table is its kind
                protocol = options.pop("protocol", None)
                if protocol not in LEGACY_SERIAL_PROTOCOLS:
                    wrong = f"Input should be 'modbus' or 'line' (got {protocol!r})"
                    problems.append(f"{source}: {where}.protocol: {'Field required' if protocol is None else wrong}")
                    continue
                head["kind"] = protocol
            try:
                tables.append(SourceTable(**head, options=options, where=where, form=form))
            except pydantic.ValidationError as exc:
                problems += validation_problems(exc, head, source=source, prefix=where)
    return SourceTables(tables, problems)
