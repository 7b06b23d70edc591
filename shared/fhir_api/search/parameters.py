"""Search parameter tables and the parsing of a search request's query (FHIR R4 search).

A resource declares its parameters as ``dict[str, SearchParameter]`` (``resources.search_parameters``
holds the tables); ``parse_query`` turns API Gateway's ``multiValueQueryStringParameters`` into a
``SearchQuery`` or raises ``InvalidRequest`` / ``SearchTooCostly`` (400). Nothing else escapes for any input.

Semantics:

- A repeated parameter is AND (``date=ge2024-01-01&date=lt2024-02-01``); a comma inside one value is OR
  (``status=planned,arrived``); ``\\,`` is a literal comma.
- Parsed values, by parameter type: ``date`` -> ``dates.DateCriterion``; ``token`` -> ``tokens.TokenValue``;
  ``reference`` -> the target id (``Patient/{id}`` or ``{id}``, ``str``); ``string`` -> ``StringValue``;
  ``_id`` -> the id (``str``). A reference written as an absolute URL of this server
  (``{base}/Patient/{id}``, as ``fullUrl`` gives it) is read as the relative one (``local_references``,
  applied before parsing, ``search.references``); any other absolute URL is 400.
- Chains (``patient.family=x``, ``subject:Patient.identifier=s|v``): a reference parameter whose target
  type has a table in ``chained`` takes the target's parameters named there (one level, with their own
  modifiers); they are kept in ``SearchQuery.chains`` and searched on the target by the service.
- Handling (FHIR's ``Prefer: handling``): ``strict`` (the default) refuses with 400 whatever the
  server would not use: an unknown parameter, a modifier the table entry does not declare
  (``SearchParameter.modifiers``), any other chain or ``_has``, a result parameter that is not
  implemented (``_contained``, ``_graph``), an ``_include``/``_revinclude`` the resource does not offer,
  an ``_elements`` name the resource lacks, a parameter without a value (``status=``) and a code outside
  the required value set of a bound token (``status=made-up``). One OperationOutcome issue per query
  key names it (``expression``) and lists what the resource supports. Nothing is searched, since
  silently dropping a criterion would answer a wider question than the one asked. Lenient (``strict=False``,
  ``Prefer: handling=lenient``) leaves each of them out of the search and of ``canonical()`` (the self
  link) and reports it as a warning issue in ``SearchQuery.warnings``. ``_format`` and ``_pretty``
  belong to the HTTP layer and are skipped here.
- Value sets: a ``code`` or ``{system}|code`` value of a parameter with ``codes`` must be one of them
  (codes are case-sensitive). Under lenient handling the unknown code is dropped from its OR list; an
  OR list left with no code matches nothing and makes no query. A value in another code system
  (``http://example.org|finished``) or with no system (``|finished``) is valid and matches nothing.
- An empty item in an OR list (``status=a,,b``) is 400 under either handling.
- Control characters (NUL included) anywhere in a name or value are 400.
- ``_count``: default 20; 0 returns only the total; above 100 it is capped to 100 (the server may
  page as it likes); negative, non-integer or repeated is 400.
- ``_sort``: one of the values the resource allows (``sorts``), one key only; anything else is 400.
- ``_summary``: ``count`` (total only), ``true``, ``text``, ``data`` (``SearchQuery.summary``, for the
  presentation) and ``false`` (the default); any other value is 400. ``_elements=a,b`` (the names of
  ``elements``) cannot be combined with a ``_summary`` other than ``false`` (400).
- ``_include`` / ``_revinclude``: repeatable, each value one of ``includes`` / ``revincludes``.
- ``_total``: ``none``, ``estimate`` or ``accurate`` (kept in ``SearchQuery.total``); else 400.
  ``_totalMethod`` (Aidbox's name, which fhirpy's ``count()`` sends) is the same request, ``count``
  meaning ``accurate``; it is written as ``_total`` in ``canonical()``.
- ``_page``: the opaque page token (``search.paging``), never part of ``canonical()``.
- Cost limits (``SearchTooCostly``, 400 naming the parameter): at most ``MAX_OR_VALUES`` comma-separated
  values in one occurrence, ``MAX_AND_GROUPS`` occurrences of one parameter and ``MAX_PARAMETERS``
  parameters; values longer than ``MAX_VALUE_LENGTH`` are 400.

Usage::

    query = parse_query(event["multiValueQueryStringParameters"] or {}, ENCOUNTER_PARAMETERS,
                        strict=not prefer_lenient, sorts=ENCOUNTER_SORTS)
    query.values("status")    # [[TokenValue(...), TokenValue(...)], ...]: AND of OR groups
    query.count, query.sort, query.summary_count, query.total, query.page
    query.warnings                # lenient handling: what was left out, as warning issues
    f"{base}/Encounter?{query.canonical()}"       # self link; page tokens bind query.query_key("Encounter")

Standard library only (plus this package's errors).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fhir_api.errors import InvalidRequest, Issue, SearchTooCostly
from fhir_api.fhir.ids import FHIR_ID as ID_RE
from fhir_api.search.dates import parse_date_param
from fhir_api.search.handling import (
    SearchOptions,
    Unused,
    parse_elements,
    parse_includes,
)
from fhir_api.search.references import parse_reference
from fhir_api.search.strings import normalize_text
from fhir_api.search.tokens import TokenValue, parse_token, split_escaped, unescape

PARAMETER_TYPES = frozenset(
    {"number", "date", "string", "token", "reference", "composite", "quantity", "uri"}
)

DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_OR_VALUES = 20
MAX_AND_GROUPS = 10
MAX_PARAMETERS = 30
MAX_VALUE_LENGTH = 1024
# A chain may find at most this many resources (each is an index partition the search then reads).
MAX_CHAINED_MATCHES = 100
# _revinclude brings at most this many resources per page (HAPI caps them too).
MAX_REVINCLUDED = 100

RESULT_PARAMETERS = frozenset(
    {"_count", "_sort", "_summary", "_total", "_totalMethod", "_page", "_include", "_revinclude", "_elements"}
)
# FHIR result parameters this server does not implement (named as such when refused).
UNIMPLEMENTED_RESULT_PARAMETERS = frozenset({"_contained", "_containedType", "_graph"})
# Read by the HTTP layer (content negotiation); never a search criterion.
TRANSPORT_PARAMETERS = frozenset({"_format", "_pretty"})
TOTAL_MODES = frozenset({"none", "estimate", "accurate"})
# Aidbox's _totalMethod (sent by fhirpy's count()) -> the _total it means.
TOTAL_METHOD_MODES = {"none": "none", "estimate": "estimate", "accurate": "accurate", "count": "accurate"}
# _summary modes that subset the resources shown (``fhir.subsetting``); count and false are handled apart.
SUBSET_SUMMARY_MODES = frozenset({"true", "text", "data"})

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
    # Under lenient handling: what was left out of the search, one warning issue per query key.
    warnings: tuple[Issue, ...] = ()
    # Chained criteria: (the reference as written, ``patient`` or ``subject:Patient``, the target's group).
    chains: list[tuple[str, ParameterGroup]] = field(default_factory=list)
    # The ids the chains resolved to (set by the service before planning); None without chains.
    chain_matches: tuple[str, ...] | None = None
    include: tuple[str, ...] = ()
    revinclude: tuple[str, ...] = ()
    summary: str | None = None  # true, text or data
    elements: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        """Whether the query constrains parameter ``name``."""
        return bool(self.groups.get(name))

    def values(self, name: str) -> list[list[Any]]:
        """The parsed values of ``name``: a list of AND groups, each a list of OR values."""
        return [list(group.values) for group in self.groups.get(name, [])]

    def occurrences(self, name: str) -> list[ParameterGroup]:
        """The occurrences of ``name`` with their modifiers."""
        return list(self.groups.get(name, []))

    def revinclude_sources(self, offered: Mapping[str, tuple[str, str]]) -> list[tuple[str, str]]:
        """The (type, reference parameter) of each _revinclude asked, as ``offered`` maps them."""
        return [offered[value] for value in self.revinclude if value in offered]

    def chained_query(self) -> SearchQuery:
        """The chains' criteria as one search of their target (the single subject meets them all)."""
        target = SearchQuery()
        for _, group in self.chains:
            target.groups.setdefault(group.name, []).append(group)
        return target

    def canonical(self) -> str:
        """A stable, encoded query string of the recognised parameters (sorted; ``_page`` left out)."""
        pairs = [(group.key, group.raw) for groups in self.groups.values() for group in groups]
        pairs.extend((f"{reference}.{group.key}", group.raw) for reference, group in self.chains)
        pairs.extend(("_include", value) for value in self.include)
        pairs.extend(("_revinclude", value) for value in self.revinclude)
        if self.summary:
            pairs.append(("_summary", self.summary))
        if self.elements:
            pairs.append(("_elements", ",".join(self.elements)))
        pairs.append(("_count", str(self.count)))
        if self.sort:
            pairs.append(("_sort", self.sort))
        if self.summary_count:
            pairs.append(("_summary", "count"))
        if self.total:
            pairs.append(("_total", self.total))
        pairs.sort()
        return "&".join(f"{_quoted(key, _KEY_SAFE)}={_quoted(value, _VALUE_SAFE)}" for key, value in pairs)

    def query_key(self, resource_type: str) -> str:
        """What a page token is bound to: the resource type, the canonical query and, for a chained
        search, the subjects its chains resolved to (the token's partition cursors are theirs)."""
        key = f"{resource_type}?{self.canonical()}"
        if self.chain_matches is not None:
            digest = hashlib.sha256(",".join(sorted(self.chain_matches)).encode("utf-8")).hexdigest()
            key += f"#chain={digest}"
        return key


