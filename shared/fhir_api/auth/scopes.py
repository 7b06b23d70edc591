"""SMART on FHIR scopes (App Launch 2.0, "Scopes and Launch Context"): parsing and what they grant.

A clinical scope is ``<context>/<resource type>.<permissions>[?<query>]``:

- context ``system`` (a backend service, no user), ``user`` (an app acting for a user) or ``patient``;
- resource type one of ``fhir_api.routes.SCOPE_TYPES`` or ``*`` (the clinical ``RESOURCE_TYPES``: the
  audit trail is granted only by name, ``system/AuditEvent.rs``);
- permissions SMART v2 letters in the order c, r, u, d, s (``cruds``, ``rs``, ``cu``...; each at
  most once), or the v1 words ``read`` (= ``rs``), ``write`` (= ``cud``) and ``*`` (= ``cruds``).

What grants nothing (the scope is ignored, never an error): letters out of order or repeated,
unknown resource types, scopes with a query (``?category=...``: this server cannot restrict a search
or a read to matching resources, so it grants nothing rather than too much), and every scope that is
not a clinical scope (``openid``, ``launch``, ``offline_access``, a provider's own scopes).
``patient/`` scopes are recognised so that they can be refused by name: this server does not enforce
patient compartments yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_api.routes import RESOURCE_TYPES, SCOPE_TYPES

CONTEXTS = ("system", "user", "patient")
V2_LETTERS = "cruds"
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
MAX_SCOPES = 100
MAX_SCOPE_LENGTH = 128

_CLINICAL_SCOPE = re.compile(
    r"(?P<context>system|user|patient)/(?P<type>\*|[A-Z][A-Za-z]{0,63})\."
    r"(?P<permissions>c?r?u?d?s?|read|write|\*)(?:\?(?P<query>.*))?",
    flags=re.DOTALL,
)


@dataclass(frozen=True)
class Scope:
    """A well-formed SMART clinical scope: context, resource type (or ``*``) and permission letters."""

    text: str
    context: str
    resource_type: str
    permissions: str
    has_query: bool

    def grants(self) -> frozenset[tuple[str, str]]:
        """The (resource type, permission letter) pairs this scope allows; none for a query scope."""
        if self.has_query:
            return frozenset()
        types = RESOURCE_TYPES if self.resource_type == "*" else (self.resource_type,)
        return frozenset(
            (resource_type, letter)
            for resource_type in types
            if resource_type in SCOPE_TYPES
            for letter in self.permissions
        )


def parse_scope(text: str) -> Scope | None:
    """The clinical scope ``text`` names, or None when it is not one (or not a valid one)."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_SCOPE_LENGTH:
        return None
    found = _CLINICAL_SCOPE.fullmatch(text)
    if found is None or not found["permissions"]:
        return None
    permissions = V1_PERMISSIONS.get(found["permissions"], found["permissions"])
    return Scope(
        text=text,
        context=found["context"],
        resource_type=found["type"],
        permissions=permissions,
        has_query=found["query"] is not None,
    )


def scopes_from_claims(claims: dict[str, Any]) -> tuple[str, ...]:
    """The clinical scopes a token carries, as written: ``scope`` (space-separated, RFC 8693/9068)
    or ``scp`` (a list, or a space-separated string). Anything that is not a clinical scope is left out."""
    found: list[str] = []
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        candidates: list[Any] = (
            value.split() if isinstance(value, str) else value if isinstance(value, list) else []
        )
        for candidate in candidates[:MAX_SCOPES]:
            if isinstance(candidate, str) and parse_scope(candidate) is not None and candidate not in found:
                found.append(candidate)
    return tuple(found)


def parse_scopes(texts: tuple[str, ...] | list[str]) -> list[Scope]:
    """The clinical scopes among ``texts`` (others dropped)."""
    return [scope for scope in (parse_scope(text) for text in texts) if scope is not None]
