"""The first gate of a create or update: is the body a valid FHIR R4 resource of its type (400)?

``validate_resource`` checks the structure (``fhir_api.fhir.structure``, on the models of
``fhir_api.fhir.models``); each resource type's own rules (422) are in ``fhir_api.resources``. What is
refused, with which answer: docs/validation.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from fhir_api.errors import Issue
from fhir_api.fhir import models
from fhir_api.fhir.issues import invalid_resource, show
from fhir_api.fhir.structure import structure_issues

# The server sets these; a client's are dropped before validation (ignored, not refused).
SERVER_SET_ELEMENTS = ("id", "meta")

# Elements this server requires beyond FHIR's own cardinalities (refused as structure: 400).
REQUIRED_ELEMENTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"Encounter": ("status", "class", "subject"), "Patient": (), "Subscription": ()}
)


def validate_resource(resource_type: str, document: object) -> dict[str, Any]:
    """Validate ``document`` as a FHIR R4 ``resource_type``; return it as sent, minus ``id`` and ``meta``.

    Raises InvalidResource (400) naming every faulty element.
    """
    model = models.resource_model(resource_type)
    if not isinstance(document, dict):
        message = f"the body must be a JSON object (a {resource_type} resource)"
        raise invalid_resource(resource_type, [Issue("structure", message, (resource_type,))])
    sent_type = document.get("resourceType")
    if sent_type != resource_type:
        where = (f"{resource_type}.resourceType",)
        if sent_type is None:
            issue = Issue("required", f"resourceType is missing; it must be {resource_type!r}", where)
        else:
            issue = Issue(
                "structure", f"resourceType must be {resource_type!r}, not {show(sent_type)}", where
            )
        raise invalid_resource(resource_type, [issue])

    body = {key: value for key, value in document.items() if key not in SERVER_SET_ELEMENTS}
    issues = structure_issues(model, body, resource_type)
    issues.extend(_unless_known(issues, missing_required(resource_type, body)))
    # No second pass through the pydantic model: the walk refuses everything the model refuses
    # (tests/unit/test_validation_walk_covers_model.py holds it to that), at half the model's cost.
    if issues:
        raise invalid_resource(resource_type, issues)
    return body


def load_model(resource_type: str) -> None:
    """Load the element tables of ``resource_type`` now rather than at the first validation."""
    models.elements(models.resource_model(resource_type))


def missing_required(resource_type: str, body: Mapping[str, Any]) -> list[Issue]:
    """An issue for each of ``REQUIRED_ELEMENTS`` that ``body`` lacks."""
    issues = []
    for name in REQUIRED_ELEMENTS[resource_type]:
        if body.get(name) is None:
            path = f"{resource_type}.{name}"
            issues.append(Issue("required", f"{path} is required", (path,)))
    return issues


def _unless_known(known: list[Issue], found: Iterable[Issue]) -> list[Issue]:
    seen = {expression for issue in known for expression in issue.expression}
    return [issue for issue in found if not seen.intersection(issue.expression)]
