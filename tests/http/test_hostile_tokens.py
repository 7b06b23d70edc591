"""Hostile tokens over HTTP: each one is answered 401 (OperationOutcome, ``WWW-Authenticate: Bearer``)
by the local gateway running the real authorizer, and a refused write stores nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from local import issuer

pytestmark = pytest.mark.slow

FHIR_JSON = "application/fhir+json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tampered(token: str) -> str:
    """The token with its payload swapped for one granting admin, signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(roles=["admin"], sub="someone-else")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def scope_widened(token: str) -> str:
    """An access token whose scope was widened to everything after signing, signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(scope="system/*.cruds")
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def hmac_with_public_key() -> str:
    """An HS256 token whose HMAC key is the issuer's public key (the classic algorithm confusion)."""
    public_pem = (
        issuer.private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid()}).encode())
    payload = b64url(json.dumps(issuer.claims("admin")).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def alg_none() -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": issuer.kid()}).encode())
    return f"{header}.{b64url(json.dumps(issuer.claims('admin')).encode())}."


def hostile_authorizations() -> dict[str, str | None]:
    """Issue #5's list of tokens that must be refused, as Authorization header values."""
    other_key = issuer.generate_key()
    now = int(time.time())
    return {
        "none": None,
        "Bearer alone": "Bearer",
        "garbage": "Bearer this-is-not-a-token",
        "alg none": f"Bearer {alg_none()}",
        "HS256 signed with the public key": f"Bearer {hmac_with_public_key()}",
        "another key with the same kid": "Bearer "
        + issuer.mint("admin", key=other_key, headers={"kid": issuer.kid()}),
        "unknown kid": f"Bearer {issuer.mint('admin', key=other_key)}",
        "payload changed after signing": f"Bearer {tampered(issuer.mint('auditor'))}",
        "expired": f"Bearer {issuer.mint('admin', ttl=-60)}",
        "nbf in the future": f"Bearer {issuer.mint('admin', nbf=now + 600, iat=now)}",
        "wrong iss": f"Bearer {issuer.mint('admin', iss='https://issuer.example')}",
        "wrong aud": f"Bearer {issuer.mint('admin', aud='another-api')}",
        "no exp": f"Bearer {issuer.mint('admin', exp=None)}",
        "jku header": "Bearer "
        + issuer.mint("admin", headers={"jku": "https://issuer.example/.well-known/jwks.json"}),
        "9 KB long": f"Bearer {issuer.mint('admin', padding='x' * 9 * 1024)}",
        "sub with a newline": "Bearer " + issuer.mint("admin", sub="local-user\nadmin"),
        "sub with a space": "Bearer " + issuer.mint("admin", sub="local user"),
        "typ JOSE": "Bearer " + issuer.mint("admin", headers={"typ": "JOSE"}),
        # Client-credentials access tokens (SMART scopes, no aud): as hostile as the others.
        "scope token from another key": "Bearer "
        + issuer.mint_access_token("system/*.cruds", audience=None, key=other_key),
        "scope token, another key with the same kid": "Bearer "
        + issuer.mint_access_token(
            "system/*.cruds", audience=None, key=other_key, headers={"kid": issuer.kid()}
        ),
        "scope widened after signing": "Bearer "
        + scope_widened(issuer.mint_access_token("system/Encounter.s", audience=None)),
        "scope token of a client not allowed": "Bearer "
        + issuer.mint_access_token("system/*.cruds", audience=None, client_id="rogue-app"),
        "scope token without aud or client_id": "Bearer "
        + issuer.mint_access_token("system/*.cruds", audience=None, client_id=None),
        "scope token with a wrong aud": "Bearer "
        + issuer.mint_access_token("system/*.cruds", audience="another-api"),
        "scope token expired": "Bearer " + issuer.mint_access_token("system/*.cruds", ttl=-60, audience=None),
        "scope token with a wrong iss": "Bearer "
        + issuer.mint_access_token("system/*.cruds", audience=None, iss="https://issuer.example"),
    }


HOSTILE = hostile_authorizations()


def headers_with(authorization: str | None) -> dict[str, str]:
    headers = {"Content-Type": FHIR_JSON}
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.fixture(scope="module")
def patient(local_stack: Any) -> dict[str, Any]:
    """A patient an admin created, which hostile writes try to change."""
    headers = {"Authorization": f"Bearer {local_stack.token('admin')}", "Content-Type": FHIR_JSON}
    body = {"resourceType": "Patient", "name": [{"family": "Untouched", "given": ["Ada"]}]}
    created = requests.post(f"{local_stack.base_url}/Patient", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_a_good_token_is_accepted(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    # Given / When a search with a good token
    response = api.get("Encounter", headers=auth("auditor"))

    # Then it is served (so the refusals below are the tokens' doing)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_token_is_refused_on_a_read(name: str, api: Any) -> None:
    # Given / When a search with the hostile token
    response = api.get("Encounter", headers=headers_with(HOSTILE[name]))

    # Then 401 with an OperationOutcome and the Bearer challenge
    assert_unauthorized(response)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_refused_write_stores_nothing(
    name: str, api: Any, auth: Callable[..., dict[str, str]], patient: dict[str, Any]
) -> None:
    # Given a hostile token and a family name nobody has
    marker = f"Hostile{uuid.uuid4().hex[:10]}"
    headers = headers_with(HOSTILE[name])
    changed = {**patient, "name": [{"family": marker}]}
    changed.pop("meta", None)

    # When it tries to create a patient and to update one
    new_patient = {"resourceType": "Patient", "name": [{"family": marker}]}
    created = api.post("Patient", json=new_patient, headers=headers)
    updated = api.put(f"Patient/{patient['id']}", json=changed, headers=headers)

    # Then both are refused, and an admin's reads find nothing of them
    assert_unauthorized(created)
    assert_unauthorized(updated)
    admin = auth("admin")
    found = api.get("Patient", params={"family": marker}, headers=admin)
    assert found.status_code == 200, found.text
    assert found.json().get("total", 0) == 0
    assert not found.json().get("entry")
    current = api.get(f"Patient/{patient['id']}", headers=admin).json()
    assert current["meta"]["versionId"] == patient["meta"]["versionId"]
    assert current["name"] == patient["name"]


def test_no_token_is_refused_before_the_authorizer_runs(api: Any, local_stack: Any) -> None:
    # Given the number of authorizer calls so far
    calls = local_stack.gateway.authorizer_calls

    # When a request comes without an Authorization header
    response = api.get("Patient")

    # Then the gateway answered 401 itself
    assert_unauthorized(response)
    assert local_stack.gateway.authorizer_calls == calls
