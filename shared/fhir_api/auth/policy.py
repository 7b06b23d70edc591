"""The IAM policy a TOKEN authorizer returns, built from the routes the caller may call (the table in
``fhir_api.routes``, read through ``fhir_api.auth.access``).

API Gateway caches the policy per token and evaluates it for every later request with that token, so
the policy lists every route the caller's roles and scopes allow, not just the route of the request at hand.
A route's ARN is ``arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`` with each path
parameter written ``*``. IAM's ``*`` also matches ``/``, so ``GET/api/fhir/Encounter/*`` (read) matches
``GET/api/fhir/Encounter/1/_history`` as well: whenever an allowed pattern covers a route the roles may
not call, that route gets an explicit Deny, which IAM lets win over any Allow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from fhir_api import routes
from fhir_api.auth.iam import ACTION, is_allowed
from fhir_api.auth.iam import wildcard_match as _wildcard_match
from fhir_api.routes import PUBLIC_INTERACTIONS, ROUTES, Route

_PATH_PARAM = re.compile(r"\{[^}/]+\}")
_SAMPLE_VALUE = "x1"


def api_arn_prefix(method_arn: str) -> str:
    """``arn:aws:execute-api:<region>:<account>:<api>/<stage>`` of a request's methodArn."""
    arn, _, rest = method_arn.partition("/")
    stage = rest.partition("/")[0]
    fields = arn.split(":")
    if len(fields) != 6 or fields[0] != "arn" or fields[2] != "execute-api" or not fields[5] or not stage:
        raise ValueError("not an execute-api method ARN")
    return f"{arn}/{stage}"


def route_pattern(route: Route) -> str:
    """The route's ARN suffix, e.g. ``GET/api/fhir/Encounter/*``."""
    return f"{route.method}{_PATH_PARAM.sub('*', route.path)}"


def build_policy(
    principal_id: str,
    allowed: Iterable[Route],
    method_arn: str,
    context: Mapping[str, str | int] | None = None,
) -> dict[str, Any]:
    """The authorizer's answer: Allow on every protected route in ``allowed`` (``fhir_api.auth.access``
    computes them from roles and scopes), or a Deny when it holds none."""
    prefix = api_arn_prefix(method_arn)
    functions = {route.function for route in allowed if route.interaction not in PUBLIC_INTERACTIONS}
    allow, deny = _patterns(tuple(route.function for route in ROUTES if route.function in functions))
    if allow:
        statements = [_statement("Allow", [f"{prefix}/{pattern}" for pattern in allow])]
        if deny:
            statements.append(_statement("Deny", [f"{prefix}/{pattern}" for pattern in deny]))
    else:
        # A verified caller with no known role: API Gateway answers 403, not 401.
        statements = [_statement("Deny", [f"{prefix}/*"])]
    answer: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
    }
    if context is not None:
        answer["context"] = dict(context)
    return answer


def match_route(method_arn: str) -> tuple[Route, dict[str, str]] | None:
    """The route a methodArn calls and its path parameters, or None when no route matches."""
    try:
        prefix = api_arn_prefix(method_arn)
    except ValueError:
        return None
    method, _, path = method_arn[len(prefix) + 1 :].partition("/")
    return routes.match_route(method, "/" + path)


@lru_cache(maxsize=256)
def _patterns(functions: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    allowed = [route for route in ROUTES if route.function in functions]
    allow = tuple(dict.fromkeys(pattern for route in allowed for pattern in _route_patterns(route)))
    refused = [route for route in ROUTES if route not in allowed]
    deny = tuple(
        dict.fromkeys(
            route_pattern(route)
            for route in refused
            if any(_wildcard_match(pattern, _sample(route)) for pattern in allow)
        )
    )
    # The policy must mean exactly the allowed routes; a set the patterns cannot express fails closed.
    document = {"Statement": [_statement("Allow", list(allow)), _statement("Deny", list(deny))]}
    for route in ROUTES:
        if is_allowed(document, _sample(route)) != (route in allowed):
            raise ValueError(f"the policy cannot express the allowed routes for {route.function}")
    return allow, deny


def _route_patterns(route: Route) -> tuple[str, ...]:
    """The ARN suffixes of a route: the base URL also as called with a trailing slash, as clients that
    join the base with an empty path (fhirpy's ``execute("")``) send it."""
    pattern = route_pattern(route)
    return (pattern, f"{pattern}/") if route.path == routes.API_PREFIX else (pattern,)


def _sample(route: Route) -> str:
    return f"{route.method}{_PATH_PARAM.sub(_SAMPLE_VALUE, route.path)}"


def _statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Effect": effect, "Action": ACTION, "Resource": resources}
