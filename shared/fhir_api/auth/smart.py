"""The SMART on FHIR configuration (App Launch 2.0, "Conformance"): what ``GET
/api/fhir/.well-known/smart-configuration`` answers, so that a client finds the token endpoint and
the scopes this server understands without reading its documentation.

Only backend services are supported: the client-credentials grant with ``system/`` scopes (and
``user/`` scopes on tokens that also name the user's role). It is generated from the route table, so
the scopes it lists are those ``fhir_api.auth.access`` grants.
"""

from __future__ import annotations

from typing import Any

from fhir_api.auth.scopes import V2_LETTERS
from fhir_api.routes import AUDIT_EVENT, RESOURCE_TYPES, SMART_PERMISSIONS
from fhir_api.settings import Settings

SMART_CAPABILITIES_BASE = (
    "client-confidential-asymmetric",
    "permission-v1",
    "permission-v2",
    "permission-user",
)
SYMMETRIC_METHODS = frozenset({"client_secret_basic", "client_secret_post"})


def supported_letters() -> str:
    """The SMART permission letters some route needs, in SMART's order (``cruds``)."""
    return "".join(letter for letter in V2_LETTERS if letter in SMART_PERMISSIONS.values())


def scopes_supported() -> list[str]:
    """Every scope worth requesting: all supported permissions, and read-only, per type and for ``*``."""
    letters = supported_letters()
    read_only = "".join(letter for letter in letters if letter in "rs")
    scopes = []
    for context in ("system", "user"):
        for resource_type in (*RESOURCE_TYPES, "*"):
            scopes += [f"{context}/{resource_type}.{letters}", f"{context}/{resource_type}.{read_only}"]
        # The audit trail only reads, and only when named: ``*`` stands for the clinical types.
        scopes.append(f"{context}/{AUDIT_EVENT}.{read_only}")
    return scopes


def auth_methods(settings: Settings) -> list[str]:
    """The token endpoint's client authentication methods, as configured."""
    return [method.strip() for method in settings.token_endpoint_auth_methods.split(",") if method.strip()]


def smart_configuration(settings: Settings) -> dict[str, Any] | None:
    """The SMART configuration document, or None when no token endpoint is configured."""
    if not settings.token_endpoint:
        return None
    methods = auth_methods(settings)
    capabilities = list(SMART_CAPABILITIES_BASE)
    if SYMMETRIC_METHODS & set(methods):
        capabilities.insert(1, "client-confidential-symmetric")
    return {
        "token_endpoint": settings.token_endpoint,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": methods,
        "scopes_supported": scopes_supported(),
        "capabilities": capabilities,
    }
