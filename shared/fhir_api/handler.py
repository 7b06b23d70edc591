"""The Lambda handler every API function uses: ``handler = make_handler("encounter_create")``.

It parses the proxy event, runs the route's interaction, turns domain errors into OperationOutcomes
(``fhir_api.outcome``), and leaves one audit record per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from fhir_api import audit, errors, interactions
from fhir_api.http import Request, Response
from fhir_api.outcome import error_response, internal_error_response
from fhir_api.routes import AUDIT_ACTIONS, Route, match_route, methods_for_path, route_for_function
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
        try:
            if route is None:
                response = interactions.unrouted(request, methods_for_path(request.path), settings)
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


def _route_for_path(request: Request) -> Route | None:
    matched = match_route(request.method, request.path)
    return matched[0] if matched else None
