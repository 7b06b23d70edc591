"""The local API Gateway: a small HTTP server that reads template.yaml and serves the REST API the way
API Gateway does.

For each request it picks the route (specific resources win over ``{proxy+}``), builds the REST proxy
event (payload 1.0: repeated query parameters stay apart in multiValueQueryStringParameters), runs the
TOKEN authorizer with the request's methodArn, evaluates the IAM policy it returns (wildcards, Deny
wins), caches that policy per token for the template's ReauthorizeEvery, calls the function's handler
and turns its proxy result into the HTTP answer. Refusals use the template's gateway responses.

Every Lambda is its own process in AWS; here the functions share this one, so the process environment
is the union of their variables (they do not conflict). Paths are served with or without the stage
prefix (``/Prod/api/fhir/...`` as on an execute-api host, ``/api/fhir/...`` as on a custom domain).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote

from local import ROOT, LocalError, issuer, local_secret, tables

logger = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
LOCAL_API_ID = "localapi01"
MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_REAUTHORIZE_SECONDS = 300
JWKS_PATH = "/.well-known/jwks.json"
SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
UNAUTHORIZED_MESSAGE = "Unauthorized"

# API Gateway's own answers when a template does not customise a response type:
# (status, message, family default type).
DEFAULT_RESPONSES: dict[str, tuple[int, str, str]] = {
    "UNAUTHORIZED": (401, UNAUTHORIZED_MESSAGE, "DEFAULT_4XX"),
    "ACCESS_DENIED": (
        403,
        "User is not authorized to access this resource with an explicit deny",
        "DEFAULT_4XX",
    ),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token", "DEFAULT_4XX"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "DEFAULT_4XX"),
    "BAD_REQUEST_BODY": (400, "Invalid request body", "DEFAULT_4XX"),
    "AUTHORIZER_FAILURE": (500, "Internal server error", "DEFAULT_5XX"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "Internal server error", "DEFAULT_5XX"),
    # A function that raised or answered something that is not a proxy result.
    "INTEGRATION_FAILURE": (502, "Internal server error", "DEFAULT_5XX"),
    "DEFAULT_4XX": (400, "Bad Request", "DEFAULT_4XX"),
    "DEFAULT_5XX": (500, "Internal server error", "DEFAULT_5XX"),
}


# ---------------------------------------------------------------------------------------------------
# The template: intrinsic functions resolved for a local run


class Resolver:
    """Resolves CloudFormation intrinsics (Ref, GetAtt, Sub, Join, If, ...) to local values."""

    def __init__(self, template: dict[str, Any], table_prefix: str = "") -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.parameters: dict[str, Any] = template.get("Parameters") or {}
        self.conditions: dict[str, Any] = template.get("Conditions") or {}
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self.table_prefix = table_prefix

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": "encounter-api-local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.resolve((self.parameters[name] or {}).get("Default", ""))
        resource = self.resources.get(name) or {}
        if resource.get("Type") == tables.TABLE_TYPE:
            return tables.local_name(name, self.table_prefix)
        return name

    def get_att(self, name: str, attribute: str) -> str:
        resource = self.resources.get(name) or {}
        if resource.get("Type") == tables.TABLE_TYPE and attribute == "Arn":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.ref(name)}"
        if attribute == "Arn" and resource.get("Type", "").endswith("::Function"):
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        return f"{name}.{attribute}"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions.get(name, False)))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local value."""
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not None}


def _sub(resolver: Resolver, argument: Any) -> str:
    text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(resolver.resolve(variables[name]))
        if "." in name and not name.startswith("AWS::"):
            resource, attribute = name.split(".", 1)
            return resolver.get_att(resource, attribute)
        return str(resolver.ref(name))

    return re.sub(r"\$\{([^}]+)\}", replace, str(text))


def _get_att(resolver: Resolver, argument: Any) -> str:
    name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
    return resolver.get_att(str(name), str(resolver.resolve(attribute)))