# The characters a canonical query writes as they are: ``quote``'s own safe ones and these.
_KEY_SAFE, _VALUE_SAFE = ":", ",|:/"
_AS_IS = {safe: re.compile(f"[A-Za-z0-9_.~{re.escape(safe)}-]*") for safe in (_KEY_SAFE, _VALUE_SAFE)}


def _quoted(text: str, safe: str) -> str:
    """``quote(text, safe=safe)``; a text with nothing to quote (most are) is returned without the work."""
    return text if _AS_IS[safe].fullmatch(text) else quote(text, safe=safe)


# Unicode's control characters (category Cc): exactly U+0000-U+001F and U+007F-U+009F.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _bad(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid search parameter '{name}': {message}", expression=(name,))


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _single(name: str, values: Sequence[str]) -> str:
    if len(values) != 1:
        raise _bad(name, "may appear only once")
    return values[0]


def _unsupported_reason(name: str, modifier: str, parameter: SearchParameter | None) -> str | None:
    """Why a query key (``name[:modifier]``) is not something this server searches by; None when it is."""
    if "." in name or "." in modifier:
        return "only the chains listed below are supported"
    if name == "_has":
        return "reverse chaining is not implemented"
    if name in RESULT_PARAMETERS or name in TRANSPORT_PARAMETERS:
        return f"{name} takes no modifier"
    if name in UNIMPLEMENTED_RESULT_PARAMETERS:
        return "a result parameter this server does not implement"
    if parameter is None:
        return "no such search parameter on this resource"
    if modifier and modifier not in parameter.modifiers:
        accepted = ", ".join(f":{m}" for m in parameter.modifiers)
        return f"{name} takes " + (f"only the modifier {accepted}" if accepted else "no modifier")
    return None


