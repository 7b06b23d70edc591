"""Encounter (FHIR R4 4.0.1): its rules, the attributes its indexes need, and its search plans.

A search lists the encounters of its subjects (``subject``/``patient``), with its statuses
(``status``), or every encounter ("today's encounters"), each in period-start order; the store picks
the index (``store/indexes.py``), keyed on the attributes ``index_attributes`` writes. An
``identifier`` (visit number) search lists the encounter's identifier terms instead: term items in
the Encounters table, found through its ``term-index`` (``resources.identifiers``).
"""

from __future__ import annotations

from typing import Any

from fhir_api.fhir import fhirtime
from fhir_api.resources.base import (
    MATCHES_NOTHING,
    IdLookup,
    ResourceDefinition,
    SafetyRule,
    SearchPlan,
    all_groups_match,
    intersection,
    shared_safety_rules,
)
from fhir_api.resources.identifiers import (
    identifier_listing,
    identifier_terms,
    identifiers_match,
    is_first_identifier_entry,
)
from fhir_api.resources.search_parameters import (
    ENCOUNTER_CHAINS,
    ENCOUNTER_PARAMETERS,
    ENCOUNTER_SORTS,
    SUBJECT_INCLUDES,
)
from fhir_api.search import dates, tokens
from fhir_api.search.parameters import SearchQuery
from fhir_api.settings import Settings
from fhir_api.store.indexes import partition_attributes
from fhir_api.store.types import EVERY, ListedEntry, Listing, StoredResource, Term

SUBJECT_PARAMETERS = ("subject", "patient")
STATUS_SYSTEM = ENCOUNTER_PARAMETERS["status"].system


def subject_id(resource: dict[str, Any]) -> str:
    """The patient id of ``subject.reference`` ("Patient/<id>"); the rules refuse any other subject."""
    from fhir_api.fhir.ids import reference_id

    return reference_id((resource.get("subject") or {}).get("reference"), "Patient") or ""


# Every refusal of an Encounter beyond FHIR R4's own rules, and why it stays.
SAFETY_RULES: tuple[SafetyRule, ...] = (
    SafetyRule(
        "Encounter.subject",
        "missing (FHIR allows 0..1)",
        400,
        "An encounter without a patient belongs to nobody's history: it cannot be found, reviewed or billed.",
    ),
    SafetyRule(
        "Encounter.subject",
        "anything but a literal `Patient/{id}` of a patient this server holds (contained, absolute, "
        "versioned, identifier-only or other-type references)",
        422,
        "The patient is checked in the write's own transaction, so no encounter points at a record that "
        "does not exist or that this server cannot check.",
    ),
    SafetyRule(
        "Encounter.period",
        "an end wholly before the start, in the encounter's period and in those of statusHistory, "
        "classHistory, participant and location (FHIR's per-1)",
        422,
        "A visit that ends before it starts lands in the wrong place on the patient's timeline and in date "
        "searches.",
    ),
    SafetyRule(
        "Encounter.class",
        "a code of the v3-ActCode system that is not an ActEncounterCode (R4's binding is extensible)",
        422,
        "In that system anything else is a typo or a code of another kind (e.g. `amb`, `EMERG`); the "
        "encounter would drop out of class searches such as today's emergency visits.",
    ),
    SafetyRule(
        "Encounter.status",
        "an update outside the lifecycle planned -> arrived -> triaged -> in-progress <-> onleave -> "
        "finished (cancelled only before in-progress; finished and cancelled final; any to "
        "entered-in-error; known never back to unknown)",
        422,
        "What happened to a patient is not rewritten: a finished visit cannot be reopened or cancelled, and "
        "a mistake is marked entered-in-error, which every reader sees.",
    ),
    *shared_safety_rules("Encounter"),
)


