"""Over HTTP through the local gateway: every answer, the functions' and the gateway's own, is
no-store and nosniff; links point at the stack's own address whatever Host the client sends."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from conftest import ApiSession

from local.stack import LocalStack

pytestmark = pytest.mark.slow

SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


def assert_not_cached_nor_sniffed(response: requests.Response) -> None:
    assert response.headers.get("Cache-Control") == "no-store", response.headers
    assert response.headers.get("X-Content-Type-Options") == "nosniff", response.headers


@pytest.mark.parametrize(
    ("path", "role", "status"),
    [
        ("metadata", None, 200),  # a function answer without a token
        ("Patient", None, 401),  # the gateway's own answer: no token
        ("Patient", "auditor", 200),  # a search
        ("Patient/does-not-exist", "auditor", 404),  # a function's OperationOutcome
        ("Nothing/here/at/all/x", "auditor", 404),  # the fallback
    ],
)
def test_every_answer_is_not_cached_nor_sniffed(
    api: ApiSession, auth: Callable[..., dict[str, str]], path: str, role: str | None, status: int
) -> None:
    # When the API answers, whoever answers
    response = api.get(path, headers=auth(role) if role else {})
    # Then no cache may keep it and no browser may read it as another type
    assert response.status_code == status, response.text
    assert_not_cached_nor_sniffed(response)


def test_links_point_at_the_stack_whatever_host_the_client_names(
    api: ApiSession, auth: Callable[..., dict[str, str]], local_stack: LocalStack
) -> None:
    headers = {**auth("practitioner"), "Content-Type": "application/fhir+json"}
    # Given a client that names another host in Host and X-Forwarded-*
    patient = {"resourceType": "Patient", "name": [{"family": "Linkwood"}]}
    created = api.post("Patient", json=patient, headers={**headers, **SPOOFED})
    found = api.get("Patient", params={"family": "Linkwood"}, headers={**headers, **SPOOFED})
    # Then Location, self and fullUrl are on the stack's own address
    assert created.status_code == 201, created.text
    urls = [created.headers["Location"], *(link["url"] for link in found.json()["link"])]
    urls += [entry["fullUrl"] for entry in found.json()["entry"]]
    for url in urls:
        assert url.startswith(f"{local_stack.base_url}/"), url