def outside_value_set(value: Any, parameter: SearchParameter) -> bool:
    """Whether a token names a code of the parameter's own code system that its value set lacks."""
    return (
        bool(parameter.codes)
        and isinstance(value, TokenValue)
        and value.code is not None
        and value.system in (None, parameter.system)
        and value.code not in parameter.codes
    )


def parse_count(raw: str) -> int:
    """``_count``: a non-negative integer, capped to ``MAX_COUNT``; ``InvalidRequest`` otherwise."""
    if not _DIGITS_RE.fullmatch(raw):
        raise _bad("_count", f"expected a non-negative integer, got {raw[:32]!r}")
    # Compare by length first: int() of thousands of digits is slow (and limited) for no gain.
    if len(raw.lstrip("0")) > 3:
        return MAX_COUNT
    return min(int(raw), MAX_COUNT)


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
    key: str, raw: str, parameter: SearchParameter, now: datetime | None, unused: Unused
) -> ParameterGroup:
    name, _, modifier = key.partition(":")
    if len(raw) > MAX_VALUE_LENGTH:
        raise _bad(key, f"value longer than {MAX_VALUE_LENGTH} characters")
    items = split_escaped(raw, ",")
    if len(items) > MAX_OR_VALUES:
        raise SearchTooCostly(
            f"Search parameter '{key}' has more than {MAX_OR_VALUES} comma-separated values",
            expression=(key,),
        )
    values: list[Any] = []
    kept: list[str] = []
    for item in items:
        if not item:
            raise _bad(key, "empty value in a comma-separated list")
        try:
            value = _parse_value(item, parameter, modifier, now)
        except ValueError as exc:
            raise _bad(key, str(exc)) from None
        if outside_value_set(value, parameter):
            # No resource can hold the code (a required binding): it can only match nothing.
            unused.unknown_code(key, parameter, value.code)
            continue
        values.append(value)
        kept.append(item)
    # The self link shows the codes used; a list with none keeps its text, so the link still matches nothing.
    return ParameterGroup(name, modifier, tuple(values), ",".join(kept) if kept else raw)


