"""The Lambda handler every API function uses: ``handler = make_handler("encounter_create")``.

It parses the proxy event, checks the caller's route and token expiry again (``fhir_api.auth.access``:
the authorizer's policy may be a cached one), runs the route's interaction, turns domain errors into
OperationOutcomes (``fhir_api.api.outcome``), leaves one audit record and one set of metrics per request, and
names the request id in every log line, in an ``X-Request-Id`` header and in every OperationOutcome.
"""

from __future__ import annotations

import time
from typing import Any

from fhir_api import audit, errors, logs, observability
from fhir_api.api import headers, interactions
from fhir_api.api.http import Request, Response
from fhir_api.api.outcome import error_response, internal_error_response, quote_request_id
from fhir_api.auth import access
from fhir_api.observability import LambdaHandler
from fhir_api.routes import (
    AUDIT_ACTIONS,
    BUNDLE_INTERACTIONS,
    Route,
    match_route,
    methods_for_path,
    route_for_function,
)
from fhir_api.settings import get_settings


def make_handler(function: str) -> LambdaHandler:
    """The Lambda handler of ``functions/<function>``: one route, one interaction."""
    route = None if function == "fallback" else route_for_function(function)
    if route is not None and get_settings().lambda_initialization_type == "snap-start":
        interactions.prepare(route, get_settings())

    def answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        # API Gateway's request id as the correlation id, read directly: Powertools' JMESPath query for
        # the same path costs more than the rest of the logger's work on every request.
        logs.get_logger().set_correlation_id(_gateway_request_id(event))
        settings = get_settings()
        request = Request.from_event(event, settings.public_base_url)
        served = route or _route_for_path(request)
        caller = access.caller_from_event(event)
        try:
            if route is None:
                response = interactions.unrouted(request, methods_for_path(request.path), settings)
            else:
                access.check(route, caller, settings.token_leeway_seconds)
                if route.interaction in BUNDLE_INTERACTIONS:
                    from fhir_api.bundles.interaction import run as run_bundle

                    response = run_bundle(request, caller, settings, context, _client_address(event))
                else:
                    response = interactions.run(route, request, settings, context)
        except errors.ApiError as exc:
            response = error_response(exc)
        except Exception:
            # A failure of ours, never the client's input: logged with its trace, answered without it.
            logs.get_logger().exception("request failed", extra={"function": function})
            response = internal_error_response()
        interactions.apply_cors(request, response, settings)
        quote_request_id(response, request.request_id)
        elapsed_ms = (time.perf_counter() - started) * 1000
        interaction = response.interaction or (served.interaction if served else None)
        observability.record_request(function, interaction, response.status, elapsed_ms)
        audit.audit(
            request_id=request.request_id,
            sub=request.sub,
            roles=request.roles,
            action=AUDIT_ACTIONS.get(interaction or "", "unknown") if served else request.method.lower(),
            resource_type=served.resource_type if served else None,
            resource_id=_audited_id(request, response),
            status=response.status,
            version_id=request.path_params.get("vid") or headers.etag_version(response.headers.get("ETag")),
            client_id=caller.client_id if caller else None,
            scopes=caller.scopes if caller else (),
            interaction=interaction,
            patients=response.patients,
            query=response.query_names if response.query_names is not None else tuple(request.query),
            client_address=_client_address(event),
            method=request.method,
        )
        return response.to_proxy()

    # Every line the request logs, its audit record included, carries the Lambda context and the
    # API Gateway request id (the one logger the package writes through).
    return observability.with_tracing(observability.with_metrics(logs.with_lambda_context(answer)))


def _gateway_request_id(event: dict[str, Any]) -> str | None:
    """``requestContext.requestId`` of a REST API proxy event (Powertools' API_GATEWAY_REST path)."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return request_id if isinstance(request_id, str) else None


def _client_address(event: dict[str, Any]) -> str | None:
    """The caller's address as API Gateway saw it."""
    address = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
    return str(address) if address else None


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
