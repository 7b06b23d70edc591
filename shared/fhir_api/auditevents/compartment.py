"""Whose data a resource is: the patient an audit record names beside the resource itself.

A Patient is its own patient; an Encounter belongs to the patient its ``subject`` references. Only
ids leave this module, never anything else of the resource.
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir_api.fhir.ids import FHIR_ID as _FHIR_ID
from fhir_api.store.types import StoredResource


def patient_of(stored: StoredResource) -> str | None:
    """The id of the patient ``stored`` is about, or None when it names none."""
    if stored.resource_type == "Patient":
        return stored.id
    if stored.listed_patient is not None:
        return stored.listed_patient
    subject = stored.document.get("subject") if isinstance(stored.document, dict) else None
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str):
        return None
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and _FHIR_ID.fullmatch(parts[-1]):
        return parts[-1]
    return None


def patient_ids(resources: Iterable[StoredResource]) -> tuple[str, ...]:
    """The distinct patients of ``resources``, in their order."""
    found: dict[str, None] = {}
    for stored in resources:
        patient = patient_of(stored)
        if patient is not None:
            found.setdefault(patient)
    return tuple(found)
