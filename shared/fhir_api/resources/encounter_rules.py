"""Encounter's rules beyond FHIR R4 (422, ``business-rule``): subject, period order, class codes, and
the status moves of ``lifecycle``. The reasons are Encounter's ``SAFETY_RULES``; docs/validation.md.

Imported by ``EncounterDefinition.check_rules`` when a write needs it, never by the read functions.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_api.errors import Issue
from fhir_api.fhir import fhirtime, terminology
from fhir_api.fhir.ids import reference_id
from fhir_api.fhir.issues import invalid_resource, json_objects, rule_violation, show
from fhir_api.fhir.validation import missing_required
from fhir_api.resources import lifecycle

_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_PERIOD_ELEMENTS = ("statusHistory", "classHistory", "participant", "location")
_SUBJECT_EXPECTED = "the subject must be a Patient of this server, as 'Patient/{id}'"


def check_encounter_rules(new: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Apply this server's Encounter rules to ``new`` (``previous`` is the stored version on update).

    Raises InvalidResource (400) for a missing required element, BusinessRuleViolation (422) otherwise.
    """
    missing = missing_required("Encounter", new)
    if missing:
        raise invalid_resource("Encounter", missing)
    issues = _subject_issues(new["subject"])
    issues += _period_issues(new.get("period"), "Encounter.period")
    for name in _PERIOD_ELEMENTS:
        for index, item in json_objects(new.get(name)):
            issues += _period_issues(item.get("period"), f"Encounter.{name}[{index}].period")
    issues += _class_issues(new.get("class"), "Encounter.class")
    for index, item in json_objects(new.get("classHistory")):
        issues += _class_issues(item.get("class"), f"Encounter.classHistory[{index}].class")
    if previous is not None:
        issues += _status_move_issues(previous.get("status"), new.get("status"))
    if issues:
        raise rule_violation(issues)


def _subject_issues(subject: object) -> list[Issue]:
    path = "Encounter.subject"
    if not isinstance(subject, dict):
        return [Issue("business-rule", f"{path}: {_SUBJECT_EXPECTED}", (path,))]
    issues = []
    kind = subject.get("type")
    if kind is not None and kind != "Patient":
        where = f"{path}.type"
        issues.append(Issue("business-rule", f"{where}: {_SUBJECT_EXPECTED}, not a {kind}", (where,)))
    reference = subject.get("reference")
    problem = _subject_reference_problem(reference)
    if problem is not None:
        where = f"{path}.reference" if reference is not None else path
        issues.append(Issue("business-rule", f"{where}: {problem}", (where,)))
    return issues


def _subject_reference_problem(reference: object) -> str | None:
    expected = _SUBJECT_EXPECTED
    if reference is None:
        return f"{expected}; a reference without 'reference' (identifier or display only) is not accepted"
    if not isinstance(reference, str):
        return expected
    if reference_id(reference, "Patient") is not None:
        return None
    if reference.startswith("#"):
        return f"{expected}; a contained patient ({show(reference)}) is not accepted"
    if _ABSOLUTE_URI.fullmatch(reference):
        return f"{expected}; an absolute reference ({show(reference)}) is not accepted"
    kind, _, rest = reference.partition("/")
    if kind != "Patient":
        return f"{expected}, not a {kind} reference ({show(reference)})"
    if "/_history/" in reference:
        return f"{expected}; a versioned reference ({show(reference)}) is not accepted"
    return f"{expected}; {show(rest)} is not a valid id (1-64 of A-Z a-z 0-9 - .)"


def _period_issues(period: object, path: str) -> list[Issue]:
    if not isinstance(period, dict):
        return []
    start, end = period.get("start"), period.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return []
    try:
        start_low = fhirtime.parse_range(start)[0]
        end_high = fhirtime.parse_range(end)[1]
    except ValueError:
        return []  # malformed values are validate_resource's to report
    # The end is before the start only when all the time it may denote is: "2024-03-15" ends after
    # "2024-03-15T10:00:00Z" starts. Canonical instants compare as strings.
    if end_high <= start_low:
        where = f"{path}.end"
        return [Issue("business-rule", f"{where} ({end}) is before {path}.start ({start})", (where,))]
    return []


def _class_issues(coding: object, path: str) -> list[Issue]:
    if not isinstance(coding, dict) or coding.get("system") != terminology.V3_ACT_CODE:
        return []
    code = coding.get("code")
    codes = terminology.ACT_ENCOUNTER_CODES
    if code is None or code in codes:
        return []
    where = f"{path}.code"
    message = (
        f"{where}: {show(code)} is not an ActEncounterCode ({codes.url}); "
        f"with system {terminology.V3_ACT_CODE} use one of: {', '.join(sorted(codes.codes))}"
    )
    return [Issue("business-rule", message, (where,))]


def _status_move_issues(old: object, new: object) -> list[Issue]:
    if not isinstance(old, str) or not isinstance(new, str) or lifecycle.can_move(old, new):
        return []
    moves = lifecycle.allowed_moves(old)
    allowed = ", ".join(status for status in lifecycle.STATUS_ORDER if status in moves)
    message = f"status cannot move from {old} to {new}; allowed: {allowed or f'none ({old} is final)'}"
    return [Issue("business-rule", message, ("Encounter.status",))]
