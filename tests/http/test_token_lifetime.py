"""A token stops working at its expiry, even while the gateway still holds the authorizer's policy for
it (API Gateway keeps that policy for ReauthorizeEvery, 300 s, whatever the token's exp), and a route
left without its authorizer by mistake writes nothing: every function checks the caller again.

These stacks run with a leeway of 0 s so that a token expires within a short wait.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local import issuer
from local.dynamodb import DynamoDBLocal
from local.stack import LocalStack

pytestmark = pytest.mark.slow

FHIR_JSON = "application/fhir+json"
TTL_SECONDS = 3


@pytest.fixture(scope="module")
def strict_stack(dynamodb_local: DynamoDBLocal, template: dict[str, Any]) -> Iterator[LocalStack]:
    with LocalStack(dynamodb_local, template=template, extra_env={"TOKEN_LEEWAY_SECONDS": "0"}) as stack:
        # Load the authorizer, its keys and the functions first, so a short token's seconds go to the test.
        warm = requests.get(f"{stack.base_url}/Patient", headers=bearer(stack.token("admin")), timeout=30)
        assert warm.status_code == 200, warm.text
        patients_named(stack, "Warm")
        body = {"resourceType": "Patient", "name": [{"family": "Warm"}]}
        warm = requests.post(
            f"{stack.base_url}/Patient", json=body, headers=bearer(stack.token("admin")), timeout=30
        )
        assert warm.status_code == 201, warm.text
        yield stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}


def patients_named(stack: LocalStack, family: str) -> list[Any]:
    found = requests.get(
        f"{stack.base_url}/Patient",
        params={"family": family},
        headers=bearer(stack.token("admin")),
        timeout=30,
    )
    assert found.status_code == 200, found.text
    return list(found.json().get("entry") or [])


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["resourceType"] == "OperationOutcome"


def wait_until_expired(token_expiry: int) -> None:
    # Past exp (the leeway is 0), by a whole second so that second-granular clocks agree.
    while time.time() <= token_expiry + 1:
        time.sleep(0.2)


@pytest.mark.parametrize(
    "token_kind",
    ["role", "scope"],
)
def test_an_expired_token_cannot_write_through_a_cached_policy(
    strict_stack: LocalStack, token_kind: str
) -> None:
    strict_stack.gateway.activate()
    base = strict_stack.base_url
    # Given a token of a few seconds that has just created a patient (the gateway caches its policy)
    if token_kind == "role":
        token = issuer.mint("practitioner", sub=f"short-{uuid.uuid4().hex[:8]}", ttl=TTL_SECONDS)
    else:
        token = issuer.mint_access_token("system/Patient.crus", ttl=TTL_SECONDS, audience=None)
    expires = int(time.time()) + TTL_SECONDS
    first = requests.post(
        f"{base}/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Fresh"}]},
        headers=bearer(token),
        timeout=30,
    )
    assert first.status_code == 201, first.text
    calls = strict_stack.gateway.authorizer_calls

    # When the token has expired and it writes again, within the policy's 300 s
    wait_until_expired(expires)
    marker = f"Stale{uuid.uuid4().hex[:10]}"
    created = requests.post(
        f"{base}/Patient",
        json={"resourceType": "Patient", "name": [{"family": marker}]},
        headers=bearer(token),
        timeout=30,
    )
    changed = {**first.json(), "name": [{"family": marker}]}
    changed.pop("meta")
    updated = requests.put(f"{base}/Patient/{changed['id']}", json=changed, headers=bearer(token), timeout=30)
    read = requests.get(f"{base}/Patient/{changed['id']}", headers=bearer(token), timeout=30)

    # Then the gateway answered from its cached policy, the functions refused with 401, nothing was stored
    assert strict_stack.gateway.authorizer_calls == calls
    for response in (created, updated, read):
        assert_invalid_token(response)
    assert patients_named(strict_stack, marker) == []


def test_a_token_still_within_its_life_is_served(strict_stack: LocalStack) -> None:
    strict_stack.gateway.activate()
    token = issuer.mint("auditor", ttl=60)
    response = requests.get(f"{strict_stack.base_url}/Patient", headers=bearer(token), timeout=30)
    assert response.status_code == 200, response.text


# --- a route left without its authorizer -----------------------------------------------------------


@pytest.fixture(scope="module")
def open_stack(dynamodb_local: DynamoDBLocal, template: dict[str, Any]) -> Iterator[LocalStack]:
    """The API with the create routes misconfigured: Auth NONE, so no authorizer runs before them."""
    broken = copy.deepcopy(template)
    for logical_id in ("PatientCreateFunction", "EncounterCreateFunction"):
        for event in broken["Resources"][logical_id]["Properties"]["Events"].values():
            event["Properties"]["Auth"] = {"Authorizer": "NONE"}
    with LocalStack(dynamodb_local, template=broken) as stack:
        yield stack


def test_a_route_without_its_authorizer_writes_nothing(open_stack: LocalStack) -> None:
    open_stack.gateway.activate()
    marker = f"Open{uuid.uuid4().hex[:10]}"
    body = {"resourceType": "Patient", "name": [{"family": marker}]}

    # When a patient is posted with no token, and with an auditor's (whom no authorizer checked)
    anonymous = requests.post(
        f"{open_stack.base_url}/Patient", json=body, headers={"Content-Type": FHIR_JSON}, timeout=30
    )
    auditor = requests.post(
        f"{open_stack.base_url}/Patient", json=body, headers=bearer(open_stack.token("auditor")), timeout=30
    )

    # Then the function itself refuses: 401 without an authorizer context (a token alone proves nothing
    # when nobody verified it), and nothing is stored
    assert_invalid_token(anonymous)
    assert_invalid_token(auditor)
    assert patients_named(open_stack, marker) == []
