"""AuditEvent search: the parameter table, the plan (one Query on the term index at a time) and the
filter every found event must pass.

A search reads one index partition at a time, newest first by default: the one of its ``entity``,
``patient`` or ``agent`` value when it names a single one, else the months its ``date`` allows (the
retention period when it gives none), from the newest. Every other criterion is checked on the events
found. Like every search here it reads at most ``SEARCH_READ_BUDGET`` items per request; a page that
would read more ends early with a ``next`` link that continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_api import errors
from fhir_api.auditevents import events
from fhir_api.auditevents.store import AuditEventStore, TermPage
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.resources.base import all_groups_match
from fhir_api.search import dates
from fhir_api.search.parameters import SearchParameter, SearchQuery, parameter_table
from fhir_api.search.tokens import TokenValue, split_escaped, unescape
from fhir_api.store.budget import ReadBudget

SPEC = "http://hl7.org/fhir/SearchParameter"
PARAMETERS = parameter_table(
    SearchParameter(
        "date",
        "date",
        "AuditEvent.recorded",
        "When the request was recorded (every prefix).",
        f"{SPEC}/AuditEvent-date",
    ),
    SearchParameter(
        "entity",
        "reference",
        "AuditEvent.entity.what",
        "A resource the request touched: Encounter/{id} or Patient/{id} finds the events of every version.",
        f"{SPEC}/AuditEvent-entity",
        target=("Encounter", "Patient"),
    ),
    SearchParameter(
        "patient",
        "reference",
        "AuditEvent.entity.what.where(resolve() is Patient)",
        "A patient whose data the request read or changed (for a search, each patient returned).",
        f"{SPEC}/AuditEvent-patient",
        target=("Patient",),
    ),
    SearchParameter(
        "agent",
        "token",
        "AuditEvent.agent.who.identifier",
        "Who made the request: the token's sub (a machine client's client id too). Agents carry an "
        "identifier, not a reference, so the value is the identifier (escape a '|' in it as '\\|').",
    ),
    SearchParameter(
        "altid",
        "token",
        "AuditEvent.agent.altId",
        "The token's sub of the user who made the request.",
        f"{SPEC}/AuditEvent-altid",
    ),
    SearchParameter(
        "action",
        "token",
        "AuditEvent.action",
        "C create, R read, U update, D delete, E execute (search).",
        f"{SPEC}/AuditEvent-action",
        codes=("C", "R", "U", "D", "E"),
        system="http://hl7.org/fhir/audit-event-action",
    ),
    SearchParameter(
        "outcome",
        "token",
        "AuditEvent.outcome",
        "0 success, 4 refused or the client's error, 8 the server's.",
        f"{SPEC}/AuditEvent-outcome",
        codes=("0", "4", "8", "12"),
        system="http://hl7.org/fhir/audit-event-outcome",
    ),
    SearchParameter(
        "subtype",
        "token",
        "AuditEvent.subtype",
        "The FHIR interaction (read, vread, search-type, create...).",
        f"{SPEC}/AuditEvent-subtype",
        system=events.INTERACTION_SYSTEM,
    ),
)
SORTS = ("-date", "date")
# Driving terms, most selective first: a search that names one of these reads only its partition.
_DRIVERS = ("entity", "patient", "agent", "altid")


@dataclass
class Page:
    """One page of matches (JSON texts, in date order), where the next begins, and the total if known."""

    matches: list[str]
    resume: dict[str, Any] | None
    total: int | None


@dataclass(frozen=True)
class Partition:
    """One term to read, between bounds on ``recorded``."""

    term: str
    low: str | None
    high: str | None


def capability_entry() -> dict[str, Any]:
    """The CapabilityStatement's AuditEvent entry: read and search, nothing else."""
    return {
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "documentation": (
            "The audit trail: one AuditEvent per request (reads, searches, writes, refusals), recorded by "
            "the server within a minute. Auditors and admins read and search it; nobody creates, updates "
            "or deletes it through the API."
        ),
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {
                "name": p.name,
                **({"definition": p.definition} if p.definition else {}),
                "type": p.type,
                "documentation": p.documentation,
            }
            for p in PARAMETERS.values()
        ],
    }


