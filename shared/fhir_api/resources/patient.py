"""Patient (FHIR R4 4.0.1): its rules, its search terms, and its search plans.

A patient has many searchable values (identifiers, name parts, words of names), so each is a term
item of its own in the Patients table, found through ``term-index`` (``term`` -> ``termValue``);
identifier terms are built as for every type (``identifiers``):

| term item key                         | term                   | termValue             | unique |
| ------------------------------------- | ---------------------- | --------------------- | ------ |
| identifier|<hash of [system, value]> | identifier|<value>     | <system>|<id>         | yes    |
| family|<text>|<id> (also given, name) | family|<first letter>  | <text>|<id>           | no     |
| birthdate|<id>                        | birthdate              | <start instant>|<id>  | no     |
| gender|<id>                           | gender|<code>          | <id>                  | no     |
| all|<id>                              | all                    | <id>                  | no     |

A unique term is a claim: a second patient with the same identifier system and value is refused in
the same transaction that would store it. An identifier without a system is stored under
``identifier||<value>|<id>`` and claims nothing; one without a value has no term of its own and is
found by ``identifier=<system>|`` through the resources themselves. A claim's key hashes the pair as a
JSON array (``identifiers.identifier_claim_key``), so a ``|`` inside a system or value cannot make two
pairs meet.
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
from fhir_api.resources.search_parameters import PATIENT_PARAMETERS, PATIENT_SORTS, SUBJECT_INCLUDES
from fhir_api.search import dates, tokens
from fhir_api.search.parameters import SearchQuery
from fhir_api.search.strings import exact, name_terms
from fhir_api.store.types import ListedEntry, Listing, StoredResource, Term

NAME_PARAMETERS = ("family", "given", "name")
GENDER_SYSTEM = PATIENT_PARAMETERS["gender"].system

# Every refusal of a Patient beyond FHIR R4's own rules, and why it stays.
SAFETY_RULES: tuple[SafetyRule, ...] = (
    SafetyRule(
        "Patient.identifier",
        "a second patient with an identifier of the same system and value (an identifier without a "
        "system or without a value claims nothing)",
        409,
        "One medical record number on two patients leads to wrong-patient records and lets a conditional "
        "create (If-None-Exist) find the wrong person.",
    ),
    SafetyRule(
        "Patient.birthDate",
        "a date after today (today in UTC+14, the earliest time zone)",
        422,
        "Age drives dosing, screening and reference ranges; a birth in the future is always a data-entry "
        "error.",
    ),
    SafetyRule(
        "Patient.telecom",
        "a value without a system, in Patient.telecom and Patient.contact.telecom (FHIR's cpt-2)",
        422,
        "A number without its kind (phone, email, pager) cannot be used to reach the patient or the "
        "contact in an emergency.",
    ),
    SafetyRule(
        "Patient",
        "a delete while encounters still reference the patient as their subject (the answer names a few "
        "and says how many)",
        409,
        "An encounter whose patient is gone belongs to nobody's history: it could no longer be found by "
        "patient, reviewed or billed. Its encounters are deleted or moved first.",
    ),
    *shared_safety_rules("Patient"),
)


class PatientDefinition(ResourceDefinition):
    """The Patient resource."""

    resource_type = "Patient"
    search_parameters = PATIENT_PARAMETERS
    sort_parameters = PATIENT_SORTS
    revincludes = {value: ("Encounter", "subject") for value in SUBJECT_INCLUDES}
    subsettable = True
    conditional_create = True
    conditional_update = True
    safety_rules = SAFETY_RULES

    def check_rules(self, resource: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """birthDate not in the future, telecom values with a system (SAFETY_RULES)."""
        from fhir_api.resources.patient_rules import check_patient_rules

        check_patient_rules(resource, previous)

    def referrers(self, resource_id: str) -> list[Listing]:
        """The encounters whose subject the patient is: a patient with encounters is not deleted."""
        return [Listing("Encounter", "subject", (resource_id,))]

    def terms(self, resource: dict[str, Any], resource_id: str) -> list[Term]:
        """Every searchable value of the patient, one term item each."""
        found = {
            term.key: term for term in identifier_terms(resource.get("identifier"), resource_id, claim=True)
        }
        for parameter in NAME_PARAMETERS:
            for text in name_terms(resource.get("name"), parameter):
                key = f"{parameter}|{text}|{resource_id}"
                found[key] = Term(key, f"{parameter}|{text[:1]}", f"{text}|{resource_id}")
        if resource.get("birthDate"):
            low, _ = fhirtime.parse_range(str(resource["birthDate"]))
            key = f"birthdate|{resource_id}"
            found[key] = Term(key, "birthdate", f"{low}|{resource_id}")
        if resource.get("gender"):
            key = f"gender|{resource_id}"
            found[key] = Term(key, f"gender|{resource['gender']}", resource_id)
        key = f"all|{resource_id}"
        found[key] = Term(key, "all", resource_id)
        return list(found.values())

    def plan(self, query: SearchQuery) -> IdLookup | SearchPlan:
        """The most selective indexed parameter decides the terms listed; the rest is checked after."""
        if query.has("_id"):
            return IdLookup(intersection(query.values("_id")))
        for plan_by in (_plan_by_identifier, _plan_by_name, _plan_by_birthdate, _plan_by_gender):
            plan = plan_by(query)
            if plan is not None:
                return plan
        return _term_listing(("all",))

    def matches(self, stored: StoredResource, query: SearchQuery) -> bool:
        """Every criterion, checked on the resource."""
        resource = stored.document
        checks = (
            ("_id", lambda value: value == stored.id),
            ("identifier", lambda token: identifiers_match(token, resource.get("identifier"))),
            ("gender", lambda token: tokens.code_matches(token, resource.get("gender"), GENDER_SYSTEM)),
        )
        for name, test in checks:
            if not all_groups_match(query.values(name), test):
                return False
        for parameter in NAME_PARAMETERS:
            for occurrence in query.occurrences(parameter):
                if not any(
                    self._name_matches(resource, parameter, occurrence.modifier, value)
                    for value in occurrence.values
                ):
                    return False
        birth = fhirtime.parse_range(str(resource["birthDate"])) if resource.get("birthDate") else None
        if query.has("birthdate") and (
            birth is None or not dates.matches_all(query.values("birthdate"), *birth)
        ):
            return False
        updated = fhirtime.parse_range(stored.last_updated)
        return dates.matches_all(query.values("_lastUpdated"), *updated)

    def is_first_entry_of_resource(
        self, entry: ListedEntry, stored: StoredResource, query: SearchQuery
    ) -> bool:
        """A patient found through several of its name or identifier terms counts at the first of them."""
        parameter = entry.key.split("|", 1)[0]
        if parameter == "identifier":
            return is_first_identifier_entry(entry, stored.document.get("identifier"), stored.id, query)
        if parameter not in NAME_PARAMETERS:
            return True
        text = entry.order.rsplit("|", 1)[0]
        wanted = [value.normalized for group in query.values(parameter)[:1] for value in group]
        candidates = sorted(
            candidate
            for candidate in name_terms(stored.document.get("name"), parameter)
            if any(candidate.startswith(prefix) for prefix in wanted)
        )
        return not candidates or candidates[0] == text

    @staticmethod
    def _name_matches(resource: dict[str, Any], parameter: str, modifier: str, value: Any) -> bool:
        if modifier == "exact":
            return any(
                exact(value.raw, part)
                for name in resource.get("name") or []
                for part in _name_parts(name, parameter)
            )
        return any(term.startswith(value.normalized) for term in name_terms(resource.get("name"), parameter))


def _term_listing(
    terms: tuple[str, ...], prefixes: tuple[str, ...] = (), low: str | None = None, high: str | None = None
) -> SearchPlan:
    """The patients listed under ``terms``, their term values starting with ``prefixes`` (one per
    term) or within [low, high)."""
    return SearchPlan(Listing("Patient", "term", terms, low, high, prefixes))


def _plan_by_identifier(query: SearchQuery) -> SearchPlan | None:
    """The first ``identifier`` group, when each of its tokens has a value (``identifiers``)."""
    listing = identifier_listing("Patient", query)
    return SearchPlan(listing) if listing is not None else None


def _plan_by_name(query: SearchQuery) -> SearchPlan | None:
    """The first group of the first name parameter searched: terms by first letter, values by prefix."""
    for parameter in NAME_PARAMETERS:
        values = query.values(parameter)
        if values and all(value.normalized for value in values[0]):
            group = values[0]
            return _term_listing(
                tuple(f"{parameter}|{value.normalized[:1]}" for value in group),
                tuple(value.normalized for value in group),
            )
    return None


def _plan_by_birthdate(query: SearchQuery) -> IdLookup | SearchPlan | None:
    """``birthdate``: the birth dates within the bounds every criterion respects."""
    if not query.has("birthdate"):
        return None
    low, high = dates.key_bounds(query.values("birthdate"))
    if low is not None and high is not None and low >= high:
        return MATCHES_NOTHING  # contradictory dates
    return _term_listing(("birthdate",), (), low, high)


def _plan_by_gender(query: SearchQuery) -> SearchPlan | None:
    """The codes of the first ``gender`` group, when each token has one."""
    if not query.has("gender"):
        return None
    codes = [token.code for token in query.values("gender")[0]]
    return _term_listing(tuple(f"gender|{code}" for code in codes)) if all(codes) else None


def _name_parts(name: dict[str, Any], parameter: str) -> list[str]:
    from fhir_api.search.strings import NAME_PARTS

    parts: list[str] = []
    for element in NAME_PARTS[parameter]:
        value = name.get(element)
        parts.extend(value if isinstance(value, list) else [value] if isinstance(value, str) else [])
    return parts