def parse_query(
    query: Mapping[str, Sequence[str] | str | None] | None,
    parameters: Mapping[str, SearchParameter],
    strict: bool,
    sorts: Collection[str] = (),
    now: datetime | None = None,
    options: SearchOptions | None = None,
) -> SearchQuery:
    """Parse a search query (``multiValueQueryStringParameters``) against a parameter table.

    ``strict`` refuses (400) what the server would not use, lenient (False) leaves it out with a warning
    in ``SearchQuery.warnings``; ``sorts`` the ``_sort`` values the resource allows (or ``options``, with
    its chains, includes and elements too); ``now`` fixes the ``ap`` tolerance in tests. Raises
    ``InvalidRequest``/``SearchTooCostly`` (400).
    """
    options = options or SearchOptions(sorts=sorts)
    result = SearchQuery()
    if not query:
        return result
    if len(query) > MAX_PARAMETERS:
        raise SearchTooCostly(f"A search takes at most {MAX_PARAMETERS} parameters")
    if not all(isinstance(key, str) for key in query):
        raise InvalidRequest("Search parameter names must be text")
    unused = Unused(strict, parameters, options)
    for key in sorted(query):
        given = query[key]
        # A single-valued mapping (queryStringParameters) gives a str: one value, not its characters.
        listed = [given] if isinstance(given, str) else list(given or [])
        raw_values = [value for value in listed if isinstance(value, str)]
        if _has_control(key) or any(_has_control(value) for value in raw_values):
            raise InvalidRequest("Search parameters must not contain control characters")
        if key in TRANSPORT_PARAMETERS:
            continue
        _parse_key(result, key, raw_values, parameters, options, now, unused)
    if result.elements and result.summary:
        raise _bad("_elements", "cannot be combined with _summary=" + result.summary)
    result.warnings = unused.finish()
    return result


def _parse_key(
    result: SearchQuery,
    key: str,
    raw_values: Sequence[str],
    parameters: Mapping[str, SearchParameter],
    options: SearchOptions,
    now: datetime | None,
    unused: Unused,
) -> None:
    """One query key: a result parameter, a chain or a criterion."""
    name, _, modifier = key.partition(":")
    if name in RESULT_PARAMETERS and not modifier:
        _parse_result(result, name, raw_values, options, unused)
    elif "." in key and (targets := _chain_target(key, parameters, options)) is not None:
        _parse_chain(result, key, raw_values, targets, now, unused)
    else:
        _parse_criterion(result, key, raw_values, parameters, now, unused)


def _chain_target(
    key: str, parameters: Mapping[str, SearchParameter], options: SearchOptions
) -> Mapping[str, SearchParameter] | None:
    """The parameters a chain ``reference[:Type].name`` may name, or None when the reference does not
    chain (an unknown parameter, not a reference, a type it cannot point to)."""
    head = key.partition(".")[0]
    name, _, modifier = head.partition(":")
    parameter = parameters.get(name)
    if parameter is None or parameter.type != "reference":
        return None
    if modifier:
        target = modifier if modifier in parameter.target else None
    else:
        target = parameter.target[0] if len(parameter.target) == 1 else None
    return options.chained.get(target) if target else None


