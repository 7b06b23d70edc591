"""The REST API as template.yaml declares it: routes (method, resource path, function, authorizer),
the functions behind them, the TOKEN authorizers and the customised gateway responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fhir_api.routes import path_parameters
from local import LocalError
from local.intrinsics import Resolver

DEFAULT_REAUTHORIZE_SECONDS = 300
DEFAULT_API_ID = "ServerlessRestApi"


@dataclass(frozen=True)
class FunctionSpec:
    """One AWS::Serverless::Function: where its handler is and the environment it declares."""

    logical_id: str
    source: Path
    handler_name: str
    environment: dict[str, str]


@dataclass(frozen=True)
class ApiRoute:
    """One method on one resource path, served by one function."""

    method: str  # an HTTP method or ANY
    resource: str  # /api/fhir/Encounter/{id}
    function: str  # the function's logical id
    authorizer: str | None  # the authorizer's name, None for Auth NONE

    @property
    def segments(self) -> list[str]:
        return [segment for segment in self.resource.split("/") if segment]

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters if ``path`` (URL-encoded) falls under this resource, else None."""
        return path_parameters(self.resource, path, unquote)

    def specificity(self) -> tuple[int, ...]:
        """Lower is more specific: literal segments before {param} before {proxy+}."""
        return tuple(
            2 if segment.endswith("+}") else 1 if segment.startswith("{") else 0 for segment in self.segments
        )


@dataclass(frozen=True)
class Authorizer:
    """A TOKEN Lambda authorizer: its function, identity header and result cache TTL."""

    name: str
    function: str
    header: str = "Authorization"
    ttl: int = DEFAULT_REAUTHORIZE_SECONDS
    validation: str | None = None


@dataclass(frozen=True)
class GatewayResponse:
    """A customised gateway response: status, headers and body templates by content type."""

    status: int | None
    headers: dict[str, str]
    templates: dict[str, str]


@dataclass
class ApiDefinition:
    """Everything the gateway needs from the template."""

    api_id: str
    stage: str
    routes: list[ApiRoute]
    functions: dict[str, FunctionSpec]
    authorizers: dict[str, Authorizer]
    responses: dict[str, GatewayResponse] = field(default_factory=dict)

    @classmethod
    def from_template(cls, template: dict[str, Any], root: Path, table_prefix: str = "") -> ApiDefinition:
        """Read the Api resource, its functions' Api events, authorizers and gateway responses."""
        resolver = Resolver(template, table_prefix)
        api_id, api_props = _api(template, resolver)
        auth = api_props.get("Auth") or {}
        authorizers = {
            name: _authorizer(name, config) for name, config in (auth.get("Authorizers") or {}).items()
        }
        functions = _functions(template, resolver, root)
        routes = _routes(template, resolver, api_id, auth.get("DefaultAuthorizer"))
        _check_authorizers_exist(routes, authorizers)
        return cls(
            api_id=api_id,
            stage=str(api_props.get("StageName") or "Prod"),
            routes=routes,
            functions=functions,
            authorizers=authorizers,
            responses=_gateway_responses(template, resolver, api_props),
        )

    def find(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        """The route serving ``method path``: the most specific matching resource, then its method
        (an exact method before ANY)."""
        candidates = []
        for route in self.routes:
            params = route.match(path)
            if params is not None:
                candidates.append((route.specificity(), route.resource, route, params))
        if not candidates:
            return None
        candidates.sort(key=lambda item: (item[0], item[1]))
        best_resource = candidates[0][1]
        on_resource = [
            (route, params) for _, resource, route, params in candidates if resource == best_resource
        ]
        for wanted in (method, "ANY"):
            for route, params in on_resource:
                if route.method == wanted:
                    return route, params
        return None


def _resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in (template.get("Resources") or {}).items()
        if isinstance(resource, dict) and resource.get("Type") == resource_type
    }


def _api(template: dict[str, Any], resolver: Resolver) -> tuple[str, dict[str, Any]]:
    """The API's logical id and its properties (over the Globals' Api section), resolved."""
    apis = _resources_of_type(template, "AWS::Serverless::Api")
    props: dict[str, Any] = dict((template.get("Globals") or {}).get("Api") or {})
    api_id = DEFAULT_API_ID
    if apis:
        api_id = next(iter(apis))
        props.update(apis[api_id].get("Properties") or {})
    return api_id, resolver.resolve(props)


def _functions(template: dict[str, Any], resolver: Resolver, root: Path) -> dict[str, FunctionSpec]:
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    return {
        logical_id: _function_spec(
            logical_id, resource.get("Properties") or {}, function_globals, resolver, root
        )
        for logical_id, resource in _resources_of_type(template, "AWS::Serverless::Function").items()
    }


