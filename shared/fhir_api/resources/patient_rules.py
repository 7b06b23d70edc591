"""Patient's rules beyond FHIR R4 (422, ``business-rule``): a birth date not in the future, a telecom
value with its system (FHIR's cpt-2). The reasons are Patient's ``SAFETY_RULES``; docs/validation.md.

Imported by ``PatientDefinition.check_rules`` when a write needs it, never by the read functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from fhir_api.errors import Issue
from fhir_api.fhir import fhirtime
from fhir_api.fhir.issues import invalid_resource, json_objects, rule_violation
from fhir_api.fhir.structure import primitive_problem

_UTC_PLUS_14 = dt.timedelta(hours=14)


def check_patient_rules(
    new: dict[str, Any], previous: dict[str, Any] | None, *, today: dt.date | None = None
) -> None:
    """Apply this server's Patient rules to ``new``; no rule depends on ``previous`` (kept for symmetry).

    ``today`` defaults to the current date in the earliest time zone (UTC+14).
    Raises BusinessRuleViolation (422); a malformed birthDate is InvalidResource (400).
    """
    issues: list[Issue] = []
    birth_date = new.get("birthDate")
    if birth_date is not None:
        issues += _birth_date_issues(birth_date, today or (dt.datetime.now(dt.UTC) + _UTC_PLUS_14).date())
    for index, contact_point in json_objects(new.get("telecom")):
        issues += _contact_point_issues(contact_point, f"Patient.telecom[{index}]")
    for index, contact in json_objects(new.get("contact")):
        for inner, contact_point in json_objects(contact.get("telecom")):
            issues += _contact_point_issues(contact_point, f"Patient.contact[{index}].telecom[{inner}]")
    if issues:
        raise rule_violation(issues)


def _birth_date_issues(value: object, today: dt.date) -> list[Issue]:
    path = "Patient.birthDate"
    problem = primitive_problem("date", value)
    if problem is not None:
        raise invalid_resource("Patient", [Issue("value", f"{path}: {problem}", (path,))])
    earliest_day = fhirtime.parse_range(str(value))[0][:10]
    if earliest_day > today.isoformat():
        return [Issue("business-rule", f"{path}: {value} is in the future", (path,))]
    return []


def _contact_point_issues(contact_point: Mapping[str, Any], path: str) -> list[Issue]:
    # FHIR's cpt-2. Formats are not checked: a number that looks odd is still the one the patient gave.
    if contact_point.get("system") is None and contact_point.get("value") is not None:
        where = f"{path}.system"
        return [Issue("business-rule", f"{where}: a telecom with a value needs a system (cpt-2)", (where,))]
    return []
