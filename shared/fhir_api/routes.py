"""The route table and the role table: which function serves which route, and which role (or which
SMART on FHIR scope permission) may call it.

This is the only copy of both facts. The authorizer's policy, the CapabilityStatement, the local
gateway's checks and the tests all read it; template.yaml is checked against it by a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

API_PREFIX = "/api/fhir"
RESOURCE_TYPES = ("Encounter", "Patient")
# The audit trail's resource: read and searched by auditors and admins, written only by the recorder.
AUDIT_EVENT = "AuditEvent"
# The Subscription resource (FHIR R4 rest-hook): configuration of the server, not clinical data.
SUBSCRIPTION = "Subscription"
# The types a SMART scope may name (``*`` means the clinical ones only); no scope grants Subscription.
SCOPE_TYPES = (*RESOURCE_TYPES, AUDIT_EVENT)
# Every type a route serves.
SERVED_TYPES = (*SCOPE_TYPES, SUBSCRIPTION)


@dataclass(frozen=True)
class Route:
    """One API route, served by exactly one function (``functions/<function>/app.py``)."""

    function: str
    method: str
    path: str
    resource_type: str | None
    interaction: str  # FHIR's interaction code: create, read, vread, update, search-type, ...

    @property
    def smart_permission(self) -> str | None:
        """The SMART on FHIR v2 permission letter a scope needs for this route (None: a public route, or
        one of a type no scope grants)."""
        if self.resource_type not in SCOPE_TYPES:
            return None
        return SMART_PERMISSIONS.get(self.interaction)

    @property
    def conditional(self) -> bool:
        """Whether the route names its resource by search criteria (``PUT [type]?identifier=…``), not
        by id: FHIR's conditional form of the interaction."""
        return self.interaction in CONDITIONAL_INTERACTIONS and "{id}" not in self.path

    @property
    def logical_id(self) -> str:
        """The function's logical id in template.yaml, e.g. ``EncounterCreateFunction``."""
        return "".join(part.capitalize() for part in self.function.split("_")) + "Function"


def _resource_routes(resource_type: str) -> tuple[Route, ...]:
    name = resource_type.lower()
    base = f"{API_PREFIX}/{resource_type}"
    return (
        Route(f"{name}_create", "POST", base, resource_type, "create"),
        Route(f"{name}_search", "GET", base, resource_type, "search-type"),
        # FHIR's search by form body, which keeps names and identifiers out of URLs and access logs.
        Route(f"{name}_search_post", "POST", f"{base}/_search", resource_type, "search-type"),
        Route(f"{name}_read", "GET", f"{base}/{{id}}", resource_type, "read"),
        Route(f"{name}_update", "PUT", f"{base}/{{id}}", resource_type, "update"),
        Route(f"{name}_patch", "PATCH", f"{base}/{{id}}", resource_type, "patch"),
        Route(f"{name}_validate", "POST", f"{base}/$validate", resource_type, "operation"),
        Route(f"{name}_conditional_update", "PUT", base, resource_type, "update"),
        Route(f"{name}_delete", "DELETE", f"{base}/{{id}}", resource_type, "delete"),
        Route(f"{name}_history", "GET", f"{base}/{{id}}/_history", resource_type, "history-instance"),
        Route(f"{name}_vread", "GET", f"{base}/{{id}}/_history/{{vid}}", resource_type, "vread"),
    )


def _subscription_routes() -> tuple[Route, ...]:
    base = f"{API_PREFIX}/{SUBSCRIPTION}"
    return (
        Route("subscription_create", "POST", base, SUBSCRIPTION, "create"),
        Route("subscription_search", "GET", base, SUBSCRIPTION, "search-type"),
        Route("subscription_read", "GET", f"{base}/{{id}}", SUBSCRIPTION, "read"),
        Route("subscription_update", "PUT", f"{base}/{{id}}", SUBSCRIPTION, "update"),
    )


