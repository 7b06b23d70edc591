"""Who may call which route: roles and SMART scopes against the one table in ``fhir_api.routes``.

The authorizer builds its policy from ``allowed_routes``; every function checks its own route again
with ``check`` on the authorizer context it was given, so that neither a policy cached past the
token's expiry (API Gateway keeps it for ``ReauthorizeEvery`` whatever the token's ``exp``), nor a
direct invocation, nor a route left without an authorizer ever reads or writes what the token may not.

The rule, in one place:

- roles allow what ``ROLE_INTERACTIONS`` says;
- ``system/`` scopes allow the routes whose (resource type, SMART permission letter) they grant;
- ``user/`` scopes limit what the roles allow (an app acting for a user may do what both the user's
  role and the app's scopes allow); with no role they allow nothing;
- a ``patient/`` scope refuses the whole token (403 naming it): patient compartments are not enforced;
- the effective permission is the union of what the roles and the system scopes allow.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir_api import errors
from fhir_api.auth.scopes import Scope, parse_scopes
from fhir_api.routes import PUBLIC_INTERACTIONS, ROUTES, Route, routes_for_permissions, routes_for_roles

# The keys of the authorizer context (API Gateway hands them to the functions as strings).
CONTEXT_SUB = "sub"
CONTEXT_ROLES = "roles"
CONTEXT_SCOPES = "scopes"
CONTEXT_CLIENT_ID = "client_id"
CONTEXT_EXPIRES = "exp"
_EPOCH_SECONDS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Access:
    """What one token may call: the allowed routes, and the patient scopes that refuse it."""

    routes: tuple[Route, ...]
    refused_scopes: tuple[str, ...] = ()

    def allows(self, route: Route) -> bool:
        """Whether ``route`` may be called."""
        return route in self.routes


def _grants(scopes: list[Scope]) -> frozenset[tuple[str, str]]:
    grants: frozenset[tuple[str, str]] = frozenset()
    for scope in scopes:
        grants |= scope.grants()
    return grants


def allowed_routes(roles: tuple[str, ...] | list[str], scopes: tuple[str, ...] | list[str] = ()) -> Access:
    """The routes ``roles`` and ``scopes`` (scope strings as the token carries them) allow together."""
    return _allowed_routes(tuple(roles), tuple(scopes))


# Every request of a function asks again, mostly with the same few role and scope sets.
@lru_cache(maxsize=256)
def _allowed_routes(roles: tuple[str, ...], scopes: tuple[str, ...]) -> Access:
    parsed = parse_scopes(scopes)
    refused = tuple(scope.text for scope in parsed if scope.context == "patient")
    if refused:
        return Access((), refused)
    by_roles = set(routes_for_roles(roles))
    user_scopes = [scope for scope in parsed if scope.context == "user"]
    if user_scopes:
        by_roles &= set(routes_for_permissions(_grants(user_scopes)))
    by_system = set(routes_for_permissions(_grants([scope for scope in parsed if scope.context == "system"])))
    return Access(tuple(route for route in ROUTES if route in by_roles or route in by_system))


@dataclass(frozen=True)
class Caller:
    """The verified caller as the authorizer context describes it."""

    sub: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    client_id: str | None
    expires_at: int | None


def caller_from_event(event: dict[str, Any]) -> Caller | None:
    """The caller of a proxy event, from ``requestContext.authorizer``; None when there is none."""
    context = (event.get("requestContext") or {}).get("authorizer")
    if not isinstance(context, dict) or not context:
        return None
    expires = str(context.get(CONTEXT_EXPIRES) or "").strip()
    return Caller(
        sub=str(context.get(CONTEXT_SUB) or context.get("principalId") or ""),
        roles=tuple(str(context.get(CONTEXT_ROLES) or "").split()),
        scopes=tuple(str(context.get(CONTEXT_SCOPES) or "").split()),
        client_id=str(context[CONTEXT_CLIENT_ID]) if context.get(CONTEXT_CLIENT_ID) else None,
        expires_at=int(expires) if _EPOCH_SECONDS.fullmatch(expires) else None,
    )


def check(route: Route, caller: Caller | None, leeway_seconds: int, now: float | None = None) -> None:
    """Refuse the request unless ``caller`` may call ``route`` now.

    Raises ``errors.Unauthenticated`` (401) with no caller, no expiry or an expiry more than
    ``leeway_seconds`` past, and ``errors.Forbidden`` (403) when roles and scopes do not allow the route.
    Public routes (the CapabilityStatement, the SMART configuration) are always allowed.
    """
    if route.interaction in PUBLIC_INTERACTIONS:
        return
    if caller is None or not caller.sub:
        raise errors.Unauthenticated("A valid bearer token is required.")
    if caller.expires_at is None:
        raise errors.Unauthenticated("The token's expiry is unknown.")
    if (time.time() if now is None else now) > caller.expires_at + leeway_seconds:
        raise errors.Unauthenticated("The token has expired.")
    access = allowed_routes(caller.roles, caller.scopes)
    if access.refused_scopes:
        raise errors.Forbidden(
            "Patient-level scopes are not supported (no patient compartment is enforced yet): "
            + " ".join(access.refused_scopes)
        )
    if not access.allows(route):
        raise errors.Forbidden("The token's roles and scopes do not allow this interaction.")
