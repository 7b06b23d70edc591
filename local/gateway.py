"""The local API Gateway: serves the REST API of template.yaml the way API Gateway does.

For each request it picks the route (specific resources win over ``{proxy+}``, ``local.api_model``),
runs the TOKEN authorizer with the request's methodArn and caches its answer per token
(``local.authorizer_cache``), evaluates the IAM policy (wildcards, Deny wins: ``fhir_api.auth.iam``),
builds the REST proxy event and calls the function (``local.proxy_event``, ``local.lambda_runtime``),
and turns its proxy result into the HTTP answer. Refusals use the template's gateway responses
(``local.gateway_responses``). ``local.server`` puts it on a port. Before routing it answers what only
the local stack serves: the issuer's JWKS, and openapi.yaml with its Swagger UI page (``local.api_docs``).

Paths are served with or without the stage prefix (``/Prod/api/fhir/...`` as on an execute-api host,
``/api/fhir/...`` as on a custom domain).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fhir_api.auth.iam import is_allowed
from local import LOCAL_DIR, REGION, ROOT, issuer, local_secret, tables
from local.api_docs import OPENAPI_FILE, SWAGGER_UI_DIR, ApiDocs
from local.api_model import ApiDefinition, ApiRoute
from local.audit_trail import DEAD_LETTERS, AuditTrail
from local.authorizer_cache import (
    AuthorizerCache,
    AuthorizerFailure,
    InvalidPolicy,
    Unauthorized,
    method_arn,
)
from local.gateway_responses import gateway_response
from local.http_messages import MAX_BODY_BYTES, HttpRequest, HttpResponse
from local.lambda_runtime import FunctionRuntime
from local.proxy_event import build_event, proxy_answer

logger = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
DEFAULT_HOST = "127.0.0.1"


class Gateway:
    """The local API Gateway for one template: route, authorize, invoke, answer."""

    def __init__(
        self,
        template: dict[str, Any] | None = None,
        *,
        root: Path = ROOT,
        host: str = DEFAULT_HOST,
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
        self.host = host
        self.port = port
        environment = self._environment(template, dynamodb_endpoint, table_prefix, extra_env or {})
        self.functions = FunctionRuntime(self.definition.functions, environment, root / "shared")
        self.authorizers = AuthorizerCache(self.functions.invoke, clock)
        self.audit_trail = self._audit_trail(dynamodb_endpoint)
        self.docs = ApiDocs(root / OPENAPI_FILE.relative_to(ROOT), root / SWAGGER_UI_DIR.relative_to(ROOT))

    @property
    def environment(self) -> dict[str, str]:
        """The functions' environment: the union of their template variables and the local settings."""
        return self.functions.environment

    @property
    def domain_name(self) -> str:
        """``host:port`` the gateway is bound to: the requestContext.domainName of every event."""
        return f"{self.host}:{self.port}"

    @property
    def authorizer_calls(self) -> int:
        """How many times an authorizer ran (answers from the cache not counted)."""
        return self.authorizers.calls

    def _environment(
        self, template: dict[str, Any], endpoint: str | None, prefix: str, extra: dict[str, str]
    ) -> dict[str, str]:
        environment: dict[str, str] = {}
        for spec in self.definition.functions.values():
            for name, value in spec.environment.items():
                if name in environment and environment[name] != value:
                    logger.warning("functions disagree on %s; the local gateway uses %r", name, value)
                environment[name] = value
        if any(
            isinstance(resource, dict) and resource.get("Type") == tables.TABLE_TYPE
            for resource in (template.get("Resources") or {}).values()
        ):
            for name, value in tables.table_env(prefix, template).items():
                environment.setdefault(name, value)
        environment.update(
            {
                "JWKS_URL": self._jwks_url(),
                "TOKEN_ISSUER": issuer.ISSUER,
                "TOKEN_AUDIENCE": issuer.AUDIENCE,
                "ALLOWED_CLIENT_IDS": issuer.CLIENT_ID,
                "PAGE_TOKEN_SECRET": local_secret("page-token-secret"),
                # rest-hook receivers on the laptop listen on http://127.0.0.1 (AWS: https, public only)
                "ALLOW_HTTP_LOOPBACK_ENDPOINTS": "1",
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

    def _audit_trail(self, endpoint: str | None) -> AuditTrail | None:
        """The audit pipeline, when the template has the AuditEvents table and DynamoDB is local."""
        if not endpoint or "AUDIT_EVENTS_TABLE" not in self.environment:
            return None
        import boto3

        from fhir_api.auditevents.store import AuditEventStore
        from fhir_api.settings import Settings

        settings = Settings.from_environ(self.environment)
        client = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        store = AuditEventStore(client, settings.audit_events_table, settings.audit_retention_days)
        return AuditTrail(store, settings.audit_observer, LOCAL_DIR / DEAD_LETTERS)

    def close(self) -> None:
        """Store the audit lines still queued and stop the audit pipeline."""
        if self.audit_trail is not None:
            self.audit_trail.close()

    def _jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    def set_address(self, host: str, port: int) -> None:
        """Record the address actually bound (events name it; the JWKS URL points at this server)."""
        self.host = host
        self.port = port
        self.functions.set_variable("JWKS_URL", self._jwks_url())

    def activate(self) -> None:
        """Put this gateway's function environment into the process (before a handler runs)."""
        self.functions.activate()

    def clear_cache(self) -> None:
        """Forget cached authorizer answers."""
        self.authorizers.clear()

    # -- one request ------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Serve one request: JWKS, the API docs, or route -> authorize -> function -> proxy result."""
        request_id = str(uuid.uuid4())
        raw_path, stage_prefix = self._strip_stage(request.raw_path)
        if request.method in ("GET", "HEAD") and raw_path == JWKS_PATH:
            body = json.dumps(issuer.jwks()).encode("utf-8")
            headers = [("Content-Type", "application/json"), ("Cache-Control", "max-age=300")]
            return HttpResponse(200, headers, b"" if request.method == "HEAD" else body)
        docs = self.docs.answer(request.method, raw_path, stage_prefix)
        if docs is not None:
            return docs
        found = self.definition.find(request.method, raw_path)
        if found is None:
            return self._refuse("MISSING_AUTHENTICATION_TOKEN", request, request_id)
        route, path_params = found
        if len(request.body) > MAX_BODY_BYTES:
            return self._refuse("REQUEST_TOO_LARGE", request, request_id)
        authorizer_context: dict[str, Any] | None = None
        if route.authorizer is not None:
            refusal, authorizer_context = self._authorize(route, request, raw_path)
            if refusal is not None:
                return self._refuse(
                    refusal, request, request_id, (authorizer_context or {}).get("principalId")
                )
        event = build_event(
            request,
            route,
            path_params,
            path=unquote(raw_path),
            stage_prefix=stage_prefix,
            request_id=request_id,
            api_id=self.definition.api_id,
            stage=self.definition.stage,
            domain_name=self.domain_name,
            authorizer_context=authorizer_context,
        )
        try:
            # Each Lambda invocation has its own id, as in AWS; the API's request id is in the event.
            invocation_id = str(uuid.uuid4())
            with self._audited():
                answer = self.functions.invoke(route.function, event, invocation_id)
            return proxy_answer(answer, request)
        except Exception:
            logger.exception("function %s failed", route.function)
            return self._refuse("INTEGRATION_FAILURE", request, request_id)

    def _authorize(
        self, route: ApiRoute, request: HttpRequest, raw_path: str
    ) -> tuple[str | None, dict[str, Any] | None]:
        """(the gateway response type refusing the request, None) or (None, the authorizer context)."""
        authorizer = self.definition.authorizers[str(route.authorizer)]
        token = request.header(authorizer.header)
        if not token or (authorizer.validation and not re.fullmatch(authorizer.validation, token)):
            return "UNAUTHORIZED", None
        arn = method_arn(self.definition.api_id, self.definition.stage, request.method, raw_path)
        try:
            result = self.authorizers.authorize(authorizer, token, arn, str(uuid.uuid4()))
        except Unauthorized:
            return "UNAUTHORIZED", None
        except InvalidPolicy as error:
            logger.error("authorizer %s answered an invalid policy: %s", authorizer.function, error)
            return "AUTHORIZER_CONFIGURATION_ERROR", None
        except AuthorizerFailure:
            logger.exception("authorizer %s failed", authorizer.function)
            return "AUTHORIZER_FAILURE", None
        if not is_allowed(result["policyDocument"], arn):
            return "ACCESS_DENIED", {"principalId": str(result.get("principalId") or "")}
        context = {str(name): value for name, value in (result.get("context") or {}).items()}
        return None, {**context, "principalId": str(result["principalId"]), "integrationLatency": 0}

    def _refuse(
        self, response_type: str, request: HttpRequest, request_id: str, sub: str | None = None
    ) -> HttpResponse:
        response = gateway_response(self.definition, response_type, request, request_id)
        if self.audit_trail is not None:
            # What API Gateway's access log says of a request no function answered.
            self.audit_trail.refused(
                request_id,
                request.method,
                request.raw_path,
                response.status,
                response_type,
                sub=sub,
                source_ip=request.source_ip,
            )
        return response

    def _audited(self) -> Any:
        """While a function runs: its audit records go to this gateway's audit pipeline."""
        if self.audit_trail is None:
            return contextlib.nullcontext()
        self.functions.activate()
        from fhir_api import logs

        return self.audit_trail.serving(logs.get_logger())

    def _strip_stage(self, raw_path: str) -> tuple[str, str]:
        prefix = f"/{self.definition.stage}"
        if raw_path == prefix or raw_path.startswith(prefix + "/"):
            return raw_path[len(prefix) :] or "/", prefix
        return raw_path, ""
