"""FHIR documents and helpers the tests share: the API page's example Encounter, and edits of documents."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# The example request body of the API page ("Create Encounter"), verbatim.
SEED_ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "status": "finished",
    "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
    "type": [
        {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up"}
            ]
        }
    ],
    "subject": {"reference": "Patient/65f1234567890abcdef12345"},
    "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00Z"},
    "reasonCode": [
        {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "390906007", "display": "Follow-up encounter"}
            ]
        }
    ],
}


def minimal_encounter(patient_id: str, **elements: Any) -> dict[str, Any]:
    """The smallest Encounter this server accepts, for ``patient_id``, with ``elements`` added or replaced."""
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": V3_ACT_CODE, "code": "AMB"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    return {**encounter, **elements}


def changed(document: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """A deep copy of ``document`` with ``change`` applied to it."""
    copied = copy.deepcopy(document)
    change(copied)
    return copied


def set_path(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A change setting the element at a dotted path (``period.start``, ``identifier.0.system``)."""

    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change
