"""HTML to PDF with WeasyPrint, Chinese set in Noto Sans CJK SC (Debian's ``fonts-noto-cjk``) embedded.

Why WeasyPrint: Debian's Noto CJK fonts carry CFF (PostScript) outlines, which WeasyPrint embeds as they are
(subset by fontTools, shaped by Pango/HarfBuzz), where reportlab embeds TrueType outlines only; and the
report is laid out as HTML/CSS (tables that break across pages, running headers, page counters) with its
charts as SVG, without a browser or the network.

The font is looked up through fontconfig before anything is rendered: a machine without it gets a clear error
naming the package, never a PDF whose Chinese is drawn in some fallback font or as empty boxes.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from archmon.errors import ConfigError

__all__ = ["FONT_FAMILY", "FONT_PACKAGE", "RenderedPdf", "check_fonts", "render_pdf"]

FONT_FAMILY = "Noto Sans CJK SC"
FONT_PACKAGE = "fonts-noto-cjk"
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # a line per page otherwise, at INFO
logging.getLogger("fontTools").setLevel(logging.WARNING)

_WEASYPRINT_HINT = ("the PDF needs WeasyPrint and Pango: `pip install weasyprint` (in archmon's dependencies) and "
                    "Debian's libpango-1.0-0 libpangoft2-1.0-0 (scripts/bootstrap.sh installs them)")


@dataclass(frozen=True, slots=True)
class RenderedPdf:
    """A rendered document: its bytes and its number of pages."""

    data: bytes
    pages: int


@functools.cache
def check_fonts() -> str:
    """The file fontconfig gives for :data:`FONT_FAMILY` (regular and bold must both be Noto CJK).

    Raises:
        ConfigError: the font is not installed (names the Debian package to install).
    """
    if shutil.which("fc-match") is None:
        raise ConfigError(f"fontconfig's fc-match is missing: install Debian's fontconfig and {FONT_PACKAGE} "
                          "(scripts/bootstrap.sh does)")
    files = []
    for weight in ("", ":bold"):
        found = subprocess.run(["fc-match", "--format=%{family}\t%{file}", f"{FONT_FAMILY}{weight}"],
                               capture_output=True, text=True, timeout=30, check=False).stdout
        family, _, path = found.partition("\t")
        if FONT_FAMILY not in family.split(","):
            raise ConfigError(f"the report's font {FONT_FAMILY!r} is not installed (fontconfig offers {family!r}): "
                              f"install Debian's {FONT_PACKAGE} (scripts/bootstrap.sh does)")
        files.append(path)
    return files[0]


def render_pdf(make_html: Callable[[int | None], str], *, counted: bool = True,
               base_url: str | None = None) -> RenderedPdf:
    """Render HTML to PDF, twice when the HTML states the page count (the cover: "共 N 页").

    Args:
        make_html: the document's HTML given its page count (None on the first pass: a placeholder).
        counted: the HTML states the page count in its text (else one pass; margin boxes count by themselves).
        base_url: where relative URLs in the HTML resolve (none are needed: styles and charts are inline).

    Raises:
        ConfigError: WeasyPrint, Pango or the font are missing.
    """
    check_fonts()
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango's shared library not found
        raise ConfigError(f"{_WEASYPRINT_HINT} ({type(exc).__name__}: {exc})") from None
    first = weasyprint.HTML(string=make_html(None), base_url=base_url).render()
    if not counted:
        return RenderedPdf(first.write_pdf(), len(first.pages))
    pages = len(first.pages)
    second = weasyprint.HTML(string=make_html(pages), base_url=base_url).render()
    if len(second.pages) != pages:  # the count's width changed the layout: render once more with the new one
        pages = len(second.pages)
        second = weasyprint.HTML(string=make_html(pages), base_url=base_url).render()
    return RenderedPdf(second.write_pdf(), len(second.pages))