def _if(resolver: Resolver, argument: Any) -> Any:
    name, when_true, when_false = argument
    return resolver.resolve(when_true if resolver.condition(name) else when_false)


def _select(resolver: Resolver, argument: Any) -> Any:
    index, items = argument
    return resolver.resolve(items)[int(resolver.resolve(index))]


def _find_in_map(resolver: Resolver, argument: Any) -> Any:
    name, first, second = (resolver.resolve(item) for item in argument)
    return resolver.mappings[name][first][second]


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda resolver, name: resolver.ref(str(name)),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": lambda r, arg: str(r.resolve(arg[0])).join(str(item) for item in r.resolve(arg[1])),
    "Fn::If": _if,
    "Fn::Select": _select,
    "Fn::FindInMap": _find_in_map,
    "Fn::Equals": lambda r, arg: str(r.resolve(arg[0])) == str(r.resolve(arg[1])),
    "Fn::Not": lambda r, arg: not r.resolve(arg[0] if isinstance(arg, list) else arg),
    "Fn::And": lambda r, arg: all(r.resolve(item) for item in arg),
    "Fn::Or": lambda r, arg: any(r.resolve(item) for item in arg),
    "Condition": lambda r, name: r.condition(str(name)),
}


# ---------------------------------------------------------------------------------------------------
# The API as the template declares it


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
        parts = path.split("/")[1:] if path.startswith("/") else path.split("/")
        if parts and parts[-1] == "" and len(parts) > 1:
            parts = parts[:-1]
        params: dict[str, str] = {}
        segments = self.segments
        for index, segment in enumerate(segments):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = parts[index:]
                if not rest or rest == [""]:
                    return None
                params[segment[1:-2]] = unquote("/".join(rest))
                return params
            if index >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not parts[index]:
                    return None
                params[segment[1:-1]] = unquote(parts[index])
            elif unquote(parts[index]) != segment:
                return None
        return params if len(parts) == len(segments) else None

    def specificity(self) -> tuple[int, ...]:
        """Lower is more specific: literal segments before {param} before {proxy+}."""
        ranks = []
        for segment in self.segments:
            if segment.endswith("+}"):
                ranks.append(2)
            elif segment.startswith("{"):
                ranks.append(1)
            else:
                ranks.append(0)
        return tuple(ranks)


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
        resources: dict[str, Any] = template.get("Resources") or {}
        globals_ = template.get("Globals") or {}
        function_globals = globals_.get("Function") or {}
        apis = {
            logical_id: resource
            for logical_id, resource in resources.items()
            if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Api"
        }
        api_props: dict[str, Any] = dict(globals_.get("Api") or {})
        api_id = "ServerlessRestApi"
        if apis:
            api_id = next(iter(apis))
            api_props.update(apis[api_id].get("Properties") or {})
        api_props = resolver.resolve(api_props)
        auth = api_props.get("Auth") or {}
        default_authorizer = auth.get("DefaultAuthorizer")
        authorizers = {
            name: _authorizer(name, config) for name, config in (auth.get("Authorizers") or {}).items()
        }
        functions: dict[str, FunctionSpec] = {}
        routes: list[ApiRoute] = []
        for logical_id, resource in resources.items():
            if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties") or {}
            functions[logical_id] = _function_spec(logical_id, props, function_globals, resolver, root)
            for event in (props.get("Events") or {}).values():
                if (event or {}).get("Type") != "Api":
                    continue
                event_props = event.get("Properties") or {}
                rest_api = event_props.get("RestApiId")
                if apis and rest_api is not None and resolver.resolve(rest_api) != api_id:
                    continue
                route_auth = (event_props.get("Auth") or {}).get("Authorizer", default_authorizer)
                routes.append(
                    ApiRoute(
                        method=str(event_props["Method"]).upper(),
                        resource=str(resolver.resolve(event_props["Path"])),
                        function=logical_id,
                        authorizer=None if route_auth in (None, "NONE") else str(route_auth),
                    )
                )
        for route in routes:
            if route.authorizer is not None and route.authorizer not in authorizers:
                raise LocalError(
                    f"route {route.method} {route.resource} names authorizer {route.authorizer!r} that the "
                    "Api's Auth.Authorizers does not define; define it or set Auth.Authorizer: NONE"
                )
        responses = {
            name: _gateway_response(config)
            for name, config in (api_props.get("GatewayResponses") or {}).items()
        }
        for resource in resources.values():
            if isinstance(resource, dict) and resource.get("Type") == "AWS::ApiGateway::GatewayResponse":
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
        return cls(
            api_id=api_id,
            stage=str(api_props.get("StageName") or "Prod"),
            routes=routes,
            functions=functions,
            authorizers=authorizers,
            responses=responses,
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


# ---------------------------------------------------------------------------------------------------
# IAM policy evaluation


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str) -> bool:
    """IAM wildcard match: ``*`` any run of characters (slashes too), ``?`` one character."""
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def policy_allows(policy: dict[str, Any], method_arn: str, action: str = "execute-api:Invoke") -> bool:
    """Whether an authorizer's IAM policy allows ``action`` on ``method_arn``: an explicit Deny wins,
    and without a matching Allow the answer is no."""
    allowed = False
    for statement in _as_list(policy.get("Statement")):
        if not isinstance(statement, dict):
            continue
        actions = [str(item) for item in _as_list(statement.get("Action"))]
        resources = [str(item) for item in _as_list(statement.get("Resource"))]
        if not any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions):
            continue
        if not any(_wildcard(pattern, method_arn) for pattern in resources):
            continue
        effect = str(statement.get("Effect", "")).capitalize()
        if effect == "Deny":
            return False
        if effect == "Allow":
            allowed = True
    return allowed


