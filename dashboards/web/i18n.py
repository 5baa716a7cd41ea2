"""Bilingual text: one catalogue per language (``locales/zh.toml``, ``locales/en.toml``), same keys in both.

Chinese is the default for CN profiles (the site's ``language``); each user may choose their own.
A missing key shows the key itself (and is logged once), never an exception in a page. Error messages
are ``error.<code>`` entries (:meth:`Translator.error`): the errors the dashboard shows carry a ``code``
and ``params`` (``AccessError``, ``UserError``, ``AdoptError``, ``AckError``); an unknown code (from a
query string, say) gives the generic ``error.unknown`` text and is neither logged nor remembered.
"""

from __future__ import annotations

import functools
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["LANGUAGES", "Translator", "catalogue", "pick_language"]

log = logging.getLogger(__name__)

LANGUAGES = ("zh", "en")
LOCALES = Path(__file__).parent / "locales"


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """The flat ``key -> text`` catalogue of one language (nested TOML tables join with ``.``)."""
    with (LOCALES / f"{language}.toml").open("rb") as handle:
        data = tomllib.load(handle)
    out: dict[str, str] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(name + ".", value)
            else:
                out[name] = str(value)

    walk("", data)
    return out


_missing: set[tuple[str, str]] = set()


class Translator:
    """Text of one language: ``t("nav.overview")``, ``t("room.sensors", n=3)``."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else LANGUAGES[0]
        self._texts = catalogue(self.language)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._texts.get(key)
        if text is None:
            if (self.language, key) not in _missing:
                _missing.add((self.language, key))
                log.warning("i18n: no %s text for %r", self.language, key)
            return key
        return text.format(**values) if values else text

    def error(self, code: str, params: Mapping[str, Any] | None = None, fallback: str = "") -> str:
        """The text of error ``code`` with ``params`` filled in (a missing one shows ``?``); an unknown code
        gives ``fallback`` or the generic text."""
        text = self._texts.get(f"error.{code}") if code else None
        if text is None:
            return fallback or self._texts.get("error.unknown", "?")
        return text.format_map(_Params(params or {}))

    def failure(self, exc: BaseException) -> str:
        """The text of an exception that carries ``code`` and ``params`` (else its message)."""
        code = getattr(exc, "code", "")
        return self.error(code, getattr(exc, "params", None), str(exc)) if code else str(exc)

    def pair(self, zh: str, en: str) -> str:
        """Pick the text of this language from a ``(zh, en)`` pair (falling back to the other one)."""
        return (zh or en) if self.language == "zh" else (en or zh)


class _Params(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "?"


def pick_language(*choices: str | None, accept: str = "", default: str = "zh") -> str:
    """The first known language among ``choices`` (user setting, cookie...), else from ``Accept-Language``,
    else ``default``."""
    for choice in choices:
        if choice in LANGUAGES:
            return choice  # type: ignore[return-value]
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return default if default in LANGUAGES else LANGUAGES[0]