class EncounterDefinition(ResourceDefinition):
    """The Encounter resource."""

    resource_type = "Encounter"
    search_parameters = ENCOUNTER_PARAMETERS
    sort_parameters = ENCOUNTER_SORTS
    chained_parameters = ENCOUNTER_CHAINS
    includes = {value: "Patient" for value in SUBJECT_INCLUDES}
    subsettable = True
    safety_rules = SAFETY_RULES
    conditional_create = True
    conditional_update = True

    def check_rules(self, resource: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """Required elements, subject, period order, class codes and the status lifecycle."""
        from fhir_api.resources.encounter_rules import check_encounter_rules

        check_encounter_rules(resource, previous)

    def references(self, resource: dict[str, Any]) -> list[tuple[str, str]]:
        """The subject Patient must exist: checked in the write's own transaction."""
        return [("Patient", subject_id(resource))]

    def terms(self, resource: dict[str, Any], resource_id: str) -> list[Term]:
        """One term item per identifier with a value (visit numbers); an encounter without identifiers
        writes none. Visit numbers are not unique in FHIR, so none is a claim."""
        return identifier_terms(resource.get("identifier"), resource_id, claim=False)

    def index_attributes(
        self, resource: dict[str, Any], resource_id: str, settings: Settings
    ) -> dict[str, str]:
        """The status and period bounds, and the partitions that list the encounter by subject, by
        status and among every encounter (the store shards the hot ones)."""
        start, end = fhirtime.period_range(resource.get("period"))
        status = str(resource["status"])
        listed_under = {"subject": subject_id(resource), "status": status, EVERY: None}
        return {
            **partition_attributes(self.resource_type, listed_under, resource_id, settings.index_shards),
            "status": status,
            "periodStart": start,
            "periodEnd": end,
        }

    def plan(self, query: SearchQuery) -> IdLookup | SearchPlan:
        """``_id`` reads by id; else the encounters of the subjects, with the statuses, or all of them,
        in period-start order bounded by the date criteria."""
        if query.has("_id"):
            return IdLookup(intersection(query.values("_id")))
        low, high = dates.key_bounds(query.values("date"))
        if low is not None and high is not None and low >= high:
            return MATCHES_NOTHING  # contradictory dates
        chained = [list(query.chain_matches)] if query.chain_matches is not None else []
        if chained and not chained[0]:
            return MATCHES_NOTHING  # the chains found no patient
        subject_named = bool(chained) or _has_subject(query)
        identifiers = identifier_listing(self.resource_type, query)
        if identifiers is not None and not (query.sort in ("date", "-date") or subject_named):
            # A visit number names one or a few encounters: its terms are the narrowest listing.
            return SearchPlan(identifiers, _in_memory_sort(query))
        if subject_named:
            by, keys = "subject", intersection(chained + query.values("subject") + query.values("patient"))
        elif (statuses := _indexed_statuses(query)) is not None:
            by, keys = "status", statuses
        else:
            by, keys = EVERY, ()
        listing = Listing(self.resource_type, by, keys, low, high, descending=query.sort == "-date")
        return SearchPlan(listing, _in_memory_sort(query))

    def entry_may_match(self, entry: ListedEntry, query: SearchQuery) -> bool:
        """The date criteria, decided on the listed entry's period bounds (identifier entries hold none)."""
        if entry.key.startswith("identifier|"):
            return True
        return _period_matches(query, entry.order, entry.order_end or fhirtime.MAX_INSTANT)

    def index_decides(self, query: SearchQuery) -> bool:
        """True when the query holds only dates and the parameter whose index answers it."""
        if query.has("identifier"):
            return False
        used = set(query.groups) - {"date"}
        if used <= set(SUBJECT_PARAMETERS):
            return True
        return used == {"status"} and _indexed_statuses(query) is not None

    def matches(self, stored: StoredResource, query: SearchQuery) -> bool:
        """Every criterion, checked on the resource."""
        resource = stored.document
        if not all_groups_match(query.values("_id"), lambda value: value == stored.id):
            return False
        patient = subject_id(resource)
        if query.chain_matches is not None and patient not in query.chain_matches:
            return False
        for name in SUBJECT_PARAMETERS:
            if not all_groups_match(query.values(name), lambda value: value == patient):
                return False
        status = resource.get("status")
        if not all_groups_match(
            query.values("status"), lambda token: tokens.code_matches(token, status, STATUS_SYSTEM)
        ):
            return False
        if not all_groups_match(
            query.values("identifier"), lambda token: identifiers_match(token, resource.get("identifier"))
        ):
            return False
        if not all_groups_match(
            query.values("class"), lambda token: tokens.coding_matches(token, resource.get("class"))
        ):
            return False
        if not all_groups_match(
            query.values("type"), lambda token: tokens.token_matches(token, resource.get("type") or [])
        ):
            return False
        if not _period_matches(query, *fhirtime.period_range(resource.get("period"))):
            return False
        updated = fhirtime.parse_range(stored.last_updated)
        return dates.matches_all(query.values("_lastUpdated"), *updated)

    def is_first_entry_of_resource(
        self, entry: ListedEntry, stored: StoredResource, query: SearchQuery
    ) -> bool:
        """An encounter found through two of its identifier terms counts at the first of them."""
        if not entry.key.startswith("identifier|"):
            return True
        return is_first_identifier_entry(entry, stored.document.get("identifier"), stored.id, query)


def _has_subject(query: SearchQuery) -> bool:
    return query.has("subject") or query.has("patient")


def _in_memory_sort(query: SearchQuery) -> tuple[str, bool] | None:
    """``_sort=_lastUpdated`` sorts the matches in memory: no index is ordered by it."""
    if query.sort in ("_lastUpdated", "-_lastUpdated"):
        return ("last_updated", query.sort.startswith("-"))
    return None


def _indexed_statuses(query: SearchQuery) -> tuple[str, ...] | None:
    """The statuses the status index answers ``status`` with exactly; None when it cannot (a token
    without a code, or of another code system)."""
    groups = query.values("status")
    if not groups or any(
        token.code is None or token.system not in (None, STATUS_SYSTEM) for group in groups for token in group
    ):
        return None
    return intersection([[token.code for token in group] for group in groups])


def _period_matches(query: SearchQuery, start: str, end: str) -> bool:
    """The date criteria against a period; an encounter without one has no date to match."""
    criteria = query.values("date")
    if criteria and (start, end) == (fhirtime.MIN_INSTANT, fhirtime.MAX_INSTANT):
        return False
    return dates.matches_all(criteria, start, end)
