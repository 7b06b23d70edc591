"""API Gateway's own answers (401, 403, 413, 500, 502...), customised by the template's gateway
responses: the type's own entry, else its DEFAULT_4XX/DEFAULT_5XX family entry.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from local.api_model import ApiDefinition
from local.http_messages import HttpRequest, HttpResponse

# API Gateway's answers when a template does not customise a response type:
# (status, message, family default type).
DEFAULT_RESPONSES: dict[str, tuple[int, str, str]] = {
    "UNAUTHORIZED": (401, "Unauthorized", "DEFAULT_4XX"),
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

_ERROR_TYPES = {
    "UNAUTHORIZED": "UnauthorizedException",
    "ACCESS_DENIED": "AccessDeniedException",
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "REQUEST_TOO_LARGE": "RequestTooLargeException",
}


def gateway_response(
    definition: ApiDefinition, response_type: str, request: HttpRequest, request_id: str
) -> HttpResponse:
    """API Gateway's answer of ``response_type`` to ``request``, as the template customises it."""
    status, message, family = DEFAULT_RESPONSES[response_type]
    custom = definition.responses.get(response_type)
    if custom is not None and custom.status is not None:
        status = custom.status
    templates: dict[str, str] = {}
    headers: dict[str, str] = {}
    for layer in (definition.responses.get(family), custom):
        if layer is not None:
            templates = layer.templates or templates
            headers.update(layer.headers)
    variables = _variables(definition, response_type, message, request, request_id)
    content_type, text = _body(templates, request, variables)
    answer: list[tuple[str, str]] = [("Content-Type", content_type)]
    for name, value in headers.items():
        rendered = _header_value(value, request)
        if rendered is not None:
            answer = [item for item in answer if item[0].lower() != name.lower()] + [(name, rendered)]
    answer.append(("x-amzn-ErrorType", _ERROR_TYPES.get(response_type, "InternalServerErrorException")))
    answer.append(("x-amzn-RequestId", request_id))
    return HttpResponse(status, answer, text.encode("utf-8") if request.method != "HEAD" else b"")


def _variables(
    definition: ApiDefinition, response_type: str, message: str, request: HttpRequest, request_id: str
) -> dict[str, str]:
    """The ``$context`` variables a response template may use."""
    return {
        "$context.error.messageString": json.dumps(message),
        "$context.error.message": message,
        "$context.error.responseType": response_type,
        "$context.error.validationErrorString": '""',
        "$context.requestId": request_id,
        "$context.extendedRequestId": request_id,
        "$context.httpMethod": request.method,
        "$context.stage": definition.stage,
        "$context.apiId": definition.api_id,
        "$context.path": unquote(request.raw_path),
    }


def _body(templates: dict[str, str], request: HttpRequest, variables: dict[str, str]) -> tuple[str, str]:
    """The content type and text: the template for the client's Accept, else application/json, else
    the first; API Gateway's ``{"message": ...}`` without templates."""
    if not templates:
        return "application/json", json.dumps({"message": variables["$context.error.message"]})
    accept = (request.header("Accept") or "").split(",")[0].split(";")[0].strip()
    if accept in templates:
        content_type = accept
    elif "application/json" in templates:
        content_type = "application/json"
    else:
        content_type = next(iter(templates))
    return content_type, _render(templates[content_type], variables)


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
