"""API Gateway TOKEN authorizer: verify the bearer token, answer with the policy of the caller's roles.

- A missing, malformed, badly signed, expired or not-yet-valid token raises ``Exception("Unauthorized")``,
  which API Gateway answers with 401 (its UNAUTHORIZED gateway response).
- A valid token gets a policy allowing every route its roles and SMART scopes allow together
  (``fhir_api.auth.access``; API Gateway caches it per token, so it must be right for any route); with
  nothing allowed (no known role, no usable scope, or a patient scope) the policy denies everything,
  which API Gateway answers with 403 (ACCESS_DENIED).
- Any unexpected error also raises ``Exception("Unauthorized")``: the authorizer never allows by default.

The functions receive the authorizer context ``{"sub", "roles", "scopes", "client_id", "exp"}`` (roles
and scopes space-separated) and check their route and the token's expiry again with it
(``fhir_api.auth.access.check``). Refusals leave an audit record (``fhir_api.audit``); the token itself
is never logged.
"""

from __future__ import annotations

from typing import Any

from fhir_api import observability
from fhir_api.audit import audit
from fhir_api.auth.access import (
    CONTEXT_CLIENT_ID,
    CONTEXT_EXPIRES,
    CONTEXT_ROLES,
    CONTEXT_SCOPES,
    CONTEXT_SUB,
    allowed_routes,
)
from fhir_api.auth.policy import build_policy, is_allowed, match_route
from fhir_api.auth.tokens import InvalidToken, Principal, verify
from fhir_api.logs import get_logger, with_lambda_context
from fhir_api.routes import AUDIT_ACTIONS

UNAUTHORIZED = "Unauthorized"


def _authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Handle one TOKEN authorizer event (``authorizationToken``, ``methodArn``)."""
    method_arn = str(event.get("methodArn") or "")
    invocation_id = getattr(context, "aws_request_id", None)
    get_logger().set_correlation_id(invocation_id)
    try:
        principal = verify(event.get("authorizationToken"))
        access = allowed_routes(principal.roles, principal.scopes)
        answer = build_policy(principal.sub, access.routes, method_arn, context=_context(principal))
    except InvalidToken as exc:
        _audit_refusal(invocation_id, exc.sub, (), method_arn, 401, exc.reason)
        raise Exception(UNAUTHORIZED) from None  # noqa: TRY002 - the message API Gateway turns into 401
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the answer must be a refusal
        # Only the type: an exception's text could quote the token.
        get_logger().error("authorizer failed", extra={"error": type(exc).__name__})
        _audit_refusal(invocation_id, None, (), method_arn, 401, "authorizer error")
        raise Exception(UNAUTHORIZED) from None  # noqa: TRY002
    if not is_allowed(answer["policyDocument"], method_arn):
        reason = "patient scopes not supported" if access.refused_scopes else "role or scope not allowed"
        _audit_refusal(
            invocation_id, principal.sub, principal.roles, method_arn, 403, reason, principal=principal
        )
    else:
        observability.record_authorized_token()
    return answer


# The authorizer's lines carry its own invocation id: a TOKEN event names no API request.
lambda_handler = observability.with_metrics(with_lambda_context(_authorize))


def _context(principal: Principal) -> dict[str, str | int]:
    return {
        CONTEXT_SUB: principal.sub,
        CONTEXT_ROLES: " ".join(principal.roles),
        CONTEXT_SCOPES: " ".join(principal.scopes),
        CONTEXT_CLIENT_ID: principal.client_id or "",
        CONTEXT_EXPIRES: principal.expires_at,
    }


def _audit_refusal(
    invocation_id: str | None,
    sub: str | None,
    roles: tuple[str, ...],
    method_arn: str,
    status: int,
    reason: str,
    principal: Principal | None = None,
) -> None:
    observability.record_refused_token(reason)
    matched = match_route(method_arn)
    route, params = matched if matched else (None, {})
    audit(
        invocation_id,
        sub,
        roles,
        AUDIT_ACTIONS.get(route.interaction) if route else None,
        route.resource_type if route else None,
        params.get("id"),
        status,
        version_id=params.get("vid"),
        source="authorizer",
        reason=reason,
        client_id=principal.client_id if principal else None,
        scopes=principal.scopes if principal else (),
    )
