"""Links the server writes (Location, self, next, fullUrl) point at API Gateway's own domain and stage
or at PUBLIC_BASE_URL, never where the client's Host or X-Forwarded-* headers say; every function
answer carries the security headers."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_api.api.http import Request, Response

EXECUTE_API = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}


def event(
    domain: str | None, full_path: str, path: str = "/api/fhir/Patient", **headers: str
) -> dict[str, Any]:
    """A REST proxy event as API Gateway builds it for ``full_path`` (the path as called)."""
    context: dict[str, Any] = {"path": full_path, "stage": "Prod", "requestId": "r1"}
    if domain is not None:
        context["domainName"] = domain
    return {
        "httpMethod": "GET",
        "path": path,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "requestContext": context,
    }


@pytest.mark.parametrize(
    ("domain", "full_path", "expected"),
    [
        # An execute-api domain: the stage is part of the path as called
        (EXECUTE_API, "/Prod/api/fhir/Patient", f"https://{EXECUTE_API}/Prod/api/fhir"),
        # A custom domain mapped at its root, and one mapped under a base path
        ("fhir.clinic.example", "/api/fhir/Patient", "https://fhir.clinic.example/api/fhir"),
        ("fhir.clinic.example", "/v1/api/fhir/Patient", "https://fhir.clinic.example/v1/api/fhir"),
        # The local stack: a loopback domain with its port, with and without the stage prefix
        ("127.0.0.1:3000", "/Prod/api/fhir/Patient", "http://127.0.0.1:3000/Prod/api/fhir"),
        ("127.0.0.1:3000", "/api/fhir/Patient", "http://127.0.0.1:3000/api/fhir"),
        ("127.5.6.7:8080", "/api/fhir/Patient", "http://127.5.6.7:8080/api/fhir"),
        ("localhost:3001", "/api/fhir/Patient", "http://localhost:3001/api/fhir"),
        ("[::1]:3000", "/api/fhir/Patient", "http://[::1]:3000/api/fhir"),
        # A name that merely starts like a loopback one is not the local stack
        ("127.0.0.1.evil.example", "/api/fhir/Patient", "https://127.0.0.1.evil.example/api/fhir"),
        ("localhost.evil.example", "/api/fhir/Patient", "https://localhost.evil.example/api/fhir"),
    ],
)
def test_the_base_url_is_the_gateways_domain_and_stage_whatever_the_client_sends(
    domain: str, full_path: str, expected: str
) -> None:
    # Given a request whose Host and X-Forwarded-* headers name another host and plain HTTP
    request = Request.from_event(event(domain, full_path, **SPOOFED))
    # Then its links are built on the domain and stage API Gateway reported
    assert request.base_url == expected


def test_the_stage_comes_from_the_request_context_when_the_paths_differ_in_encoding() -> None:
    # Given a path API Gateway decoded (event.path) while requestContext.path keeps its encoding
    request = Request.from_event(
        event(EXECUTE_API, "/Prod/api/fhir/Patient/a%20b", path="/api/fhir/Patient/a b", **SPOOFED)
    )
    # Then the stage still prefixes the links
    assert request.base_url == f"https://{EXECUTE_API}/Prod/api/fhir"


def test_public_base_url_wins_over_every_derived_value() -> None:
    # Given PUBLIC_BASE_URL (a custom domain in front of the API) and a spoofing client
    request = Request.from_event(
        event(EXECUTE_API, "/Prod/api/fhir/Patient", **SPOOFED), "https://fhir.clinic.example/api/fhir/"
    )
    # Then the links use it exactly (without its trailing slash)
    assert request.base_url == "https://fhir.clinic.example/api/fhir"


def test_an_event_without_a_domain_never_falls_back_to_the_host_header() -> None:
    # Given an event without requestContext.domainName (a hand-written test event)
    request = Request.from_event(event(None, "/api/fhir/Patient", **SPOOFED))
    # Then the client's Host is still not used
    assert "evil.example" not in request.base_url
    assert request.base_url == "http://localhost/api/fhir"


@pytest.mark.parametrize(
    "response",
    [
        Response(200, {"resourceType": "Patient", "id": "p1"}),
        Response(204),
        # A function that sets its own caching headers cannot weaken these
        Response(200, "{}", {"Cache-Control": "max-age=3600", "X-Content-Type-Options": "none"}),
    ],
)
def test_every_answer_is_not_cached_and_not_sniffed(response: Response) -> None:
    # When a response is handed to API Gateway
    headers = response.to_proxy()["headers"]
    # Then no cache keeps it and no browser guesses its type
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