def search(
    store: AuditEventStore,
    query: SearchQuery,
    raw_references: dict[str, list[list[str]]],
    resume: dict[str, Any] | None,
    budget: ReadBudget,
    retention_days: int,
    now: datetime | None = None,
) -> Page:
    """One page of the AuditEvents matching ``query`` (``count`` of them at most)."""
    ascending = query.sort == "date"
    partitions = plan(query, raw_references, retention_days, ascending, now or datetime.now(UTC))
    reading = _Reading(store, query, raw_references, budget, ascending)
    start_index = int(resume["p"]) if resume else 0
    start_key = resume.get("k") if resume else None
    for index in range(start_index, len(partitions)):
        key = start_key if index == start_index else None
        ended = reading.partition(index, partitions[index], key, last=index == len(partitions) - 1)
        if ended is not None:
            return ended
    return reading.end(first_page=resume is None)


@dataclass
class _Reading:
    """One search's walk over its partitions: the matches so far, and where the page after each begins
    (a count reads on, but shows one page)."""

    store: AuditEventStore
    query: SearchQuery
    raw_references: dict[str, list[list[str]]]
    budget: ReadBudget
    ascending: bool
    matches: list[str] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wants_all(self) -> bool:
        return self.query.summary_count or self.query.total == "accurate" or self.query.count == 0

    @property
    def limit(self) -> int | None:
        return None if self.wants_all else self.query.count

    def partition(
        self, index: int, partition: Partition, key: dict[str, Any] | None, last: bool
    ) -> Page | None:
        """Read one partition from ``key`` on; the page, when the search ends inside it."""
        while True:
            room = self.budget.free // 2  # half for the index, half for the events it leads to
            if room < 1:
                if self.wants_all:
                    raise errors.SearchTooCostly(
                        f"Counting these AuditEvents would read more than {self.budget.limit} items; narrow "
                        "the search (entity, patient, agent or a shorter date range)."
                    )
                return Page(self.matches, {"p": index, "k": key}, None)
            limit = self.limit
            wanted = room if limit is None else min(room, limit - len(self.matches))
            found = self.store.query_term(
                partition.term, partition.low, partition.high, self.ascending, wanted, key
            )
            self.budget.charge(found.scanned)
            texts = self.store.fetch([owner for owner, _ in found.entries])
            self.budget.charge(len(found.entries))
            page = self._take(index, found, texts, last)
            if page is not None:
                return page
            key = found.last_key
            if not key:
                return None

    def _take(self, index: int, found: TermPage, texts: dict[str, str], last: bool) -> Page | None:
        """Keep the matching events of one Query; the page, once it is full."""
        for position, (owner, entry_key) in enumerate(found.entries):
            text = texts.get(owner)
            if text is None or not matches_query(fhirjson.loads(text), self.query, self.raw_references):
                continue
            self.matches.append(text)
            self.after.append({"p": index, "k": entry_key})
            if self.limit is not None and len(self.matches) >= self.limit:
                more = position < len(found.entries) - 1 or bool(found.last_key) or not last
                return Page(self.matches, {"p": index, "k": entry_key} if more else None, None)
        return None

    def end(self, first_page: bool) -> Page:
        """The page once every partition is read."""
        total = len(self.matches) if first_page else None
        if not self.wants_all:
            return Page(self.matches, None, total)
        shown = [] if self.query.summary_count else self.matches[: self.query.count]
        more = bool(shown) and len(self.matches) > len(shown)
        return Page(shown, self.after[len(shown) - 1] if more else None, total)


def plan(
    query: SearchQuery,
    raw_references: dict[str, list[list[str]]],
    retention_days: int,
    ascending: bool,
    now: datetime,
) -> list[Partition]:
    """The partitions a search reads, in the order it reads them."""
    low, high = instant_bounds(query.values("date"))
    oldest = fhirtime.to_canonical(now - timedelta(days=retention_days + 31))
    # Past the present nothing is recorded yet; a minute's slack covers clocks a little ahead.
    newest = fhirtime.to_canonical(now + timedelta(minutes=1))
    if low is not None and high is not None and low >= high:
        return []
    for name in _DRIVERS:
        groups = query.values(name)
        if groups and len(groups[0]) == 1:
            term = _driving_term(name, groups[0][0], raw_references.get(name, [[]])[0])
            if term is not None:
                return [Partition(term, low, high)]
    first = max(low or oldest, oldest)
    last = min(high or newest, newest)
    if first >= last:
        return []
    months = list(_months(first[:7], last[:7]))
    if not ascending:
        months.reverse()
    return [Partition(events.month_term(month), low, high) for month in months]


