"""What validation reports: the 400 and 422 errors carrying one issue per fault, values quoted short.

Shared by the structure walk (``fhir_api.fhir.structure``) and each resource type's rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhir_api.errors import BusinessRuleViolation, InvalidResource, Issue

_SHOWN = 60


def invalid_resource(resource_type: str, issues: list[Issue]) -> InvalidResource:
    """The 400 for a body that is not a valid FHIR R4 ``resource_type``."""
    return InvalidResource(
        diagnostics=_summary(f"The {resource_type} is not valid FHIR R4", issues),
        expression=issues[0].expression,
        issues=issues,
    )


def rule_violation(issues: list[Issue]) -> BusinessRuleViolation:
    """The 422 for a well-formed resource that breaks a rule of this server."""
    return BusinessRuleViolation(
        diagnostics=_summary("The resource breaks a rule of this server", issues),
        expression=issues[0].expression,
        issues=issues,
    )


def show(value: object) -> str:
    """A value as a message quotes it: its repr, cut to 60 characters (a body may be hostile)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def json_objects(value: object) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects of a JSON array with their index (an issue names ``element[index]``); nothing for
    anything else, which the structure walk reports."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _summary(headline: str, issues: list[Issue]) -> str:
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{headline}: {issues[0].diagnostics}{more}"
