"""Domain exceptions of the API.

Each says what went wrong in FHIR's words (an OperationOutcome issue code, the element it concerns);
``fhir_api.api.outcome`` is the one place that turns them into HTTP answers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: FHIR issue code, human text and the FHIRPath of the element."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"


class ApiError(Exception):
    """Base of every error the API answers with an OperationOutcome."""

    issue_code = "processing"

    def __init__(
        self, diagnostics: str, expression: tuple[str, ...] = (), issues: list[Issue] | None = None
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = tuple(expression)
        self.issues = issues or [Issue(self.issue_code, diagnostics, self.expression)]
        # Which write of a multi-write transaction the error concerns (a Bundle entry), when known.
        self.write_index: int | None = None


class Unauthenticated(ApiError):
    """No valid bearer token stands behind the request: none reached the function, or it expired (401)."""

    issue_code = "login"


class Forbidden(ApiError):
    """The token's roles and scopes do not allow this interaction (403)."""

    issue_code = "forbidden"


class InvalidRequest(ApiError):
    """The request cannot be understood: syntax, structure, types, unknown elements (400)."""

    issue_code = "invalid"


class InvalidResource(InvalidRequest):
    """The resource does not conform to FHIR R4 (400); ``issues`` name every element."""


class BusinessRuleViolation(ApiError):
    """A well-formed resource that breaks a rule of this server (422)."""

    issue_code = "business-rule"


class UnprocessablePatch(ApiError):
    """A well-formed patch that cannot be applied to the current version: a ``test`` that fails, a path
    that is not there, or a result that is not a valid resource (422)."""

    issue_code = "processing"


class ResourceNotFound(ApiError):
    """No resource (or version) with that id (404)."""

    issue_code = "not-found"


class ResourceGone(ResourceNotFound):
    """The resource (or the version asked for) was deleted (410)."""

    issue_code = "deleted"


class ResourceInUse(ApiError):
    """The resource cannot be deleted while others still reference it (409)."""

    issue_code = "conflict"


class MethodNotAllowed(ApiError):
    """The route does not take this HTTP method (405); ``allowed`` lists the methods it takes."""

    issue_code = "not-supported"

    def __init__(self, diagnostics: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(diagnostics)
        self.allowed = allowed


class OperationNotSupported(ApiError):
    """A FHIR operation (``$everything``, ``$export``...) this server does not implement (501)."""

    issue_code = "not-supported"


class VersionConflict(ApiError):
    """The resource changed since the version the write replaces (409 without If-Match)."""

    issue_code = "conflict"


class PreconditionFailed(ApiError):
    """``If-Match`` names a version that is not the current one (412)."""

    issue_code = "conflict"


class DuplicateResource(ApiError):
    """A unique business key (a Patient identifier) is held by another resource (409)."""

    issue_code = "duplicate"


class RequestInProgress(ApiError):
    """The same Idempotency-Key is still being processed (409)."""

    issue_code = "conflict"


class IdempotencyKeyReused(ApiError):
    """The same Idempotency-Key came back with a different body (422)."""

    issue_code = "business-rule"


class PayloadTooLarge(ApiError):
    """The body is larger than the server accepts (413)."""

    issue_code = "too-costly"


class UnsupportedMediaType(ApiError):
    """The body is not FHIR JSON (415)."""

    issue_code = "not-supported"


class NotAcceptable(ApiError):
    """The client accepts no format this server produces (406)."""

    issue_code = "not-supported"


class SearchTooCostly(ApiError):
    """A search that would read far more than it returns (400, issue code too-costly)."""

    issue_code = "too-costly"


class ServiceUnavailable(ApiError):
    """The database throttled or could not be reached; the client may retry (503)."""

    issue_code = "transient"

    def __init__(self, diagnostics: str, retry_after_seconds: int = 1) -> None:
        super().__init__(diagnostics)
        self.retry_after_seconds = retry_after_seconds
