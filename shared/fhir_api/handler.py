"""The Lambda handler every API function uses: ``handler = make_handler("encounter_create")``.

It parses the proxy event, checks the caller's route and token expiry again (``fhir_api.auth.access``:
the authorizer's policy may be a cached one), runs the route's interaction, turns domain errors into
OperationOutcomes (``fhir_api.outcome``), and leaves one audit record per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from fhir_api import audit, errors, interactions
from fhir_api.auth import access
from fhir_api.http import Request, Response
from fhir_api.outcome import error_response, internal_error_response
from fhir_api.routes import AUDIT_ACTIONS, ROUTES, Route, route_for_function
from fhir_api.settings import get_settings

logger = Logger()

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(function: str) -> LambdaHandler:
    """The Lambda handler of ``functions/<function>``: one route, one interaction."""
    route = None if function == "fallback" else route_for_function(function)
    if route is not None and get_settings().lambda_initialization_type == "snap-start":
        interactions.prepare(route, get_settings())

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        settings = get_settings()
        request = Request.from_event(event, settings.public_base_url)
        served = route or _route_for_path(request)
        caller = access.caller_from_event(event)
        try:
            if route is not None:
                access.check(route, caller, settings.token_leeway_seconds)
            if route is None:
                response = interactions.unrouted(request, _methods_for_path(request.path), settings)
            else:
                response = interactions.run(route, request, settings, context)
        except errors.ApiError as exc:
            response = error_response(exc)
        except Exception:
            # A failure of ours, never the client's input: logged with its trace, answered without it.
            logger.exception("request failed", extra={"function": function})
            response = internal_error_response()
        interactions.apply_cors(request, response, settings)
        audit.audit(
            request_id=request.request_id,
            sub=request.sub,
            roles=request.roles,
            action=AUDIT_ACTIONS.get(served.interaction, "unknown") if served else request.method.lower(),
            resource_type=served.resource_type if served else None,
            resource_id=_audited_id(request, response),
            status=response.status,
            version_id=request.path_params.get("vid")
            or interactions.etag_version(response.headers.get("ETag")),
            client_id=caller.client_id if caller else None,
            scopes=caller.scopes if caller else (),
        )
        return response.to_proxy()

    return handler


def _audited_id(request: Request, response: Response) -> str | None:
    """The resource id a request concerned: from the URL, or the one a create assigned."""
    if "id" in request.path_params:
        return request.path_params["id"]
    location = response.headers.get("Location", "")
    parts = location.split("/_history/")[0].rsplit("/", 1)
    return parts[-1] if location and len(parts) == 2 else None


def _path_matches(template: str, path: str) -> bool:
    template_parts = template.strip("/").split("/")
    path_parts = path.strip("/").split("/")
    if len(template_parts) != len(path_parts):
        return False
    return all(
        expected == part or (expected.startswith("{") and bool(part))
        for expected, part in zip(template_parts, path_parts, strict=True)
    )


def _methods_for_path(path: str) -> tuple[str, ...]:
    return tuple(route.method for route in ROUTES if _path_matches(route.path, path))


def _route_for_path(request: Request) -> Route | None:
    for route in ROUTES:
        if route.method == request.method and _path_matches(route.path, request.path):
            return route
    return None
