"""Machine clients over HTTP: client-credentials access tokens with SMART on FHIR scopes, route by route,
through the local gateway and the real authorizer, as the role matrix is tested in test_roles.

The expected routes of each scope set are written out here (not computed by the code under test): a
route the token may call is never answered 401 or 403, any other is 403 with an OperationOutcome.
Then the SMART configuration and the CapabilityStatement's SMART advertisement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fhir_api.routes import PUBLIC_INTERACTIONS, ROUTES, Route
from local import issuer
from local.dynamodb import DynamoDBLocal
from local.stack import LocalStack
from tests.http.route_calls import assert_forbidden, call

pytestmark = pytest.mark.slow

PROTECTED = [route for route in ROUTES if route.interaction not in PUBLIC_INTERACTIONS]
ALL = {route.function for route in PROTECTED}
# Subscriptions are for the admin role only: no scope grants them.
SUBSCRIPTIONS = {"subscription_create", "subscription_search", "subscription_read", "subscription_update"}
AUDIT_TRAIL = {"audit_event_search", "audit_event_read"}
# ``*`` is every clinical type: the audit trail must be named.
CLINICAL = ALL - SUBSCRIPTIONS - AUDIT_TRAIL
# SMART's r: read, vread, history, and $validate (which stores nothing)
ENCOUNTER_READS = {"encounter_read", "encounter_vread", "encounter_history", "encounter_validate"}
PATIENT_READS = {"patient_read", "patient_vread", "patient_history", "patient_validate"}
# A search is the same interaction by GET and by POST _search (a form body).
ENCOUNTER_SEARCH = {"encounter_search", "encounter_search_post"}
PATIENT_SEARCH = {"patient_search", "patient_search_post"}
READS = ENCOUNTER_READS | PATIENT_READS | ENCOUNTER_SEARCH | PATIENT_SEARCH
TOKEN_ENDPOINT = "https://auth.clinic.example/oauth2/token"

# name: (role or "", scope claim, the functions the token may call)
CASES: dict[str, tuple[str, str, set[str]]] = {
    "encounters read-only": ("", "system/Encounter.rs", ENCOUNTER_READS | ENCOUNTER_SEARCH),
    "patients create and update, no read": (
        "",
        "system/Patient.cu",
        {"patient_create", "patient_update", "patient_patch", "patient_conditional_update"},
    ),
    "encounter search only": ("", "system/Encounter.s", ENCOUNTER_SEARCH),
    "encounter read without search": ("", "system/Encounter.r", ENCOUNTER_READS),
    "every type read-only": ("", "system/*.rs", READS),
    "every type, every permission": ("", "system/*.cruds", CLINICAL),
    "two scopes": (
        "",
        "system/Encounter.rs system/Patient.c",
        ENCOUNTER_READS | ENCOUNTER_SEARCH | {"patient_create"},
    ),
    "v1 read": ("", "system/Patient.read", PATIENT_READS | PATIENT_SEARCH),
    "v1 write": (
        "",
        "system/Encounter.write",
        {
            "encounter_create",
            "encounter_update",
            "encounter_patch",
            "encounter_conditional_update",
            "encounter_delete",
        },
    ),
    "v1 star": ("", "system/*.*", CLINICAL),
    "no scope names Subscription": ("", "system/Subscription.cruds", set()),
    "user scopes narrow an admin away from Subscriptions": ("admin", "user/*.cruds", CLINICAL),
    "the audit trail, by name": ("", "system/AuditEvent.rs", AUDIT_TRAIL),
    "unknown resource type": ("", "system/Observation.rs", set()),
    "scope with a query": ("", "system/Encounter.rs?status=finished", set()),
    "letters out of order": ("", "system/Encounter.sr", set()),
    "garbage": ("", "openid profile launch system/ x/y.z system/Encounter. *", set()),
    "no scope at all": ("", "", set()),
    "user scope without a role": ("", "user/*.cruds", set()),
    "user scope narrowing a practitioner": (
        "practitioner",
        "user/Encounter.rs",
        ENCOUNTER_READS | ENCOUNTER_SEARCH,
    ),
    "user scope cannot widen an auditor": ("auditor", "user/*.cruds", READS),
    "role and system scope add up": ("auditor", "system/Patient.c", READS | AUDIT_TRAIL | {"patient_create"}),
    "patient scope": ("", "patient/Encounter.rs", set()),
    "patient scope beside an admin and system scopes": ("admin", "system/*.cruds patient/Patient.rs", set()),
}

# A Bundle (POST /api/fhir) has no SMART letter: whatever may call a route of a clinical type may send
# one, and each of its entries is then checked as on its own route (tests/http/test_bundles.py).
BUNDLE = "bundle"
CASES = {
    name: (role, scope, allowed | {BUNDLE} if allowed & (CLINICAL - {BUNDLE}) else allowed)
    for name, (role, scope, allowed) in CASES.items()
}


def access_token(role: str, scope: str) -> dict[str, str]:
    """A client-credentials access token as Cognito writes it (no aud; client_id and scope)."""
    return {"Authorization": f"Bearer {issuer.mint_access_token(scope, role, audience=None)}"}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("route", PROTECTED, ids=lambda route: f"{route.method} {route.path}")
def test_each_scope_set_gets_exactly_its_routes(
    case: str, route: Route, api: Any, records: dict[str, str]
) -> None:
    # Given an access token with these scopes (and maybe a role) and one route of the API
    role, scope, allowed = CASES[case]

    # When the route is called
    response = call(api, route, access_token(role, scope), records)

    # Then an allowed route is served, a refused one is 403 with an OperationOutcome
    if route.function in allowed:
        assert response.status_code not in (401, 403), response.text
    else:
        assert_forbidden(response)


def test_scopes_may_come_as_an_scp_list(api: Any, records: dict[str, str]) -> None:
    # Given an access token whose scopes are an scp list (as Okta and Azure AD write them)
    token = issuer.mint(
        "",
        issuer.CLIENT_ID,
        client_id=issuer.CLIENT_ID,
        aud=None,
        roles=None,
        scp=["system/Patient.rs", "openid"],
    )
    headers = {"Authorization": f"Bearer {token}"}

    # When it reads a patient and tries to search encounters
    read = api.get(f"Patient/{records['Patient']}", headers=headers)
    search = api.get("Encounter", headers=headers)

    # Then the patient is served and the encounters are not
    assert read.status_code == 200, read.text
    assert_forbidden(search)


def test_an_access_token_with_the_api_as_aud_needs_no_client_listing(api: Any) -> None:
    # Given an access token from another client, but whose aud names this API
    token = issuer.mint_access_token(
        "system/Encounter.s", client_id="any-integration", audience=issuer.AUDIENCE
    )

    # When / Then it searches
    response = api.get("Encounter", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def test_one_scope_token_is_answered_right_on_every_route(api: Any, records: dict[str, str]) -> None:
    # Given a search-only token, whose policy the gateway caches after the first call
    headers = access_token("", "system/Encounter.s")

    # When it searches, then reads, then searches again
    first = api.get("Encounter", headers=headers)
    read = api.get(f"Encounter/{records['Encounter']}", headers=headers)
    again = api.get("Encounter", headers=headers)

    # Then the cached policy still refuses the read
    assert first.status_code == 200 and again.status_code == 200
    assert_forbidden(read)


# --- SMART configuration and the CapabilityStatement ------------------------------------------------


@pytest.fixture(scope="module")
def smart_stack(dynamodb_local: DynamoDBLocal, template: dict[str, Any]) -> Iterator[LocalStack]:
    """The API of a deployment that names its token endpoint (the TokenEndpoint parameter)."""
    with LocalStack(dynamodb_local, template=template, extra_env={"TOKEN_ENDPOINT": TOKEN_ENDPOINT}) as stack:
        yield stack


def test_the_smart_configuration_is_public_json(smart_stack: LocalStack) -> None:
    smart_stack.gateway.activate()
    # When it is read without a token
    response = requests.get(f"{smart_stack.base_url}/.well-known/smart-configuration", timeout=30)

    # Then it is SMART's JSON document naming the token endpoint, the grant, the methods and the scopes
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    config = response.json()
    assert config["token_endpoint"] == TOKEN_ENDPOINT
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "client_secret_basic"]
    assert {"client-confidential-asymmetric", "permission-v2", "permission-v1"} <= set(config["capabilities"])
    assert "permission-patient" not in config["capabilities"]
    assert {"system/Encounter.cruds", "system/Patient.rs", "system/*.rs"} <= set(config["scopes_supported"])
    assert not any(scope.startswith("patient/") for scope in config["scopes_supported"])


def test_every_advertised_scope_is_honoured(smart_stack: LocalStack) -> None:
    smart_stack.gateway.activate()
    # Given the scopes the configuration advertises, as system scopes of one token
    config = requests.get(f"{smart_stack.base_url}/.well-known/smart-configuration", timeout=30).json()
    system = " ".join(scope for scope in config["scopes_supported"] if scope.startswith("system/"))
    headers = {"Authorization": f"Bearer {issuer.mint_access_token(system, audience=None)}"}

    # When / Then they let it search both types
    for resource_type in ("Encounter", "Patient"):
        response = requests.get(f"{smart_stack.base_url}/{resource_type}", headers=headers, timeout=30)
        assert response.status_code == 200, response.text


def test_the_capability_statement_advertises_smart(smart_stack: LocalStack) -> None:
    smart_stack.gateway.activate()
    statement = requests.get(f"{smart_stack.base_url}/metadata", timeout=30).json()
    security = statement["rest"][0]["security"]
    codes = {coding["code"] for service in security["service"] for coding in service["coding"]}
    assert "SMART-on-FHIR" in codes
    systems = {coding["system"] for service in security["service"] for coding in service["coding"]}
    assert systems == {"http://terminology.hl7.org/CodeSystem/restful-security-service"}
    (oauth_uris,) = security["extension"]
    assert oauth_uris["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert oauth_uris["extension"] == [{"url": "token", "valueUri": TOKEN_ENDPOINT}]


def test_without_a_token_endpoint_there_is_no_smart_configuration(api: Any) -> None:
    # Given the default deployment (no TokenEndpoint)
    response = api.get(".well-known/smart-configuration")
    statement = api.get("metadata").json()

    # Then the configuration is 404 (an OperationOutcome) and the statement names no token endpoint
    assert response.status_code == 404, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "extension" not in statement["rest"][0]["security"]


def test_other_methods_on_the_smart_configuration_are_405(api: Any) -> None:
    response = api.post(".well-known/smart-configuration", json={})
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == "GET"
