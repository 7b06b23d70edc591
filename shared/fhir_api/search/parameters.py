"""Search parameter tables and the parsing of a search request's query (FHIR R4 search).

A resource declares its parameters as ``dict[str, SearchParameter]`` (``search.definitions`` holds the
tables); ``parse_query`` turns API Gateway's ``multiValueQueryStringParameters`` into a ``SearchQuery``
or raises ``InvalidRequest`` / ``SearchTooCostly`` (400). Nothing else escapes for any input.

Semantics:

- A repeated parameter is AND (``date=ge2024-01-01&date=lt2024-02-01``); a comma inside one value is OR
  (``status=planned,arrived``); ``\\,`` is a literal comma.
- Parsed values, by parameter type: ``date`` -> ``dates.DateCriterion``; ``token`` -> ``tokens.TokenValue``;
  ``reference`` -> the target id (``Patient/{id}`` or ``{id}``, ``str``); ``string`` -> ``StringValue``;
  ``_id`` -> the id (``str``).
- Unknown parameters are ignored and left out of ``canonical()`` (and so of the self link), unless
  ``strict`` (``Prefer: handling=strict``): then 400. ``_format`` and ``_pretty`` belong to the HTTP
  layer and are skipped here, strict or not.
- Modifiers: a known parameter accepts only the modifiers its table entry declares
  (``SearchParameter.modifiers``); any other modifier is 400 even when not strict, because ignoring
  one (``:not``, ``:missing``) would silently answer a different question.
- An empty value (``status=``) is ignored like an unknown parameter; an empty item in an OR list
  (``status=a,,b``) is 400.
- Control characters (NUL included) anywhere in a name or value are 400.
- ``_count``: default 20; 0 returns only the total; above 100 it is capped to 100 (the server may
  page as it likes); negative, non-integer or repeated is 400.
- ``_sort``: one of the values the resource allows (``sorts``), one key only; anything else is 400.
- ``_summary``: ``count`` (total only) and ``false`` (the default) are honoured; ``true``, ``text`` and
  ``data`` are not supported and treated like an unknown parameter (ignored, 400 when strict);
  any other value is 400.
- ``_total``: ``none``, ``estimate`` or ``accurate`` (kept in ``SearchQuery.total``); else 400.
- ``_page``: the opaque page token (``search.paging``), never part of ``canonical()``.
- Cost limits (``SearchTooCostly``): at most ``MAX_OR_VALUES`` OR values per occurrence,
  ``MAX_AND_GROUPS`` occurrences of one parameter and ``MAX_PARAMETERS`` parameters; values longer
  than ``MAX_VALUE_LENGTH`` are 400.

Usage::

    query = parse_query(event["multiValueQueryStringParameters"] or {}, ENCOUNTER_PARAMETERS,
                        strict=prefer_strict, sorts=ENCOUNTER_SORTS)
    query.values("status")    # [[TokenValue(...), TokenValue(...)], ...]: AND of OR groups
    query.count, query.sort, query.summary_count, query.total, query.page
    f"{base}/Encounter?{query.canonical()}"       # self link; page tokens bind query.query_key("Encounter")

Standard library only (plus this package's errors).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fhir_api.errors import InvalidRequest, SearchTooCostly
from fhir_api.search.dates import parse_date_param
from fhir_api.search.strings import normalize_text
from fhir_api.search.tokens import parse_token, split_escaped, unescape

PARAMETER_TYPES = frozenset(
    {"number", "date", "string", "token", "reference", "composite", "quantity", "uri"}
)

DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_OR_VALUES = 20
MAX_AND_GROUPS = 10
MAX_PARAMETERS = 30
MAX_VALUE_LENGTH = 1024

RESULT_PARAMETERS = frozenset({"_count", "_sort", "_summary", "_total", "_page"})
# Read by the HTTP layer (content negotiation); never a search criterion.
TRANSPORT_PARAMETERS = frozenset({"_format", "_pretty"})
TOTAL_MODES = frozenset({"none", "estimate", "accurate"})
UNSUPPORTED_SUMMARY_MODES = frozenset({"true", "text", "data"})

ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DIGITS_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class SearchParameter:
    """One row of a resource's search parameter table.

    ``type`` is FHIR's SearchParamType; ``expression`` the FHIRPath it indexes; ``definition`` the
    canonical URL of the standard SearchParameter; ``modifiers`` those this server supports;
    ``target`` the resource types a reference may point to; ``codes``, when set, every code the
    element can hold (a required binding: other codes match nothing); ``system`` the code system of
    a plain ``code`` element, for ``system|code`` values (``tokens.code_matches``).
    """

    name: str
    type: str
    expression: str
    documentation: str
    definition: str | None = None
    modifiers: tuple[str, ...] = ()
    target: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    system: str | None = None

    def __post_init__(self) -> None:
        if self.type not in PARAMETER_TYPES:
            raise ValueError(f"unknown search parameter type {self.type!r} for {self.name}")


def parameter_table(*parameters: SearchParameter) -> dict[str, SearchParameter]:
    """A name -> SearchParameter table (rejects a duplicated name)."""
    table: dict[str, SearchParameter] = {}
    for parameter in parameters:
        if parameter.name in table:
            raise ValueError(f"search parameter {parameter.name} declared twice")
        table[parameter.name] = parameter
    return table


@dataclass(frozen=True)
class StringValue:
    """A string search value: as sent (for ``:exact``) and normalized (for starts-with)."""

    raw: str
    normalized: str


@dataclass(frozen=True)
class ParameterGroup:
    """One occurrence of a parameter in the query: its modifier ("" when none) and its OR values."""

    name: str
    modifier: str
    values: tuple[Any, ...]
    raw: str

    @property
    def key(self) -> str:
        """The query-string name, modifier included (``name:exact``)."""
        return f"{self.name}:{self.modifier}" if self.modifier else self.name


@dataclass
class SearchQuery:
    """A parsed search: criteria per parameter (AND of OR groups) and the result parameters."""

    groups: dict[str, list[ParameterGroup]] = field(default_factory=dict)
    count: int = DEFAULT_COUNT
    sort: str | None = None
    summary_count: bool = False
    total: str | None = None
    page: str | None = None
    ignored: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        """Whether the query constrains parameter ``name``."""
        return bool(self.groups.get(name))

    def values(self, name: str) -> list[list[Any]]:
        """The parsed values of ``name``: a list of AND groups, each a list of OR values."""
        return [list(group.values) for group in self.groups.get(name, [])]

    def occurrences(self, name: str) -> list[ParameterGroup]:
        """The occurrences of ``name`` with their modifiers."""
        return list(self.groups.get(name, []))

    def canonical(self) -> str:
        """A stable, encoded query string of the recognised parameters (sorted; ``_page`` left out)."""
        pairs = [(group.key, group.raw) for groups in self.groups.values() for group in groups]
        pairs.append(("_count", str(self.count)))
        if self.sort:
            pairs.append(("_sort", self.sort))
        if self.summary_count:
            pairs.append(("_summary", "count"))
        if self.total:
            pairs.append(("_total", self.total))
        pairs.sort()
        return "&".join(f"{quote(key, safe=':')}={quote(value, safe=',|:/')}" for key, value in pairs)

    def query_key(self, resource_type: str) -> str:
        """What a page token is bound to: the resource type and the canonical query."""
        return f"{resource_type}?{self.canonical()}"


def _bad(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid search parameter '{name}': {message}")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def _single(name: str, values: Sequence[str]) -> str:
    if len(values) != 1:
        raise _bad(name, "may appear only once")
    return values[0]


def parse_count(raw: str) -> int:
    """``_count``: a non-negative integer, capped to ``MAX_COUNT``; ``InvalidRequest`` otherwise."""
    if not _DIGITS_RE.fullmatch(raw):
        raise _bad("_count", f"expected a non-negative integer, got {raw[:32]!r}")
    # Compare by length first: int() of thousands of digits is slow (and limited) for no gain.
    if len(raw.lstrip("0")) > 3:
        return MAX_COUNT
    return min(int(raw), MAX_COUNT)


def parse_reference(raw: str, parameter: SearchParameter, modifier: str) -> str:
    """A reference search value -> the target id. ``Type/{id}`` or ``{id}`` (or ``:Type`` + ``{id}``)."""
    targets = parameter.target or ("Patient",)
    if "/" in raw:
        parts = raw.split("/")
        if len(parts) != 2 or ":" in parts[0]:
            raise ValueError(f"expected {targets[0]}/{{id}} or {{id}}, got {raw[:64]!r}")
        resource_type, ident = parts
        if resource_type not in targets or (modifier and resource_type != modifier):
            raise ValueError(f"must reference {' or '.join(targets)}, not {resource_type}")
    else:
        ident = raw
    if not ID_RE.fullmatch(ident):
        raise ValueError(f"not a valid id: {ident[:64]!r}")
    return ident


def _parse_value(raw: str, parameter: SearchParameter, modifier: str, now: datetime | None) -> Any:
    if parameter.name == "_id":
        ident = unescape(raw)
        if not ID_RE.fullmatch(ident):
            raise ValueError(f"not a valid id: {ident[:64]!r}")
        return ident
    if parameter.type == "date":
        return parse_date_param(raw, now)
    if parameter.type == "token":
        return parse_token(raw)
    if parameter.type == "reference":
        return parse_reference(unescape(raw), parameter, modifier)
    if parameter.type == "string":
        text = unescape(raw)
        normalized = normalize_text(text)
        if not normalized:
            raise ValueError("a string search value needs at least one letter or digit")
        return StringValue(text, normalized)
    raise ValueError(f"parameters of type {parameter.type} are not supported")


def _parse_group(
    name: str, modifier: str, raw: str, parameter: SearchParameter, now: datetime | None
) -> ParameterGroup:
    if len(raw) > MAX_VALUE_LENGTH:
        raise _bad(name, f"value longer than {MAX_VALUE_LENGTH} characters")
    items = split_escaped(raw, ",")
    if len(items) > MAX_OR_VALUES:
        raise SearchTooCostly(f"Search parameter '{name}' has more than {MAX_OR_VALUES} values")
    values = []
    for item in items:
        if not item:
            raise _bad(name, "empty value in a comma-separated list")
        try:
            values.append(_parse_value(item, parameter, modifier, now))
        except ValueError as exc:
            raise _bad(name, str(exc)) from None
    return ParameterGroup(name, modifier, tuple(values), raw)


def parse_query(
    query: Mapping[str, Sequence[str] | str | None] | None,
    parameters: Mapping[str, SearchParameter],
    strict: bool,
    sorts: Collection[str] = (),
    now: datetime | None = None,
) -> SearchQuery:
    """Parse a search query (``multiValueQueryStringParameters``) against a parameter table.

    ``strict`` is ``Prefer: handling=strict``; ``sorts`` the ``_sort`` values the resource allows;
    ``now`` fixes the ``ap`` tolerance in tests. Raises ``InvalidRequest``/``SearchTooCostly`` (400).
    """
    result = SearchQuery()
    ignored: list[str] = []
    if not query:
        return result
    if len(query) > MAX_PARAMETERS:
        raise SearchTooCostly(f"A search takes at most {MAX_PARAMETERS} parameters")
    if not all(isinstance(key, str) for key in query):
        raise InvalidRequest("Search parameter names must be text")
    for key in sorted(query):
        given = query[key]
        # A single-valued mapping (queryStringParameters) gives a str: one value, not its characters.
        listed = [given] if isinstance(given, str) else list(given or [])
        raw_values = [value for value in listed if isinstance(value, str)]
        if _has_control(key) or any(_has_control(value) for value in raw_values):
            raise InvalidRequest("Search parameters must not contain control characters")
        if key in TRANSPORT_PARAMETERS:
            continue
        name, _, modifier = key.partition(":")
        if name in RESULT_PARAMETERS:
            if modifier:
                raise _bad(key, "result parameters take no modifier")
            _parse_result(result, name, raw_values, strict, sorts, ignored)
            continue
        parameter = parameters.get(name)
        if parameter is None:
            if strict:
                raise InvalidRequest(f"Unknown search parameter '{key}' (Prefer: handling=strict)")
            ignored.append(key)
            continue
        if modifier and modifier not in parameter.modifiers:
            raise _bad(key, f"modifier ':{modifier}' is not supported")
        present = [value for value in raw_values if value != ""]
        if not present:
            ignored.append(key)
            continue
        if len(present) + len(result.groups.get(name, [])) > MAX_AND_GROUPS:
            raise SearchTooCostly(f"Search parameter '{name}' is repeated more than {MAX_AND_GROUPS} times")
        groups = result.groups.setdefault(name, [])
        groups.extend(_parse_group(name, modifier, value, parameter, now) for value in present)
    result.ignored = tuple(ignored)
    return result


def _parse_result(
    result: SearchQuery,
    name: str,
    values: Sequence[str],
    strict: bool,
    sorts: Collection[str],
    ignored: list[str],
) -> None:
    if not values:
        return
    value = _single(name, values)
    if name == "_count":
        result.count = parse_count(value)
    elif name == "_sort":
        if value not in sorts:
            allowed = ", ".join(sorts) if sorts else "none"
            raise _bad(name, f"unsupported sort {value[:64]!r} (supported: {allowed})")
        result.sort = value
    elif name == "_summary":
        if value == "count":
            result.summary_count = True
        elif value in UNSUPPORTED_SUMMARY_MODES:
            if strict:
                raise _bad(name, f"_summary={value} is not supported (only count)")
            ignored.append(name)
        elif value != "false":
            raise _bad(name, f"expected count, true, text, data or false, got {value[:32]!r}")
    elif name == "_total":
        if value not in TOTAL_MODES:
            raise _bad(name, f"expected none, estimate or accurate, got {value[:32]!r}")
        result.total = value
    else:  # _page
        if not value:
            raise _bad(name, "empty page token")
        result.page = value
