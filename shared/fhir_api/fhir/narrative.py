"""FHIR R4 narratives (``Narrative.div``): the XHTML that clients display, checked before it is stored.

The rules are FHIR's own invariants on ``Narrative.div``:

- txt-1: only the basic formatting elements and attributes of HTML 4.0 chapters 7-11 (without section
  4 of chapter 9) and 15, as the FHIR XHTML schema (``fhir-xhtml.xsd``) lists them: ``<a>`` with name
  or href, images, internal styles; no active content (scripts, event handlers, forms, objects,
  frames), no head or body;
- txt-2: some non-whitespace content (text or an image).

The div is parsed as XML with expat, which reports every construct, so nothing is expanded or
fetched: a DOCTYPE, entity declarations, processing instructions (``<?...?>``) and CDATA sections are
refused outright, and so is any entity but XML's five and character references (HTML's ``&nbsp;``
is ``&#160;`` in FHIR). CDATA and odd comments (``<!-->``) are refused because a browser's HTML parser
reads them differently from XML, which would let markup the XML parser sees as text become live.

Beyond the schema, URLs (href, src, cite, longdesc, usemap) must be relative or http(s), mailto, tel,
urn or cid: no ``javascript:``, ``vbscript:`` or ``data:`` (an image may be an inline PNG, GIF, JPEG,
WebP or BMP, never SVG); styles must not fetch or run anything (``url(``, ``expression(``,
``javascript:``, ``@import``, CSS escapes): a narrative shows what the resource says, and a
clinician's browser must not act on it.

Public API
----------
``xhtml_problem(text: str) -> tuple[str, str] | None``
    (OperationOutcome issue code, what is wrong) for a div that breaks a rule; None for a sound one.
``XHTML_NAMESPACE``, ``ALLOWED_ELEMENTS``
    The namespace every element must be in, and the element -> attributes table (txt-1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"

# fhir-xhtml.xsd's attribute groups.
_CORE = ("id", "class", "style", "title")
_I18N = ("lang", f"{_XML_NAMESPACE} lang", "dir")
_ATTRS = _CORE + _I18N
_FOCUS = ("accesskey", "tabindex")
_CELL_ALIGN = ("align", "char", "charoff", "valign")
_CELL = ("abbr", "axis", "headers", "scope", "rowspan", "colspan")


def _table(groups: Mapping[str, tuple[str, ...]]) -> Mapping[str, frozenset[str]]:
    table: dict[str, frozenset[str]] = {}
    for names, attributes in groups.items():
        for name in names.split():
            table[name] = frozenset(attributes)
    return MappingProxyType(table)


# Element -> the attributes it may carry (an attribute in the XML namespace is "<namespace> <name>").
ALLOWED_ELEMENTS: Mapping[str, frozenset[str]] = _table(
    {
        "div p h1 h2 h3 h4 h5 h6 ul ol li dl dt dd address hr span em strong dfn code samp kbd var cite "
        "abbr acronym sub sup tt i b big small caption": _ATTRS,
        "pre": (*_ATTRS, f"{_XML_NAMESPACE} space"),
        "blockquote q": (*_ATTRS, "cite"),
        "a": (*_ATTRS, *_FOCUS, "charset", "type", "name", "href", "hreflang", "rel", "rev", "shape"),
        "area": (*_ATTRS, *_FOCUS, "shape", "coords", "href", "nohref", "alt"),
        "bdo": _ATTRS,
        "br": _CORE,
        "img": (*_ATTRS, "src", "alt", "longdesc", "height", "width", "usemap", "ismap"),
        "map": (*_ATTRS, "name"),
        "table": (*_ATTRS, "summary", "width", "border", "frame", "rules", "cellspacing", "cellpadding"),
        "thead tfoot tbody tr": (*_ATTRS, *_CELL_ALIGN),
        "colgroup col": (*_ATTRS, *_CELL_ALIGN, "span", "width"),
        "th td": (*_ATTRS, *_CELL_ALIGN, *_CELL),
    }
)

_ALLOWED = dict(ALLOWED_ELEMENTS)  # a plain dict: read once per element
_URL_ATTRIBUTES = frozenset({"href", "src", "longdesc", "cite", "usemap"})
_SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel", "urn", "cid"})
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_IMAGE_DATA = re.compile(r"data:image/(png|gif|jpeg|jpg|webp|bmp)[;,]")
# Browsers ignore these inside a URL's scheme ("java\tscript:"), so they are dropped before reading it.
_URL_IGNORED = re.compile(r"[\x00-\x20\x7f]+")
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_STYLE_FORBIDDEN = ("url(", "expression(", "javascript:", "vbscript:", "@import", "behavior:", "-moz-binding")
_SHOWN = 40


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def xhtml_problem(text: str) -> tuple[str, str] | None:
    """What is wrong with a ``Narrative.div`` value, as (issue code, message); None when it is sound."""
    try:
        _check(text)
    except _Refused as refused:
        return refused.code, refused.message
    return None


def _check(text: str) -> None:
    import xml.parsers.expat

    if "<![CDATA[" in text:
        raise _Refused("invariant", "CDATA sections are not allowed in a narrative (txt-1)")
    checker = _Checker()
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True  # one callback per run of text, not per line
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = checker.doctype
    parser.EntityDeclHandler = checker.entity
    parser.UnparsedEntityDeclHandler = checker.entity
    parser.ExternalEntityRefHandler = checker.external_entity
    parser.XmlDeclHandler = checker.processing_instruction
    parser.ProcessingInstructionHandler = checker.processing_instruction
    parser.StartCdataSectionHandler = checker.cdata
    parser.CommentHandler = checker.comment
    parser.StartElementHandler = checker.start
    parser.EndElementHandler = checker.end
    parser.CharacterDataHandler = checker.characters
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        errors = xml.parsers.expat.errors
        reason = xml.parsers.expat.ErrorString(exc.code)
        if exc.code == errors.codes[errors.XML_ERROR_JUNK_AFTER_DOC_ELEMENT]:
            reason = "content after the closing </div>"
        elif exc.code == errors.codes[errors.XML_ERROR_UNDEFINED_ENTITY]:
            reason = "an undefined entity (use the character itself or &#NNN;, not HTML's named entities)"
        raise _Refused(
            "value", f"is not well-formed XHTML: {reason} (line {exc.lineno}, column {exc.offset + 1})"
        ) from None
    if not checker.content:
        raise _Refused("invariant", "the narrative has no content: it needs some text or an image (txt-2)")


class _Checker:
    """The expat callbacks: each refuses what txt-1 does not allow, as soon as it is seen."""

    def __init__(self) -> None:
        self.depth = 0
        self.content = False

    def doctype(self, *_: object) -> None:
        raise _Refused("invariant", "a DOCTYPE is not allowed in a narrative")

    def entity(self, *_: object) -> None:
        raise _Refused("invariant", "entity declarations and references are not allowed in a narrative")

    def processing_instruction(self, *_: object) -> None:
        raise _Refused("invariant", "processing instructions (<?...?>) are not allowed in narratives (txt-1)")

    def external_entity(self, *_: object) -> int:
        raise _Refused("invariant", "external entities are not allowed in a narrative")

    def cdata(self) -> None:
        raise _Refused("invariant", "CDATA sections are not allowed in a narrative (txt-1)")

    def comment(self, data: str) -> None:
        # HTML ends "<!-->" and "<!--->" at once and reads "<!--[if ...]>" as markup for some browsers.
        if data.startswith((">", "->")) or data.lstrip().startswith("[if") or "<![endif]" in data:
            raise _Refused("invariant", "this comment would be read as markup by a browser (txt-1)")

    def characters(self, data: str) -> None:
        if not self.content and not data.isspace():
            self.content = True

    def end(self, _name: str) -> None:
        self.depth -= 1

    def start(self, name: str, attributes: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        allowed = _ALLOWED.get(local)
        if (
            namespace == XHTML_NAMESPACE
            and allowed is not None
            and self.depth
            and not attributes
            and local != "img"
        ):
            self.depth += 1  # the common case: a plain element inside the div
            return
        if namespace != XHTML_NAMESPACE:
            where = f"<{local}> in namespace {namespace!r}" if namespace else f"<{local}> without a namespace"
            if self.depth == 0:
                message = f"the root must be a <div> in the XHTML namespace ({XHTML_NAMESPACE}), not {where}"
                raise _Refused("invariant", message)
            raise _Refused("invariant", f"{where}: every element must be XHTML ({XHTML_NAMESPACE}) (txt-1)")
        if self.depth == 0 and local != "div":
            raise _Refused("invariant", f"the root element must be <div>, not <{_short(local)}>")
        if allowed is None:
            raise _Refused("invariant", f"<{_short(local)}> is not allowed in a narrative (txt-1)")
        for attribute, value in attributes.items():
            if attribute not in allowed:
                shown = attribute.replace(f"{_XML_NAMESPACE} ", "xml:").replace(" ", ":")
                raise _Refused(
                    "invariant", f"the attribute {_short(shown)!r} is not allowed on <{local}> (txt-1)"
                )
            if attribute in _URL_ATTRIBUTES:
                _check_url(local, attribute, value)
            elif attribute == "style":
                _check_style(local, value)
        if local == "img":
            self.content = True
        self.depth += 1


def _check_url(element: str, attribute: str, value: str) -> None:
    url = _URL_IGNORED.sub("", value).lower()
    scheme = _SCHEME.match(url)
    if scheme is None or scheme.group(1) in _SAFE_SCHEMES:
        return  # a relative reference ("#p1", "Patient/1") or a scheme that only navigates
    if element == "img" and attribute == "src" and _IMAGE_DATA.match(url):
        return  # FHIR allows an image inline
    raise _Refused(
        "invariant",
        f"<{element} {attribute}> with a {scheme.group(1)}: URL is not allowed in a narrative (it could run)",
    )


def _check_style(element: str, value: str) -> None:
    css = _CSS_COMMENT.sub("", value)
    compact = _URL_IGNORED.sub("", css).lower()
    if "\\" in css or any(forbidden in compact for forbidden in _STYLE_FORBIDDEN):
        raise _Refused(
            "invariant",
            f"<{element} style> may only format: no url(), expression(), scripts, @import or CSS escapes",
        )


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