def method_arn(api_id: str, stage: str, method: str, path: str) -> str:
    """The ARN API Gateway hands a TOKEN authorizer: the request's method and actual path."""
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/{stage}/{method}/{path.lstrip('/')}"


# ---------------------------------------------------------------------------------------------------
# Requests, answers and the Lambda side


@dataclass
class HttpRequest:
    """An HTTP request as received (path still URL-encoded, headers in order, raw body)."""

    method: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in reversed(self.headers):
            if key.lower() == wanted:
                return value
        return None


@dataclass
class HttpResponse:
    """An HTTP answer: status, headers (repeatable) and body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class LambdaContext:
    """The context object a Lambda handler receives (what Powertools reads from it)."""

    def __init__(self, function_name: str, request_id: str, timeout_seconds: float = 30.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Unauthorized(Exception):
    """The authorizer refused the token (it raised Exception("Unauthorized"))."""


class AuthorizerFailure(Exception):
    """The authorizer raised something else (API Gateway answers 500)."""


class InvalidPolicy(Exception):
    """The authorizer answered something that is not a principal and an IAM policy (500)."""


# Handlers share this process, so the process environment holds one gateway's variables at a time.
_ENV_LOCK = threading.RLock()
_ENV_OWNER: list[object] = [None]


# The shared layer's caches of what it read from the environment (settings, boto3 clients).
_RESET_HOOKS = (
    ("fhir_api.settings", "reset_settings"),
    ("fhir_api.store.dynamo", "reset_client"),
    ("fhir_api.store.idempotency", "reset"),
)


def _reset_settings() -> None:
    for module_name, hook in _RESET_HOOKS:
        reset = getattr(sys.modules.get(module_name), hook, None)
        if callable(reset):
            reset()


def release_environment() -> None:
    """Forget which gateway's environment the process holds (after the caller restored its own)."""
    with _ENV_LOCK:
        _ENV_OWNER[0] = None
    _reset_settings()


