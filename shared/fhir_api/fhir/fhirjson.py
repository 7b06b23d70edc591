"""FHIR JSON that keeps every number exactly as the client wrote it.

FHIR decimals carry their precision (``1.50`` is not ``1.5``), so decimals are parsed as ``Number``
(a ``Decimal`` that keeps its text) and written back exactly as sent; stored resources travel as JSON
text (``RawJson``) and are embedded in bundles without being parsed again.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from fhir_api.errors import InvalidRequest

MAX_DEPTH = 100  # FHIR resources nest a few dozen levels at most; deeper input is an attack
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class RawJson(str):
    """A JSON text that ``dumps`` embeds verbatim (a stored resource)."""


class Number(Decimal):
    """A JSON decimal that remembers how it was written (``1.50``, ``1e3``), to be written back so."""

    text: str

    def __new__(cls, text: str) -> Number:
        number = super().__new__(cls, text)
        number.text = text
        return number


def loads(data: bytes | str) -> Any:
    """Parse a request body; malformed, non-UTF-8 or absurdly nested JSON is a 400."""
    try:
        if isinstance(data, bytes):
            text = data.decode("utf-8")
        else:
            text = data
            # A str body may hold surrogates standing for bytes that were not UTF-8.
            text.encode("utf-8")
    except UnicodeError as exc:
        raise InvalidRequest("The body is not valid UTF-8 text.") from exc
    # RFC 8259 lets a parser ignore a leading byte order mark, and Windows tools often write one.
    text = text.removeprefix("\ufeff")
    # No deeper than it has opening brackets: most bodies have too few to need the count.
    if text.count("{") + text.count("[") > MAX_DEPTH and _nesting_depth(text) > MAX_DEPTH:
        raise InvalidRequest(f"The JSON body nests deeper than {MAX_DEPTH} levels.")
    try:
        return json.loads(
            text, parse_float=Number, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc


def loads_stored(text: str) -> Any:
    """Parse a resource this server stored: it was checked by ``loads`` when it came in (UTF-8, depth,
    unique keys), so only decimals need care here."""
    return json.loads(text, parse_float=Number)


def dumps(document: Any) -> str:
    """Compact JSON text; Decimals keep their digits, RawJson is embedded as it is."""
    parts: list[str] = []
    _encode(document, parts)
    return "".join(parts)


def _encode(value: Any, parts: list[str]) -> None:
    # Strings go through json's C encoder; the structure is walked here so that Decimals and RawJson
    # can be written as they are (json.dumps can only write a float's repr or a quoted string).
    if isinstance(value, str):
        parts.append(value if isinstance(value, RawJson) else encode_basestring(value))
    elif isinstance(value, dict):
        separator = "{"
        for key, item in value.items():
            parts.append(separator + encode_basestring(str(key)) + ":")
            _encode(item, parts)
            separator = ","
        parts.append("}" if separator == "," else "{}")
    elif isinstance(value, (list, tuple)):
        separator = "["
        for item in value:
            parts.append(separator)
            _encode(item, parts)
            separator = ","
        parts.append("]" if separator == "," else "[]")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif value is None:
        parts.append("null")
    elif isinstance(value, Number):
        parts.append(value.text)
    elif isinstance(value, (int, Decimal)):
        parts.append(str(value))
    else:
        parts.append(json.dumps(value))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a repeated key, which value is meant is unknowable."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _nesting_depth(text: str) -> int:
    """The deepest nesting of objects and arrays, ignoring brackets inside strings.

    The strings are cut out and the brackets found by regular expressions, so that only the brackets
    are looked at one by one. A string left open (invalid JSON) is not cut: its brackets count, which
    can only make the answer deeper, never let a deep body through.
    """
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        else:
            depth -= 1
    return deepest