def _routes(
    template: dict[str, Any], resolver: Resolver, api_id: str, default_authorizer: str | None
) -> list[ApiRoute]:
    """Every Api event of every function that belongs to this API."""
    has_api = bool(_resources_of_type(template, "AWS::Serverless::Api"))
    routes: list[ApiRoute] = []
    for logical_id, resource in _resources_of_type(template, "AWS::Serverless::Function").items():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if (event or {}).get("Type") != "Api":
                continue
            props = event.get("Properties") or {}
            rest_api = props.get("RestApiId")
            if has_api and rest_api is not None and resolver.resolve(rest_api) != api_id:
                continue
            routes.append(_route(logical_id, props, resolver, default_authorizer))
    return routes


def _route(
    function: str, props: dict[str, Any], resolver: Resolver, default_authorizer: str | None
) -> ApiRoute:
    route_auth = (props.get("Auth") or {}).get("Authorizer", default_authorizer)
    return ApiRoute(
        method=str(props["Method"]).upper(),
        resource=str(resolver.resolve(props["Path"])),
        function=function,
        authorizer=None if route_auth in (None, "NONE") else str(route_auth),
    )


def _check_authorizers_exist(routes: list[ApiRoute], authorizers: dict[str, Authorizer]) -> None:
    for route in routes:
        if route.authorizer is not None and route.authorizer not in authorizers:
            raise LocalError(
                f"route {route.method} {route.resource} names authorizer {route.authorizer!r} that the "
                "Api's Auth.Authorizers does not define; define it or set Auth.Authorizer: NONE"
            )


def _authorizer(name: str, config: dict[str, Any]) -> Authorizer:
    function_arn = config.get("FunctionArn")
    function = str(function_arn).split(".", 1)[0]
    if isinstance(function_arn, str) and function_arn.startswith("arn:aws:lambda:"):
        function = function_arn.rsplit(":", 1)[-1]
    payload = str(config.get("FunctionPayloadType") or "TOKEN").upper()
    if payload != "TOKEN":
        raise LocalError(
            f"authorizer {name} is a {payload} authorizer; the local gateway runs TOKEN authorizers"
        )
    identity = config.get("Identity") or {}
    ttl = identity.get("ReauthorizeEvery", DEFAULT_REAUTHORIZE_SECONDS)
    return Authorizer(
        name=name,
        function=function,
        header=str(identity.get("Header") or "Authorization"),
        ttl=int(ttl),
        validation=identity.get("ValidationExpression"),
    )


def _gateway_responses(
    template: dict[str, Any], resolver: Resolver, api_props: dict[str, Any]
) -> dict[str, GatewayResponse]:
    """The Api's GatewayResponses, then any AWS::ApiGateway::GatewayResponse resource (which wins)."""
    responses = {
        name: _gateway_response(config) for name, config in (api_props.get("GatewayResponses") or {}).items()
    }
    for resource in _resources_of_type(template, "AWS::ApiGateway::GatewayResponse").values():
        props = resolver.resolve(resource.get("Properties") or {})
        headers = {
            name.split("gatewayresponse.header.", 1)[1]: value
            for name, value in (props.get("ResponseParameters") or {}).items()
            if name.startswith("gatewayresponse.header.")
        }
        responses[str(props["ResponseType"])] = _gateway_response(
            {
                "StatusCode": props.get("StatusCode"),
                "ResponseParameters": {"Headers": headers},
                "ResponseTemplates": props.get("ResponseTemplates") or {},
            }
        )
    return responses


def _gateway_response(config: dict[str, Any]) -> GatewayResponse:
    parameters = config.get("ResponseParameters") or {}
    status = config.get("StatusCode")
    return GatewayResponse(
        status=int(status) if status not in (None, "") else None,
        headers={str(name): str(value) for name, value in (parameters.get("Headers") or {}).items()},
        templates={str(kind): str(text) for kind, text in (config.get("ResponseTemplates") or {}).items()},
    )


def _function_spec(
    logical_id: str, props: dict[str, Any], function_globals: dict[str, Any], resolver: Resolver, root: Path
) -> FunctionSpec:
    code_uri = props.get("CodeUri", function_globals.get("CodeUri", "."))
    handler = str(props.get("Handler") or function_globals.get("Handler") or "app.handler")
    module_name, _, handler_name = handler.rpartition(".")
    source = (root / str(resolver.resolve(code_uri)) / (module_name.replace(".", "/") + ".py")).resolve()
    environment: dict[str, str] = {}
    for layer in (function_globals, props):
        variables = resolver.resolve(((layer.get("Environment") or {}).get("Variables")) or {})
        environment.update({str(name): _env_text(value) for name, value in variables.items()})
    return FunctionSpec(logical_id, source, handler_name, environment)


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