def _parse_chain(
    result: SearchQuery,
    key: str,
    raw_values: Sequence[str],
    targets: Mapping[str, SearchParameter],
    now: datetime | None,
    unused: Unused,
) -> None:
    """Add the groups of a chained key (``patient.family:exact``), parsed with ``targets``, the
    parameter table of the type the chain reaches."""
    head, _, tail = key.partition(".")
    name, _, modifier = tail.partition(":")
    target = targets.get(name)
    reason: str | None = None
    if "." in tail:
        reason = "chains go one level deep"
    elif target is None:
        reason = f"a chain on {head} takes {', '.join(targets)}"
    else:
        reason = _unsupported_reason(name, modifier, target)
    present = _usable_values(key, raw_values, reason, unused)
    if present is None or target is None:  # target None comes with a reason
        return
    if len(present) + sum(1 for written, _ in result.chains if written == head) > MAX_AND_GROUPS:
        raise SearchTooCostly(
            f"Search parameter '{key}' is repeated more than {MAX_AND_GROUPS} times", expression=(key,)
        )
    for value in present:
        group = _parse_group(tail, value, target, now, unused)
        result.chains.append((head, group))


def _usable_values(
    key: str, raw_values: Sequence[str], unsupported: str | None, unused: Unused
) -> list[str] | None:
    """The non-empty values of ``key``; None when the key is not supported (``unsupported`` says why).
    An unsupported key and empty values are noted in ``unused``."""
    if unsupported is not None:
        unused.add(
            key,
            f"Search parameter '{key}' is not supported ({unsupported})",
            "it was ignored, so the results are not filtered by it",
        )
        return None
    present = [value for value in raw_values if value != ""]
    if len(present) < len(raw_values):
        unused.add(
            key,
            f"Search parameter '{key}' has no value",
            "it was ignored, so the results are not filtered by it",
            code="required",
        )
    return present


def _parse_criterion(
    result: SearchQuery,
    key: str,
    raw_values: Sequence[str],
    parameters: Mapping[str, SearchParameter],
    now: datetime | None,
    unused: Unused,
) -> None:
    """Add the AND groups of one query key (``name[:modifier]``), or note why it is not used."""
    name, _, modifier = key.partition(":")
    parameter = parameters.get(name)
    reason = _unsupported_reason(name, modifier, parameter)
    present = _usable_values(key, raw_values, reason, unused)
    if not present or parameter is None:  # no parameter comes with a reason
        return
    if len(present) + len(result.groups.get(name, [])) > MAX_AND_GROUPS:
        raise SearchTooCostly(
            f"Search parameter '{name}' is repeated more than {MAX_AND_GROUPS} times", expression=(name,)
        )
    groups = result.groups.setdefault(name, [])
    groups.extend(_parse_group(key, value, parameter, now, unused) for value in present)


def _parse_result(
    result: SearchQuery, name: str, values: Sequence[str], options: SearchOptions, unused: Unused
) -> None:
    if not values:
        return
    if name in ("_include", "_revinclude"):
        parse_includes(result, name, values, options, unused)
        return
    sorts = options.sorts
    value = _single(name, values)
    if name == "_count":
        result.count = parse_count(value)
    elif name == "_sort":
        if value not in sorts:
            allowed = ", ".join(sorts) if sorts else "none"
            raise _bad(name, f"unsupported sort {value[:64]!r} (supported: {allowed})")
        result.sort = value
    elif name == "_summary":
        _parse_summary(result, value, options, unused)
    elif name in ("_total", "_totalMethod"):
        modes = TOTAL_METHOD_MODES if name == "_totalMethod" else {mode: mode for mode in TOTAL_MODES}
        if value not in modes:
            raise _bad(name, f"expected {', '.join(sorted(modes))}, got {value[:32]!r}")
        if result.total is not None and result.total != modes[value]:
            raise _bad(name, "_total and _totalMethod ask for different totals")
        result.total = modes[value]
    elif name == "_elements":
        parse_elements(result, value, options, unused)
    else:  # _page
        if not value:
            raise _bad(name, "empty page token")
        result.page = value


def _parse_summary(result: SearchQuery, value: str, options: SearchOptions, unused: Unused) -> None:
    """``_summary``: count (the total only), a subset (true, text, data) where the resource allows
    one, or false."""
    if value == "count":
        result.summary_count = True
    elif value in SUBSET_SUMMARY_MODES and options.elements is not None:
        result.summary = value
    elif value in SUBSET_SUMMARY_MODES:
        unused.add(
            "_summary",
            f"_summary={value} is not supported (only count and false are)",
            "it was ignored, so whole resources are returned",
        )
    elif value != "false":
        raise _bad("_summary", f"expected count, true, text, data or false, got {value[:32]!r}")