class Gateway:
    """The local API Gateway for one template: route, authorize, invoke, answer."""

    def __init__(
        self,
        template: dict[str, Any] | None = None,
        *,
        root: Path = ROOT,
        port: int = 3000,
        dynamodb_endpoint: str | None = None,
        table_prefix: str = "",
        extra_env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if template is None:
            from local.template import load_template

            template = load_template()
        self.root = root
        self.definition = ApiDefinition.from_template(template, root, table_prefix)
        self.port = port
        self.clock = clock
        self.environment = self._environment(template, dynamodb_endpoint, table_prefix, extra_env or {})
        self._modules: dict[str, ModuleType] = {}
        self._module_lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        self.authorizer_calls = 0

    def _environment(
        self, template: dict[str, Any], endpoint: str | None, prefix: str, extra: dict[str, str]
    ) -> dict[str, str]:
        environment: dict[str, str] = {}
        for spec in self.definition.functions.values():
            for name, value in spec.environment.items():
                if name in environment and environment[name] != value:
                    logger.warning("functions disagree on %s; the local gateway uses %r", name, value)
                environment[name] = value
        resources = (template.get("Resources") or {}).values()
        if any(
            isinstance(resource, dict) and resource.get("Type") == tables.TABLE_TYPE for resource in resources
        ):
            for name, value in tables.table_env(prefix, template).items():
                environment.setdefault(name, value)
        environment.update(
            {
                "JWKS_URL": f"http://127.0.0.1:{self.port}{JWKS_PATH}",
                "TOKEN_ISSUER": issuer.ISSUER,
                "TOKEN_AUDIENCE": issuer.AUDIENCE,
                "ALLOWED_CLIENT_IDS": issuer.CLIENT_ID,
                "PAGE_TOKEN_SECRET": local_secret("page-token-secret"),
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
            }
        )
        if endpoint:
            environment["DYNAMODB_ENDPOINT"] = endpoint
        environment.update(extra)
        return environment

    def set_port(self, port: int) -> None:
        """Record the port actually bound (the JWKS URL points at this server)."""
        self.port = port
        self.environment["JWKS_URL"] = f"http://127.0.0.1:{port}{JWKS_PATH}"
        _ENV_OWNER[0] = None

    @contextlib.contextmanager
    def _env(self) -> Iterator[None]:
        with _ENV_LOCK:
            if _ENV_OWNER[0] is not self:
                os.environ.update(self.environment)
                _reset_settings()
                _ENV_OWNER[0] = self
        yield

    def activate(self) -> None:
        """Put this gateway's function environment into the process (before a handler runs)."""
        with self._env():
            pass

    # -- Lambda invocation ------------------------------------------------------------------------

    def handler(self, logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
        """The function's handler, its module imported by file path on first use."""
        spec = self.definition.functions.get(logical_id)
        if spec is None:
            raise LocalError(
                f"template.yaml has no function {logical_id}; define it as AWS::Serverless::Function"
            )
        with self._module_lock:
            module = self._modules.get(logical_id)
            if module is None:
                shared = str(self.root / "shared")
                if shared not in sys.path:
                    sys.path.insert(0, shared)
                self.activate()
                name = f"_local_function_{logical_id}_{id(self):x}"
                module_spec = importlib.util.spec_from_file_location(name, spec.source)
                if module_spec is None or module_spec.loader is None or not spec.source.is_file():
                    raise LocalError(
                        f"{spec.source} not found for {logical_id}; check its CodeUri and Handler"
                    )
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module
                module_spec.loader.exec_module(module)
                self._modules[logical_id] = module
        handler = getattr(module, spec.handler_name, None)
        if not callable(handler):
            raise LocalError(
                f"{spec.source} has no callable {spec.handler_name}; check the Handler of {logical_id}"
            )
        return handler

    def invoke(self, logical_id: str, event: dict[str, Any], request_id: str) -> Any:
        """Call a function's handler as Lambda would."""
        handler = self.handler(logical_id)
        self.activate()
        return handler(event, LambdaContext(logical_id, request_id))

    # -- authorization ----------------------------------------------------------------------------

    def authorize(self, authorizer: Authorizer, token: str, arn: str, request_id: str) -> dict[str, Any]:
        """The authorizer's answer for ``token``, from the cache while it is fresh.

        Raises Unauthorized when the authorizer refuses the token, AuthorizerFailure when it fails and
        InvalidPolicy when its answer is not a principal with an IAM policy."""
        key = (authorizer.name, token)
        now = self.clock()
        if authorizer.ttl > 0:
            with self._cache_lock:
                cached = self._cache.get(key)
                if cached is not None and cached[0] > now:
                    return cached[1]
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}
        self.authorizer_calls += 1
        try:
            result = self.invoke(authorizer.function, event, request_id)
        except Exception as error:
            if str(error) == UNAUTHORIZED_MESSAGE:
                raise Unauthorized from error
            raise AuthorizerFailure(f"{type(error).__name__}: {error}") from error
        _check_authorizer_result(result)
        if authorizer.ttl > 0:
            with self._cache_lock:
                self._cache[key] = (now + authorizer.ttl, result)
        return result

    def clear_cache(self) -> None:
        """Forget cached authorizer answers."""
        with self._cache_lock:
            self._cache.clear()

    # -- one request ------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Serve one request: JWKS, or route -> authorize -> function -> proxy result."""
        request_id = str(uuid.uuid4())
        raw_path, stage_prefix = self._strip_stage(request.raw_path)
        if request.method in ("GET", "HEAD") and raw_path == JWKS_PATH:
            body = json.dumps(issuer.jwks()).encode("utf-8")
            headers = [("Content-Type", "application/json"), ("Cache-Control", "max-age=300")]
            return HttpResponse(200, headers, b"" if request.method == "HEAD" else body)
        found = self.definition.find(request.method, raw_path)
        if found is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", request, request_id)
        route, path_params = found
        if len(request.body) > MAX_BODY_BYTES:
            return self.gateway_response("REQUEST_TOO_LARGE", request, request_id)
        path = unquote(raw_path)
        authorizer_context: dict[str, Any] | None = None
        if route.authorizer is not None:
            authorizer = self.definition.authorizers[route.authorizer]
            token = request.header(authorizer.header)
            if not token or (authorizer.validation and not re.fullmatch(authorizer.validation, token)):
                return self.gateway_response("UNAUTHORIZED", request, request_id)
            arn = method_arn(self.definition.api_id, self.definition.stage, request.method, raw_path)
            try:
                result = self.authorize(authorizer, token, arn, request_id)
            except Unauthorized:
                return self.gateway_response("UNAUTHORIZED", request, request_id)
            except InvalidPolicy as error:
                logger.error("authorizer %s answered an invalid policy: %s", authorizer.function, error)
                return self.gateway_response("AUTHORIZER_CONFIGURATION_ERROR", request, request_id)
            except AuthorizerFailure:
                logger.exception("authorizer %s failed", authorizer.function)
                return self.gateway_response("AUTHORIZER_FAILURE", request, request_id)
            if not policy_allows(result["policyDocument"], arn):
                return self.gateway_response("ACCESS_DENIED", request, request_id)
            authorizer_context = {
                **{str(k): v for k, v in (result.get("context") or {}).items()},
                "principalId": str(result["principalId"]),
                "integrationLatency": 0,
            }
        event = self.build_event(
            request, route, path, path_params, stage_prefix, request_id, authorizer_context
        )
        try:
            result = self.invoke(route.function, event, request_id)
            return self._proxy_answer(result, request)
        except Exception:
            logger.exception("function %s failed", route.function)
            return self.gateway_response("INTEGRATION_FAILURE", request, request_id)

    def _strip_stage(self, raw_path: str) -> tuple[str, str]:
        prefix = f"/{self.definition.stage}"
        if raw_path == prefix or raw_path.startswith(prefix + "/"):
            return raw_path[len(prefix) :] or "/", prefix
        return raw_path, ""

    def build_event(
        self,
        request: HttpRequest,
        route: ApiRoute,
        path: str,
        path_params: dict[str, str],
        stage_prefix: str,
        request_id: str,
        authorizer_context: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The REST API proxy event (payload 1.0) API Gateway builds for this request."""
        multi_headers: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for name, value in request.headers:
            key = names.setdefault(name.lower(), name)
            multi_headers.setdefault(key, []).append(value)
        host = request.header("Host") or f"127.0.0.1:{self.port}"
        for name, value in (
            ("X-Forwarded-For", request.source_ip),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Port", host.rsplit(":", 1)[-1] if ":" in host else "80"),
        ):
            if name.lower() not in names:
                names[name.lower()] = name
                multi_headers[name] = [value]
        headers = {name: values[-1] for name, values in multi_headers.items()}
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(request.query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        query = {name: values[-1] for name, values in multi_query.items()}
        body: str | None = None
        is_base64 = False
        if request.body:
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                # Bytes that are not UTF-8 reach the function intact, so it can refuse them.
                body = base64.b64encode(request.body).decode("ascii")
                is_base64 = True
        now = time.time()
        context: dict[str, Any] = {
            "accountId": ACCOUNT_ID,
            "apiId": self.definition.api_id,
            "domainName": host.split(":", 1)[0],
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": request.header("User-Agent"),
                "userArn": None,
            },
            "path": f"{stage_prefix}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": formatdate(now, usegmt=True),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": format(abs(hash(route.resource)) % 0xFFFFFF, "06x"),
            "resourcePath": route.resource,
            "stage": self.definition.stage,
        }
        if authorizer_context is not None:
            context["authorizer"] = authorizer_context
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": context,
            "body": body,
            "isBase64Encoded": is_base64,
        }

    def _proxy_answer(self, result: Any, request: HttpRequest) -> HttpResponse:
        if not isinstance(result, dict) or "statusCode" not in result:
            raise ValueError(f"malformed Lambda proxy response: {str(result)[:200]}")
        status = int(result["statusCode"])
        headers: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name, values in (result.get("multiValueHeaders") or {}).items():
            seen.add(name.lower())
            headers.extend((str(name), str(value)) for value in _as_list(values))
        for name, value in (result.get("headers") or {}).items():
            if name.lower() not in seen and value is not None:
                headers.append((str(name), str(value)))
        raw = result.get("body")
        if raw is None:
            body = b""
        elif result.get("isBase64Encoded"):
            try:
                body = base64.b64decode(str(raw), validate=True)
            except binascii.Error as error:
                raise ValueError("isBase64Encoded body is not base64") from error
        else:
            body = str(raw).encode("utf-8")
        if request.method == "HEAD":
            body = b""
        return HttpResponse(status, headers, body)

    # -- gateway responses ------------------------------------------------------------------------

    def gateway_response(self, response_type: str, request: HttpRequest, request_id: str) -> HttpResponse:
        """API Gateway's answer of ``response_type``, customised by the template's GatewayResponses
        (the type's own entry, else its DEFAULT_4XX/DEFAULT_5XX family entry)."""
        status, message, family = DEFAULT_RESPONSES[response_type]
        custom = self.definition.responses.get(response_type)
        family_custom = self.definition.responses.get(family)
        if custom is not None and custom.status is not None:
            status = custom.status
        variables = {
            "$context.error.messageString": json.dumps(message),
            "$context.error.message": message,
            "$context.error.responseType": response_type,
            "$context.error.validationErrorString": '""',
            "$context.requestId": request_id,
            "$context.extendedRequestId": request_id,
            "$context.httpMethod": request.method,
            "$context.stage": self.definition.stage,
            "$context.apiId": self.definition.api_id,
            "$context.path": unquote(request.raw_path),
        }
        templates: dict[str, str] = {}
        headers: dict[str, str] = {}
        for layer in (family_custom, custom):
            if layer is not None:
                templates = layer.templates or templates
                headers.update(layer.headers)
        content_type = "application/json"
        text = json.dumps({"message": message})
        if templates:
            accept = (request.header("Accept") or "").split(",")[0].split(";")[0].strip()
            content_type = (
                accept
                if accept in templates
                else next((kind for kind in templates if kind == "application/json"), next(iter(templates)))
            )
            text = _render(templates[content_type], variables)
        answer: list[tuple[str, str]] = [("Content-Type", content_type)]
        for name, value in headers.items():
            rendered = _header_value(value, request)
            if rendered is not None:
                answer = [item for item in answer if item[0].lower() != name.lower()] + [(name, rendered)]
        answer.append(("x-amzn-ErrorType", _error_type(response_type)))
        answer.append(("x-amzn-RequestId", request_id))
        return HttpResponse(status, answer, text.encode("utf-8") if request.method != "HEAD" else b"")


def _error_type(response_type: str) -> str:
    return {
        "UNAUTHORIZED": "UnauthorizedException",
        "ACCESS_DENIED": "AccessDeniedException",
        "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
        "REQUEST_TOO_LARGE": "RequestTooLargeException",
    }.get(response_type, "InternalServerErrorException")


def _render(template: str, variables: dict[str, str]) -> str:
    """Substitute ``$context.x`` and ``${context.x}`` references (longest names first)."""
    for name in sorted(variables, key=len, reverse=True):
        template = template.replace("${" + name[1:] + "}", variables[name]).replace(name, variables[name])
    return template


def _header_value(value: str, request: HttpRequest) -> str | None:
    """A gateway response header mapping: ``'static'`` or ``method.request.header.X``."""
    if len(value) >= 2 and value.startswith("'") and value.endswith("'"):
        return value[1:-1]
    prefix = "method.request.header."
    if value.startswith(prefix):
        return request.header(value[len(prefix) :])
    return value


def _check_authorizer_result(result: Any) -> None:
    if not isinstance(result, dict):
        raise InvalidPolicy("the authorizer answered no object")
    if not result.get("principalId"):
        raise InvalidPolicy("the authorizer answer has no principalId")
    policy = result.get("policyDocument")
    if not isinstance(policy, dict) or not _as_list(policy.get("Statement")):
        raise InvalidPolicy("the authorizer answer has no policyDocument with statements")
    context = result.get("context") or {}
    if not isinstance(context, dict) or any(isinstance(value, dict | list) for value in context.values()):
        raise InvalidPolicy("the authorizer context must map names to strings, numbers or booleans")


# ---------------------------------------------------------------------------------------------------
# The HTTP server


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"
    server_version = "encounter-api-local"

    def _serve(self) -> None:
        raw_path, _, query = self.path.partition("?")
        if raw_path.startswith(("http://", "https://")):
            raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "bad request body")
            return
        request = HttpRequest(
            method=self.command,
            raw_path=raw_path or "/",
            query=query,
            headers=[(name, value) for name, value in self.headers.items()],
            body=body,
            source_ip=self.client_address[0],
        )
        response = self.server.gateway.handle(request)
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
        else:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES + 1:
                    self.close_connection = True
                    return b"x" * (MAX_BODY_BYTES + 1)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY_BYTES:
            # Too large: answer 413 without reading it all, and close the connection.
            self.close_connection = True
            return b"x" * (MAX_BODY_BYTES + 1)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.info("%s %s", self.address_string(), format % args)


class GatewayServer(ThreadingHTTPServer):
    """The threaded HTTP server in front of a Gateway."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> None:
        self.gateway = gateway
        super().__init__((host, port), _Handler)
        gateway.set_port(int(self.server_address[1]))

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def serve_in_thread(
    gateway: Gateway, host: str = "127.0.0.1", port: int = 0
) -> tuple[GatewayServer, threading.Thread]:
    """Start the gateway's server in a daemon thread; stop it with ``server.shutdown()``."""
    server = GatewayServer(gateway, host, port)
    thread = threading.Thread(target=server.serve_forever, name=f"gateway-{server.port}", daemon=True)
    thread.start()
    return server, thread