METADATA_ROUTE = Route("metadata", "GET", f"{API_PREFIX}/metadata", None, "capabilities")
# Transaction and batch Bundles at the base URL: one route, one function (``fhir_api.bundles``); the
# Bundle's type says which, and each entry is checked against the route it would take on its own.
BUNDLE_ROUTE = Route("bundle", "POST", API_PREFIX, None, "transaction")
SMART_CONFIGURATION_ROUTE = Route(
    "smart_configuration",
    "GET",
    f"{API_PREFIX}/.well-known/smart-configuration",
    None,
    "smart-configuration",
)
AUDIT_EVENT_ROUTES = (
    Route("audit_event_search", "GET", f"{API_PREFIX}/{AUDIT_EVENT}", AUDIT_EVENT, "search-type"),
    Route("audit_event_read", "GET", f"{API_PREFIX}/{AUDIT_EVENT}/{{id}}", AUDIT_EVENT, "read"),
)
ROUTES: tuple[Route, ...] = (
    (METADATA_ROUTE,)
    + tuple(route for resource_type in RESOURCE_TYPES for route in _resource_routes(resource_type))
    + _subscription_routes()
    + AUDIT_EVENT_ROUTES
    + (SMART_CONFIGURATION_ROUTE, BUNDLE_ROUTE)
)

# Routes anyone may call, without a token.
PUBLIC_INTERACTIONS = frozenset({"capabilities", "smart-configuration"})
READ_INTERACTIONS = frozenset({"read", "vread", "search-type", "history-instance"})
WRITE_INTERACTIONS = frozenset({"create", "update", "patch"})
# Operations that store nothing: $validate, the only operation served.
CHECK_INTERACTIONS = frozenset({"operation"})
# Interactions with a conditional form on the type's path (FHIR's conditional update).
CONDITIONAL_INTERACTIONS = frozenset({"update"})
# Deleting a clinical record is the admin's alone: a clinician corrects a record (entered-in-error)
# and keeps its history readable; removing it from every search is an administrative act.
DELETE_INTERACTIONS = frozenset({"delete"})
# A Bundle at the base URL: every role may send one; each of its entries needs what its own route needs.
BUNDLE_INTERACTIONS = frozenset({"transaction", "batch"})

# The role table: admin and practitioner create, read, update and patch; only the admin deletes; an
# auditor only reads (and validates, which stores nothing).
ROLE_INTERACTIONS: dict[str, frozenset[str]] = {
    "admin": READ_INTERACTIONS
    | WRITE_INTERACTIONS
    | CHECK_INTERACTIONS
    | DELETE_INTERACTIONS
    | BUNDLE_INTERACTIONS,
    "practitioner": READ_INTERACTIONS | WRITE_INTERACTIONS | CHECK_INTERACTIONS | BUNDLE_INTERACTIONS,
    "auditor": READ_INTERACTIONS | CHECK_INTERACTIONS | BUNDLE_INTERACTIONS,
}

# Resource types only the listed roles may reach, whatever their interactions allow elsewhere: the
# audit trail is for those who audit (a practitioner's read of it is 403), and a Subscription sends
# data to an endpoint of its author's choosing.
RESTRICTED_TYPES: dict[str, frozenset[str]] = {
    AUDIT_EVENT: frozenset({"auditor", "admin"}),
    SUBSCRIPTION: frozenset({"admin"}),
}

# The second column of the table: the SMART on FHIR v2 permission (c create, r read, u update,
# d delete, s search) a scope must grant for each interaction. vread and history are reads in SMART;
# a patch is an update; $validate stores nothing and reads at most the stored version it checks
# against, so a read permission allows it.
SMART_PERMISSIONS: dict[str, str] = {
    "create": "c",
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "update": "u",
    "patch": "u",
    "delete": "d",
    "search-type": "s",
    "operation": "r",
}

