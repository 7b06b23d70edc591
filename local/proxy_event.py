"""The Lambda proxy integration, payload 1.0: the event API Gateway hands a function for a request,
and the HTTP answer it makes of the function's result.
"""

from __future__ import annotations

import base64
import binascii
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from local import ACCOUNT_ID
from local.api_model import ApiRoute
from local.http_messages import HttpRequest, HttpResponse


def build_event(
    request: HttpRequest,
    route: ApiRoute,
    path_params: dict[str, str],
    *,
    path: str,
    stage_prefix: str,
    request_id: str,
    api_id: str,
    stage: str,
    domain_name: str,
    authorizer_context: dict[str, Any] | None,
) -> dict[str, Any]:
    """The REST API proxy event (payload 1.0) API Gateway builds for this request.

    ``path`` is the decoded path without the stage; ``stage_prefix`` is ``/<stage>`` when the client
    called with it, else empty. ``domain_name`` is the host and port the gateway is bound to: the
    client's Host header is the client's to choose, so nothing that builds links may trust it.
    """
    multi_headers = _multi_headers(request, domain_name)
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    body, is_base64 = _body(request.body)
    context = _request_context(request, route, request_id, api_id, stage, domain_name)
    context["path"] = f"{stage_prefix}{path}"
    if authorizer_context is not None:
        context["authorizer"] = authorizer_context
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _multi_headers(request: HttpRequest, domain_name: str) -> dict[str, list[str]]:
    """The request's headers by first-seen spelling, plus the X-Forwarded-* API Gateway adds."""
    multi_headers: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in request.headers:
        key = names.setdefault(name.lower(), name)
        multi_headers.setdefault(key, []).append(value)
    port = domain_name.rsplit(":", 1)[-1] if ":" in domain_name else "80"
    for name, value in (
        ("X-Forwarded-For", request.source_ip),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", port),
    ):
        if name.lower() not in names:
            names[name.lower()] = name
            multi_headers[name] = [value]
    return multi_headers


def _body(raw: bytes) -> tuple[str | None, bool]:
    if not raw:
        return None, False
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        # Bytes that are not UTF-8 reach the function intact, so it can refuse them.
        return base64.b64encode(raw).decode("ascii"), True


def _request_context(
    request: HttpRequest, route: ApiRoute, request_id: str, api_id: str, stage: str, domain_name: str
) -> dict[str, Any]:
    now = time.time()
    return {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0].split(":", 1)[0],
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
        "protocol": "HTTP/1.1",
        "requestId": request_id,
        "requestTime": formatdate(now, usegmt=True),
        "requestTimeEpoch": int(now * 1000),
        "resourceId": format(abs(hash(route.resource)) % 0xFFFFFF, "06x"),
        "resourcePath": route.resource,
        "stage": stage,
    }


class MalformedProxyResult(ValueError):
    """A function answered something that is not a Lambda proxy result (API Gateway answers 502)."""


def proxy_answer(result: Any, request: HttpRequest) -> HttpResponse:
    """The HTTP answer of a function's proxy result; MalformedProxyResult when it is not one."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # The result's type and keys only: its content may be a patient's record.
        keys = sorted(str(key) for key in result) if isinstance(result, dict) else []
        raise MalformedProxyResult(f"not a Lambda proxy result: {type(result).__name__} {keys}")
    body = b"" if request.method == "HEAD" else _result_body(result)
    return HttpResponse(int(result["statusCode"]), _result_headers(result), body)


def _result_headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    """multiValueHeaders, then the headers they do not name."""
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, values in (result.get("multiValueHeaders") or {}).items():
        seen.add(name.lower())
        headers.extend((str(name), str(value)) for value in _as_list(values))
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in seen and value is not None:
            headers.append((str(name), str(value)))
    return headers


def _result_body(result: dict[str, Any]) -> bytes:
    raw = result.get("body")
    if raw is None:
        return b""
    if not result.get("isBase64Encoded"):
        return str(raw).encode("utf-8")
    try:
        return base64.b64decode(str(raw), validate=True)
    except binascii.Error as error:
        raise MalformedProxyResult("isBase64Encoded body is not base64") from error


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