def instant_bounds(groups: list[list[dates.DateCriterion]]) -> tuple[str | None, str | None]:
    """The tightest ``[low, high)`` on ``recorded`` that the date criteria (AND of OR groups) allow.

    ``recorded`` is one instant, not a range, so ``ge``, ``gt``, ``le`` and ``lt`` bound it too
    (``dates.key_bounds`` cannot bound a period's start by them)."""
    low: str | None = None
    high: str | None = None
    for group in groups:
        bounds = [_criterion_bounds(criterion) for criterion in group]
        lows, highs = [b[0] for b in bounds], [b[1] for b in bounds]
        if lows and None not in lows:
            group_low = min(str(value) for value in lows)
            low = group_low if low is None else max(low, group_low)
        if highs and None not in highs:
            group_high = max(str(value) for value in highs)
            high = group_high if high is None else min(high, group_high)
    return low, high


def _criterion_bounds(criterion: dates.DateCriterion) -> tuple[str | None, str | None]:
    prefix = criterion.prefix
    if prefix in ("eq", "ap"):
        return criterion.low, criterion.high
    if prefix == "ge":
        return criterion.low, None
    if prefix in ("gt", "sa"):
        return criterion.high, None
    if prefix == "le":
        return None, criterion.high
    if prefix in ("lt", "eb"):
        return None, criterion.low
    return None, None  # ne: on either side


def _driving_term(name: str, value: Any, raw: list[str]) -> str | None:
    if name == "entity":
        # Patients are indexed as patients; an id without its type could be either, so it drives nothing.
        written = raw[0] if raw else ""
        if "/" not in written:
            return None
        return f"patient|{value}" if written.startswith("Patient/") else f"entity|{value}"
    if name == "patient":
        return f"patient|{value}"
    if isinstance(value, TokenValue) and value.code and not value.system:
        return f"agent|{value.code}"
    return None


def _months(first: str, last: str) -> Iterator[str]:
    year, month = int(first[:4]), int(first[5:7])
    while f"{year:04d}-{month:02d}" <= last:
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def raw_references(query: SearchQuery) -> dict[str, list[list[str]]]:
    """The reference values as written (``Encounter/1``), per AND group (the parsed value is the id)."""
    found: dict[str, list[list[str]]] = {}
    for name in ("entity", "patient"):
        found[name] = [
            [unescape(item) for item in split_escaped(group.raw, ",")] for group in query.occurrences(name)
        ]
    return found


def matches_query(event: dict[str, Any], query: SearchQuery, raw: dict[str, list[list[str]]]) -> bool:
    """Whether a stored AuditEvent meets every criterion of ``query`` (AND of OR groups)."""
    recorded = fhirtime.parse_range(str(event.get("recorded")))
    if not dates.matches_all(query.values("date"), recorded[0], recorded[1]):
        return False
    references = events.references(event)
    patients = events.patients(event)
    agents = events.agents(event)
    alt_ids = [agent.get("altId") for agent in event.get("agent") or () if agent.get("altId")]
    subtypes = events.subtypes(event)
    action_system, outcome_system = PARAMETERS["action"].system, PARAMETERS["outcome"].system
    checks: tuple[tuple[list[list[Any]], Callable[[Any], bool]], ...] = (
        (raw.get("entity", []), lambda value: _references_match(value, references)),
        (query.values("patient"), lambda value: value in patients),
        (query.values("agent"), lambda value: _identifier_matches(value, agents)),
        (query.values("altid"), lambda value: _identifier_matches(value, alt_ids)),
        (query.values("action"), lambda value: value.matches(action_system, event.get("action"))),
        (query.values("outcome"), lambda value: value.matches(outcome_system, event.get("outcome"))),
        (query.values("subtype"), lambda value: any(value.matches(*subtype) for subtype in subtypes)),
    )
    return all(all_groups_match(groups, test) for groups, test in checks)


def _references_match(value: str, references: list[str]) -> bool:
    if "/" in value:
        return value in references
    return any(reference.split("/")[1] == value for reference in references)


def _identifier_matches(value: TokenValue, identifiers: list[str]) -> bool:
    if value.system:
        # A '|' the client left unescaped splits the identifier; read the two halves back as one.
        return f"{value.system}|{value.code or ''}" in identifiers
    return value.code in identifiers  # agents' identifiers have no system: "|sub" is "sub"
