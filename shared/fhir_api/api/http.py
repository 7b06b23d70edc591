"""HTTP in FHIR's terms: the request parsed from an API Gateway REST proxy event (payload 1.0), and
the response handed back to it.

Payload 1.0 keeps repeated query parameters apart (``date=ge2024&date=lt2025``), which FHIR needs:
a comma inside one value means OR, a repeated parameter means AND.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fhir_api.fhir.fhirjson import dumps

FHIR_JSON = "application/fhir+json"
ACCEPTED_BODY_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
# On every function answer: answers may hold PHI, so no cache (browser or proxy) keeps them, and no
# browser guesses another type than the one declared.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class Request:
    """What a function needs of one API Gateway proxy event."""

    method: str
    path: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes | None
    request_id: str
    sub: str
    roles: tuple[str, ...]
    base_url: str

    @classmethod
    def from_event(cls, event: dict[str, Any], public_base_url: str | None = None) -> Request:
        """Parse a REST API proxy event; the caller's identity comes only from the authorizer."""
        context = event.get("requestContext") or {}
        authorizer = context.get("authorizer") or {}
        headers = _headers(event)
        return cls(
            method=(event.get("httpMethod") or "GET").upper(),
            path=event.get("path") or "",
            path_params=dict(event.get("pathParameters") or {}),
            query=_query(event),
            headers=headers,
            body=_body(event),
            request_id=str(context.get("requestId") or ""),
            sub=str(authorizer.get("sub") or authorizer.get("principalId") or ""),
            roles=tuple(str(authorizer.get("roles") or "").split()),
            base_url=public_base_url.rstrip("/") if public_base_url else _base_url(event),
        )

    def header(self, name: str) -> str | None:
        """A header's value, by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass
class Response:
    """A FHIR answer: status, JSON body (already serialised or a dict) and headers."""

    status: int
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # For the audit record only, never sent: the patients whose data the answer held or the write touched.
    patients: tuple[str, ...] = ()
    # For the audit record only: the names of the search parameters, when not all are in the URL (a POST
    # _search's form body, a sealed page token).
    query_names: tuple[str, ...] | None = None
    # For the audit record only: the interaction, when the route's own is not the exact one (a batch
    # at the Bundle route, whose route says transaction).
    interaction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (kept as the first answer of an idempotent request)."""
        body = self.body if self.body is None or isinstance(self.body, str) else dumps(self.body)
        return {
            "status": self.status,
            "headers": dict(self.headers),
            "body": body,
            "patients": list(self.patients),
            "interaction": self.interaction,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Response:
        """The response ``to_dict`` described."""
        patients = tuple(str(patient) for patient in data.get("patients") or ())
        interaction = data.get("interaction")
        return cls(
            int(data["status"]),
            data.get("body"),
            dict(data.get("headers") or {}),
            patients,
            interaction=str(interaction) if interaction else None,
        )

    def to_proxy(self) -> dict[str, Any]:
        """The API Gateway proxy integration result, with the security headers every answer carries."""
        headers = {**self.headers, **SECURITY_HEADERS}
        if self.body is None:
            text = ""
        else:
            text = self.body if isinstance(self.body, str) else dumps(self.body)
            headers.setdefault("Content-Type", f"{FHIR_JSON}; charset=utf-8")
        return {"statusCode": self.status, "headers": headers, "body": text, "isBase64Encoded": False}


def _headers(event: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    multi = event.get("multiValueHeaders") or {}
    for name, values in multi.items():
        if values:
            headers[name.lower()] = ", ".join(str(value) for value in values)
    for name, value in (event.get("headers") or {}).items():
        if value is not None:
            headers.setdefault(name.lower(), str(value))
    return headers


def _query(event: dict[str, Any]) -> dict[str, list[str]]:
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        return {name: [str(value) for value in values] for name, values in multi.items()}
    single = event.get("queryStringParameters") or {}
    return {name: [str(value)] for name, value in single.items()}


def _body(event: dict[str, Any]) -> bytes | None:
    body = event.get("body")
    if body is None:
        return None
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    # API Gateway hands a text body as str; surrogates stand for bytes that were not UTF-8.
    return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)


def _base_url(event: dict[str, Any]) -> str:
    """``{scheme}://{domain}[/{stage}]/api/fhir`` from what API Gateway itself reports.

    Never from the client's ``Host`` or ``X-Forwarded-*`` headers: a client that sets them would
    otherwise choose where the ``Location``, ``self``, ``next`` and ``fullUrl`` links point. API
    Gateway serves HTTPS only; a loopback domain is the local stack, which serves HTTP.
    """
    context = event.get("requestContext") or {}
    domain = str(context.get("domainName") or "localhost")
    scheme = "http" if _is_loopback(domain) else "https"
    return f"{scheme}://{domain}{_stage_prefix(event)}/api/fhir"


def _stage_prefix(event: dict[str, Any]) -> str:
    """``/Prod`` on an execute-api domain (or a custom domain's base path), ``""`` without one."""
    context = event.get("requestContext") or {}
    full_path = str(context.get("path") or "")
    path = str(event.get("path") or "")
    # requestContext.path is the path as called (/Prod/api/fhir/...); event.path is the resource's.
    if path and full_path.endswith(path):
        return full_path[: len(full_path) - len(path)].rstrip("/")
    stage = str(context.get("stage") or "")
    return f"/{stage}" if stage and full_path.startswith(f"/{stage}/") else ""


@functools.lru_cache(maxsize=16)  # one or two domains per deployment
def _is_loopback(domain: str) -> bool:
    try:
        host = urlsplit(f"//{domain}").hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
