"""FHIR JSON that keeps every number exactly as the client wrote it.

FHIR decimals carry their precision (``1.50`` is not ``1.5``), so decimals are parsed as ``Decimal``
and written back from their text; stored resources travel as JSON text (``RawJson``) and are embedded
in bundles without being parsed again.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fhir_api.errors import InvalidRequest

MAX_DEPTH = 100  # FHIR resources nest a few dozen levels at most; deeper input is an attack


class RawJson(str):
    """A JSON text that ``dumps`` embeds verbatim (a stored resource)."""


def loads(data: bytes | str) -> Any:
    """Parse a request body; malformed, non-UTF-8 or absurdly nested JSON is a 400."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        # A str body may hold surrogates standing for bytes that were not UTF-8.
        text.encode("utf-8")
    except UnicodeError as exc:
        raise InvalidRequest("The body is not valid UTF-8 text.") from exc
    if _nesting_depth(text) > MAX_DEPTH:
        raise InvalidRequest(f"The JSON body nests deeper than {MAX_DEPTH} levels.")
    try:
        return json.loads(
            text, parse_float=Decimal, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc


def dumps(document: Any) -> str:
    """Compact JSON text; Decimals keep their digits, RawJson is embedded as it is."""
    return "".join(_encode(document))


def _encode(value: Any) -> Any:
    if isinstance(value, RawJson):
        yield value
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ("," if index else "") + json.dumps(str(key), ensure_ascii=False) + ":"
            yield from _encode(item)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _encode(item)
        yield "]"
    elif isinstance(value, Decimal):
        yield str(value)
    else:
        yield json.dumps(value, ensure_ascii=False)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a repeated key, which value is meant is unknowable."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"the key {key!r} appears twice in one object")
        document[key] = value
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _nesting_depth(text: str) -> int:
    """The deepest nesting of objects and arrays, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest
