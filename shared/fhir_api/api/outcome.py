"""The one place where domain exceptions become HTTP answers: an OperationOutcome with its status."""

from __future__ import annotations

from fhir_api import errors
from fhir_api.api.http import Response

# Most specific class first: the first match wins.
HTTP_STATUS: tuple[tuple[type[errors.ApiError], int], ...] = (
    (errors.SearchTooCostly, 400),
    (errors.InvalidRequest, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.ResourceGone, 410),
    (errors.ResourceNotFound, 404),
    (errors.MethodNotAllowed, 405),
    (errors.NotAcceptable, 406),
    (errors.VersionConflict, 409),
    (errors.DuplicateResource, 409),
    (errors.RequestInProgress, 409),
    (errors.ResourceInUse, 409),
    (errors.PreconditionFailed, 412),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.BusinessRuleViolation, 422),
    (errors.IdempotencyKeyReused, 422),
    (errors.UnprocessablePatch, 422),
    (errors.OperationNotSupported, 501),
    (errors.ServiceUnavailable, 503),
)


def status_of(error: errors.ApiError) -> int:
    """The HTTP status that answers ``error``."""
    for error_class, status in HTTP_STATUS:
        if isinstance(error, error_class):
            return status
    return 500


def operation_outcome(issues: list[errors.Issue]) -> dict:
    """An OperationOutcome resource listing ``issues``."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": issue.severity,
                "code": issue.code,
                "diagnostics": issue.diagnostics,
                **({"expression": list(issue.expression)} if issue.expression else {}),
            }
            for issue in issues
        ],
    }


def error_response(error: errors.ApiError) -> Response:
    """The answer to a refused request."""
    headers: dict[str, str] = {}
    if isinstance(error, errors.ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, errors.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(error, errors.MethodNotAllowed) and error.allowed:
        headers["Allow"] = ", ".join(error.allowed)
    return Response(status_of(error), operation_outcome(error.issues), headers)


def internal_error_response() -> Response:
    """The answer to a failure of the server itself; it says nothing about the cause."""
    issue = errors.Issue("exception", "The server could not complete the request.")
    return Response(500, operation_outcome([issue]))


def quote_request_id(response: Response, request_id: str) -> None:
    """Name the request in the answer (``X-Request-Id``, and an information issue of an OperationOutcome),
    so that a caller's support ticket leads to the request's log lines."""
    if not request_id:
        return
    response.headers["X-Request-Id"] = request_id
    body = response.body
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = body.setdefault("issue", [])
        issues.append(
            {"severity": "information", "code": "informational", "diagnostics": f"Request id: {request_id}"}
        )