# The action an audit record names for each interaction.
AUDIT_ACTIONS = {
    "capabilities": "read",
    "smart-configuration": "read",
    "create": "create",
    "read": "read",
    "vread": "vread",
    "update": "update",
    "patch": "patch",
    "delete": "delete",
    "search-type": "search",
    "history-instance": "history",
    "operation": "operation",
    "transaction": "transaction",
    "batch": "batch",
}


def routes_for_roles(roles: tuple[str, ...] | list[str]) -> list[Route]:
    """Every protected route that at least one of ``roles`` may call."""
    allowed: set[str] = set()
    for role in roles:
        allowed |= ROLE_INTERACTIONS.get(role, frozenset())
    return [route for route in ROUTES if route.interaction in allowed and _role_reaches(route, roles)]


def _role_reaches(route: Route, roles: tuple[str, ...] | list[str]) -> bool:
    """Whether one of ``roles`` may reach the route's resource type (RESTRICTED_TYPES)."""
    restricted = RESTRICTED_TYPES.get(route.resource_type or "")
    return restricted is None or any(role in restricted for role in roles)


def routes_for_permissions(grants: frozenset[tuple[str, str]] | set[tuple[str, str]]) -> list[Route]:
    """Every protected route whose (resource type, SMART permission letter) is in ``grants``; the Bundle
    route with any grant on a clinical type (SMART has no letter for it: each entry needs its own)."""
    clinical = any(resource_type in RESOURCE_TYPES for resource_type, _ in grants)
    return [
        route
        for route in ROUTES
        if (
            route.resource_type is not None
            and route.smart_permission is not None
            and (route.resource_type, route.smart_permission) in grants
        )
        or (route.interaction in BUNDLE_INTERACTIONS and clinical)
    ]


def route_for_function(function: str) -> Route:
    """The route a function serves."""
    for route in ROUTES:
        if route.function == function:
            return route
    raise KeyError(function)


def path_parameters(template: str, path: str, decode: Callable[[str], str] = str) -> dict[str, str] | None:
    """The parameters of ``path`` under the path template ``template``, or None when it does not match.

    ``{name}`` takes one non-empty segment, ``{name+}`` the rest of the path (at least one segment).
    A trailing ``/`` is ignored. ``decode`` turns a raw segment into its value (``unquote`` for a path
    still URL-encoded): segments are split first, so an encoded ``/`` stays inside its segment.
    """
    parts = path.split("/")[1:] if path.startswith("/") else path.split("/")
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    segments = [segment for segment in template.split("/") if segment]
    params: dict[str, str] = {}
    for index, segment in enumerate(segments):
        if segment.startswith("{") and segment.endswith("+}"):
            rest = "/".join(parts[index:])
            if not rest:
                return None
            params[segment[1:-2]] = decode(rest)
            return params
        part = parts[index] if index < len(parts) else None
        if part is None or not _segment_matches(segment, part, decode, params):
            return None
    return params if len(parts) == len(segments) else None


def _segment_matches(segment: str, part: str, decode: Callable[[str], str], params: dict[str, str]) -> bool:
    """Whether one path segment matches its template segment; a ``{name}`` one records its value."""
    if segment.startswith("{") and segment.endswith("}"):
        params[segment[1:-1]] = decode(part)
        return bool(part)
    return decode(part) == segment


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving ``method path`` and its path parameters, or None when no route does."""
    for route in ROUTES:
        if route.method == method:
            params = path_parameters(route.path, path)
            if params is not None:
                return route, params
    return None


def operation_methods(path: str) -> tuple[str, ...]:
    """The methods of the routes that serve ``path`` as a named operation (a literal ``$name`` in the
    route's own path, not a ``{id}`` that happens to match it)."""
    return tuple(
        route.method
        for route in ROUTES
        if "$" in route.path and path_parameters(route.path, path) is not None
    )


def methods_for_path(path: str) -> tuple[str, ...]:
    """The methods the API serves on ``path`` (empty when it serves none)."""
    return tuple(route.method for route in ROUTES if path_parameters(route.path, path) is not None)
