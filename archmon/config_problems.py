"""How configuration problems are worded: one line each, ``FILE: key.path: message (got VALUE)``."""

from __future__ import annotations

from typing import Any

import pydantic

__all__ = ["validation_problems"]


def _key_path(loc: tuple[int | str, ...], data: Any, prefix: str = "") -> str:
    out = prefix
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and "id" in node:
                out += f" ({node['id']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def validation_problems(exc: pydantic.ValidationError, data: Any, *, source: str, prefix: str = "") -> list[str]:
    """One line per error of a pydantic validation: ``FILE: key.path: message (got VALUE)``.

    Args:
        exc: the validation error.
        data: what was validated (to name list items by their ``id``).
        source: the file name (or ``<config>``) the lines start with.
        prefix: the key path of ``data`` in the file, e.g. ``sources[2] (bus1)``.
    """
    problems = []
    for err in exc.errors():
        key = _key_path(err["loc"], data, prefix) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown option"
        got = "" if err["type"] in ("missing", "value_error") else f" (got {err['input']!r})"
        problems.append(f"{source}: {key}: {message}{got}")
    return problems
