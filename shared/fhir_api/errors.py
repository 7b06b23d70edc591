"""Domain exceptions of the API.

Each says what went wrong in FHIR's words (an OperationOutcome issue code, the element it concerns);
``fhir_api.outcome`` is the one place that turns them into HTTP answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: FHIR issue code, human text and the FHIRPath of the element."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"


@dataclass
class ApiError(Exception):
    """Base of every error the API answers with an OperationOutcome."""

    diagnostics: str
    expression: tuple[str, ...] = ()
    issues: list[Issue] = field(default_factory=list)
    issue_code: str = "processing"

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)
        if not self.issues:
            self.issues = [Issue(self.issue_code, self.diagnostics, tuple(self.expression))]


@dataclass
class InvalidRequest(ApiError):
    """The request cannot be understood: syntax, structure, types, unknown elements (400)."""

    issue_code: str = "invalid"


@dataclass
class InvalidResource(InvalidRequest):
    """The resource does not conform to FHIR R4 (400); ``issues`` name every element."""


@dataclass
class BusinessRuleViolation(ApiError):
    """A well-formed resource that breaks a rule of this server (422)."""

    issue_code: str = "business-rule"


@dataclass
class ResourceNotFound(ApiError):
    """No resource (or version) with that id (404)."""

    issue_code: str = "not-found"


@dataclass
class MethodNotAllowed(ApiError):
    """The route does not take this HTTP method (405); ``allowed`` lists the methods it takes."""

    issue_code: str = "not-supported"
    allowed: tuple[str, ...] = ()


@dataclass
class VersionConflict(ApiError):
    """The resource changed since the version the write replaces (409 without If-Match)."""

    issue_code: str = "conflict"


@dataclass
class PreconditionFailed(ApiError):
    """``If-Match`` names a version that is not the current one (412)."""

    issue_code: str = "conflict"


@dataclass
class DuplicateResource(ApiError):
    """A unique business key (a Patient identifier) is held by another resource (409)."""

    issue_code: str = "duplicate"


@dataclass
class RequestInProgress(ApiError):
    """The same Idempotency-Key is still being processed (409)."""

    issue_code: str = "conflict"


@dataclass
class IdempotencyKeyReused(ApiError):
    """The same Idempotency-Key came back with a different body (422)."""

    issue_code: str = "business-rule"


@dataclass
class PayloadTooLarge(ApiError):
    """The body is larger than the server accepts (413)."""

    issue_code: str = "too-costly"


@dataclass
class UnsupportedMediaType(ApiError):
    """The body is not FHIR JSON (415)."""

    issue_code: str = "not-supported"


@dataclass
class NotAcceptable(ApiError):
    """The client accepts no format this server produces (406)."""

    issue_code: str = "not-supported"


@dataclass
class SearchTooCostly(ApiError):
    """A search that would read far more than it returns (400, issue code too-costly)."""

    issue_code: str = "too-costly"


@dataclass
class ServiceUnavailable(ApiError):
    """The database throttled or could not be reached; the client may retry (503)."""

    issue_code: str = "transient"
    retry_after_seconds: int = 1
