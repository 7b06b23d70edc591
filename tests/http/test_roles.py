"""The role table over HTTP, route by route, through the local gateway and the real authorizer.

Expected answers come from ``fhir_api.routes`` (the one copy of the table): a route the role may call
is never answered 401 or 403, any other is 403 with an OperationOutcome. Identity and roles come only
from the verified token: headers, bodies, method overrides and a client's meta change nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from fhir_api.routes import PUBLIC_INTERACTIONS, ROLE_INTERACTIONS, ROUTES, Route, routes_for_roles
from tests.http.route_calls import assert_forbidden, call, patient_body

pytestmark = pytest.mark.slow

FHIR_JSON = "application/fhir+json"
UNKNOWN_ROLE = "receptionist"
ROLES = [*sorted(ROLE_INTERACTIONS), UNKNOWN_ROLE]
PROTECTED = [route for route in ROUTES if route.interaction not in PUBLIC_INTERACTIONS]

Auth = Callable[..., dict[str, str]]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", PROTECTED, ids=lambda route: f"{route.method} {route.path}")
def test_each_role_gets_exactly_its_routes(
    role: str, route: Route, api: Any, auth: Auth, records: dict[str, str]
) -> None:
    # Given a token with one role and one route of the API
    allowed = route in routes_for_roles([role])

    # When the route is called
    response = call(api, route, auth(role), records)

    # Then an allowed route is served, a refused one is 403 with an OperationOutcome
    if allowed:
        assert response.status_code not in (401, 403), response.text
    else:
        assert_forbidden(response)


@pytest.mark.parametrize("role", ROLES)
def test_the_capability_statement_needs_no_role(role: str, api: Any, auth: Auth) -> None:
    # Given / When the metadata is read with any token, or none
    with_token = api.get("metadata", headers=auth(role))
    without = api.get("metadata")

    # Then it is served
    assert with_token.status_code == 200
    assert without.status_code == 200


def test_one_token_is_answered_right_on_every_route(api: Any, auth: Auth, records: dict[str, str]) -> None:
    # Given one auditor token, whose policy the gateway caches after the first call
    headers = auth("auditor", sub=f"auditor-{uuid.uuid4().hex[:8]}")

    # When it calls a read, then a write, then a read again
    first = call(api, next(route for route in PROTECTED if route.interaction == "read"), headers, records)
    write = call(api, next(route for route in PROTECTED if route.interaction == "update"), headers, records)
    searches = [route for route in PROTECTED if route.interaction == "search-type"]
    search = call(api, searches[0], headers, records)

    # Then the cached policy still refuses the write and allows the reads
    assert first.status_code == 200
    assert_forbidden(write)
    assert search.status_code == 200


# --- identity only from the verified token -----------------------------------------------------------


@pytest.mark.parametrize(
    "spoof",
    [
        {"X-Roles": "admin"},
        {"X-Role": "admin"},
        {"Roles": "admin"},
        {"X-Amzn-Oidc-Data": "admin"},
        {"X-User-Roles": "practitioner"},
        {"X-Forwarded-User": "admin"},
    ],
    ids=lambda spoof: next(iter(spoof)),
)
def test_a_role_in_a_header_changes_nothing(spoof: dict[str, str], api: Any, auth: Auth) -> None:
    # Given an auditor's token and a header claiming a writing role
    headers = {**auth("auditor"), **spoof, "Content-Type": FHIR_JSON}

    # When the auditor tries to create
    response = api.post("Patient", json=patient_body("Spoofheader"), headers=headers)

    # Then the token's role decides
    assert_forbidden(response)


def test_a_role_in_the_body_changes_nothing(api: Any, auth: Auth) -> None:
    # Given an auditor's token and a body that claims the admin role in every place one might look
    body = {
        **patient_body("Spoofbody"),
        "roles": ["admin"],
        "meta": {"security": [{"system": "roles", "code": "admin"}], "tag": [{"code": "admin"}]},
    }

    # When it is posted
    response = api.post("Patient", json=body, headers={**auth("auditor"), "Content-Type": FHIR_JSON})

    # Then it is refused
    assert_forbidden(response)


def test_a_method_override_header_changes_nothing(api: Any, auth: Auth, records: dict[str, str]) -> None:
    # Given an auditor asking a read to be treated as an update
    patient_id = records["Patient"]
    before = api.get(f"Patient/{patient_id}", headers=auth("admin")).json()
    override = {**auth("auditor"), "X-HTTP-Method-Override": "PUT", "Content-Type": FHIR_JSON}

    # When it sends GET with a body and the override, and POST with an override to GET
    body = patient_body("Overridden", patient_id)
    read = api.request("GET", f"Patient/{patient_id}", json=body, headers=override)
    post = api.post(
        "Patient", json=patient_body("Overridden"), headers={**override, "X-HTTP-Method-Override": "GET"}
    )

    # Then the GET was a read, the POST was refused, and the patient is unchanged
    assert read.status_code == 200
    assert read.json()["meta"]["versionId"] == before["meta"]["versionId"]
    assert_forbidden(post)
    after = api.get(f"Patient/{patient_id}", headers=auth("admin")).json()
    assert after["meta"]["versionId"] == before["meta"]["versionId"]
    assert after["name"] == before["name"]


def test_a_clients_meta_changes_nothing(api: Any, auth: Auth) -> None:
    # Given a create whose meta claims a version and a time of the client's choosing
    body = {
        **patient_body("Metaclaim"),
        "id": "chosen-by-client",
        "meta": {"versionId": "42", "lastUpdated": "1999-01-01T00:00:00Z"},
    }

    # When a practitioner posts it
    response = api.post("Patient", json=body, headers={**auth("practitioner"), "Content-Type": FHIR_JSON})

    # Then the server assigned id and meta
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] != "chosen-by-client"
    assert created["meta"]["versionId"] == "1"
    assert not created["meta"]["lastUpdated"].startswith("1999")


# --- CORS ---------------------------------------------------------------------------------------------


def test_cors_is_off_by_default(api: Any, auth: Auth) -> None:
    # Given a browser request from some origin, and its preflight
    origin = {"Origin": "https://evil.example"}

    # When the API answers
    answers = [
        api.get("metadata", headers=origin),
        api.get("Patient", headers={**auth("auditor"), **origin}),
        api.options(
            "Patient",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        ),
    ]

    # Then no answer lets the browser share it
    for answer in answers:
        assert "Access-Control-Allow-Origin" not in answer.headers, answer.headers
        assert "Access-Control-Allow-Credentials" not in answer.headers
