"""What a PDF really draws, glyph by glyph: every text-showing operator of every page and of every form XObject
it paints (charts' text lives there), decoded through the font it is shown in, and each glyph looked up in
the font program embedded in the file (pypdf extracts it, fontTools reads it).

Text extraction is not proof of rendering: a font may map a character to an empty glyph (WenQuanYi Micro
Hei's '℃') or to .notdef, and the extracted text still reads right. :func:`drawn_glyphs` gives, per glyph
drawn, the character it stands for (the font's ToUnicode map) and whether the embedded program has an
outline for it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont
from pypdf import PdfReader
from pypdf.generic import ContentStream, DictionaryObject

__all__ = ["DrawnGlyph", "EmbeddedFont", "drawn_glyphs", "embedded_fonts"]


@dataclass(frozen=True, slots=True)
class DrawnGlyph:
    """One glyph id drawn in one font: its character (ToUnicode) and whether the embedded outline is non-empty."""

    font: str
    cid: int
    text: str
    has_outline: bool
    notdef: bool


@dataclass
class EmbeddedFont:
    """A Type0 font of the PDF with its embedded program and its maps."""

    name: str
    program: TTFont
    to_unicode: dict[int, str]
    cid_to_gid: dict[int, int] | None  # None: Identity
    cid_keyed: dict[int, str] | None  # CID-keyed CFF: CID → glyph name

    def glyph_name(self, cid: int) -> str:
        """The glyph the CID selects (PDF 32000 §9.7.4.2: CFF CID-keyed through its charset; else CID = GID)."""
        if self.cid_keyed is not None:
            return self.cid_keyed.get(cid, ".notdef")
        gid = cid if self.cid_to_gid is None else self.cid_to_gid.get(cid, 0)
        order = self.program.getGlyphOrder()
        return order[gid] if gid < len(order) else ".notdef"

    def has_outline(self, name: str) -> bool:
        """Whether the glyph draws anything (a bounding box)."""
        glyphs = self.program.getGlyphSet()
        if name not in glyphs:
            return False
        pen = BoundsPen(glyphs)
        glyphs[name].draw(pen)
        return pen.bounds is not None


def _cmap(data: bytes) -> dict[int, str]:
    """A ToUnicode CMap's ``bfchar`` and ``bfrange`` entries."""
    text = data.decode("latin-1")
    out: dict[int, str] = {}

    def chars(hex_text: str) -> str:
        raw = bytes.fromhex(hex_text)
        return raw.decode("utf-16-be", "replace")

    for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]*)>", block):
            out[int(src, 16)] = chars(dst)
    for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            start = int(dst, 16)
            for offset, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                out[code] = chr(start + offset)
    return out


def _font(name: str, font: Any) -> EmbeddedFont:
    if font["/Subtype"] != "/Type0" or font["/Encoding"] != "/Identity-H":
        raise AssertionError(f"{name}: expected a Type0 font with Identity-H, got {font['/Subtype']} "
                             f"{font.get('/Encoding')}")
    descendant = font["/DescendantFonts"][0].get_object()
    descriptor = descendant["/FontDescriptor"].get_object()
    stream = descriptor.get("/FontFile3") or descriptor.get("/FontFile2")
    if stream is None:
        raise AssertionError(f"{name}: the font program is not embedded")
    program = TTFont(io.BytesIO(stream.get_object().get_data()))
    to_unicode = _cmap(font["/ToUnicode"].get_object().get_data()) if "/ToUnicode" in font else {}
    mapping = descendant.get("/CIDToGIDMap")
    cid_to_gid = None
    if mapping is not None and mapping != "/Identity":
        raw = mapping.get_object().get_data()
        cid_to_gid = {i // 2: int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)}
    cid_keyed = None
    if "CFF " in program:
        top = program["CFF "].cff.topDictIndex[0]
        if hasattr(top, "ROS"):
            cid_keyed = {int(n[3:]): n for n in program.getGlyphOrder() if n.startswith("cid")}
            cid_keyed[0] = program.getGlyphOrder()[0]
    return EmbeddedFont(str(font["/BaseFont"])[1:], program, to_unicode, cid_to_gid, cid_keyed)


def _raw(value: Any) -> bytes:
    """The string's bytes as written in the content stream (pypdf may have decoded it as text)."""
    return bytes(value.original_bytes) if hasattr(value, "original_bytes") else bytes(value)


def _strings(operands: list[Any], operator: bytes) -> Iterator[bytes]:
    if operator in (b"Tj", b"'"):
        yield _raw(operands[0])
    elif operator == b'"':
        yield _raw(operands[2])
    elif operator == b"TJ":
        for item in operands[0]:
            if not isinstance(item, int | float):
                yield _raw(item)


def _walk(reader: PdfReader, content: Any, resources: Any, fonts: dict[int, EmbeddedFont],
          seen_forms: set[int]) -> Iterator[tuple[EmbeddedFont, int]]:
    current: EmbeddedFont | None = None
    resources = resources.get_object() if resources is not None else DictionaryObject()
    font_dict = resources.get("/Font", DictionaryObject()).get_object()
    xobjects = resources.get("/XObject", DictionaryObject()).get_object()
    for operands, operator in ContentStream(content, reader).operations:
        if operator == b"Tf":
            ref = font_dict.raw_get(operands[0])
            key = ref.idnum if hasattr(ref, "idnum") else id(ref)
            if key not in fonts:
                fonts[key] = _font(str(operands[0]), ref.get_object())
            current = fonts[key]
        elif operator in (b"Tj", b"TJ", b"'", b'"'):
            assert current is not None, "text shown without a font"
            for raw in _strings(operands, operator):
                for i in range(0, len(raw) - 1, 2):
                    yield current, int.from_bytes(raw[i:i + 2], "big")
        elif operator == b"Do":
            ref = xobjects.raw_get(operands[0])
            form = ref.get_object()
            key = ref.idnum if hasattr(ref, "idnum") else id(form)
            if form.get("/Subtype") == "/Form" and key not in seen_forms:
                seen_forms.add(key)
                yield from _walk(reader, form, form.get("/Resources") or resources, fonts, seen_forms)


def drawn_glyphs(data: bytes) -> list[DrawnGlyph]:
    """Every distinct (font, glyph) the document draws, with its character and outline verdict."""
    reader = PdfReader(io.BytesIO(data))
    fonts: dict[int, EmbeddedFont] = {}
    found: dict[tuple[str, int], DrawnGlyph] = {}
    for page in reader.pages:
        seen: set[int] = set()
        for font, cid in _walk(reader, page.get_contents(), page["/Resources"], fonts, seen):
            key = (font.name, cid)
            if key in found:
                continue
            name = font.glyph_name(cid)
            found[key] = DrawnGlyph(font.name, cid, font.to_unicode.get(cid, ""), font.has_outline(name),
                                    name == ".notdef" or cid == 0)
    return list(found.values())


def embedded_fonts(data: bytes) -> set[str]:
    """The base names of the fonts the document draws with (subset tags removed)."""
    return {g.font.split("+", 1)[-1] for g in drawn_glyphs(data)}
