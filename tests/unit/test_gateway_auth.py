"""The local gateway runs the TOKEN authorizer like API Gateway: methodArn of the request, IAM policy
evaluated with wildcards (Deny wins), answers cached per token for ReauthorizeEvery seconds."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_fakes import write_fake_api

from fhir_api.auth.iam import is_allowed as policy_allows
from local.authorizer_cache import method_arn
from local.gateway import Gateway
from local.http_messages import HttpRequest, HttpResponse

ARN = "arn:aws:execute-api:us-east-1:123456789012:api1/Prod/GET/api/fhir/Encounter/42"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(tmp_path: Path, clock: Clock, restore_environ: None) -> Iterator[Gateway]:
    yield Gateway(write_fake_api(tmp_path, reauthorize_every=60), root=tmp_path, port=3999, clock=clock)


def call(gateway: Gateway, method: str, path: str, token: str | None, **headers: str) -> HttpResponse:
    pairs = [(name, value) for name, value in headers.items()]
    if token is not None:
        pairs.append(("Authorization", token))
    return gateway.handle(HttpRequest(method, path, "", pairs, b""))


def authorizer_calls(gateway: Gateway) -> list[dict[str, str]]:
    module = gateway.functions.modules["AuthorizerFunction"]
    assert module.__name__ in sys.modules
    return module.CALLS  # type: ignore[no-any-return]


def statement(effect: str, resource: str | list[str], action: str | list[str] = "execute-api:Invoke") -> dict:
    return {"Effect": effect, "Action": action, "Resource": resource}


@pytest.mark.parametrize(
    ("resource", "allowed"),
    [
        (ARN, True),
        ("arn:aws:execute-api:us-east-1:123456789012:api1/*", True),
        ("arn:aws:execute-api:us-east-1:123456789012:api1/Prod/GET/api/fhir/Encounter/*", True),
        ("arn:aws:execute-api:us-east-1:123456789012:api1/*/GET/api/fhir/Encounter/??", True),
        ("arn:aws:execute-api:us-east-1:123456789012:api1/*/GET/api/fhir/Encounter/?", False),
        ("arn:aws:execute-api:us-east-1:123456789012:api1/Prod/PUT/*", False),
        ("arn:aws:execute-api:us-east-1:123456789012:other/*", False),
        ("*", True),
    ],
)
def test_policy_resource_wildcards(resource: str, allowed: bool) -> None:
    assert policy_allows({"Statement": [statement("Allow", resource)]}, ARN) is allowed


def test_deny_wins_over_allow() -> None:
    policy = {"Statement": [statement("Allow", "*"), statement("Deny", [ARN.rsplit("/", 1)[0] + "/*"])]}

    assert policy_allows(policy, ARN) is False


def test_action_must_match_with_wildcards() -> None:
    assert policy_allows({"Statement": [statement("Allow", "*", "execute-api:*")]}, ARN) is True
    assert policy_allows({"Statement": [statement("Allow", "*", ["s3:GetObject"])]}, ARN) is False


def test_no_statement_means_no() -> None:
    assert policy_allows({"Statement": []}, ARN) is False


def test_method_arn_is_the_request_method_and_actual_path() -> None:
    assert method_arn("api1", "Prod", "GET", "/api/fhir/Encounter/42") == ARN


def test_missing_token_is_401_with_www_authenticate_without_calling_the_authorizer(gateway: Gateway) -> None:
    # Given a request on a protected route with no Authorization header
    # When it is served
    response = call(gateway, "GET", "/items", None, Origin="https://app.example")

    # Then API Gateway's UNAUTHORIZED response of the template answers, and the authorizer never ran
    assert response.status == 401
    assert ("WWW-Authenticate", "Bearer") in response.headers
    assert ("Content-Type", "application/fhir+json") in response.headers
    assert ("X-Origin", "https://app.example") in response.headers
    body = json.loads(response.body)
    assert body["error"] == "Unauthorized"
    assert body["type"] == "UNAUTHORIZED"
    assert body["id"]
    assert "AuthorizerFunction" not in gateway.functions.modules


def test_authorizer_unauthorized_is_401(gateway: Gateway) -> None:
    response = call(gateway, "GET", "/items", "Bearer forged")

    assert response.status == 401
    assert ("WWW-Authenticate", "Bearer") in response.headers


def test_the_authorizer_gets_the_token_verbatim_and_the_request_method_arn(gateway: Gateway) -> None:
    call(gateway, "GET", "/Prod/items/9", "Bearer allow")

    (event,) = authorizer_calls(gateway)
    assert event["type"] == "TOKEN"
    assert event["authorizationToken"] == "Bearer allow"
    assert (
        event["methodArn"]
        == f"arn:aws:execute-api:us-east-1:123456789012:{gateway.definition.api_id}/Prod/GET/items/9"
    )


def test_deny_is_403_access_denied(gateway: Gateway) -> None:
    response = call(gateway, "GET", "/items", "deny")

    assert response.status == 403
    assert json.loads(response.body) == {
        "message": "User is not authorized to access this resource with an explicit deny"
    }


def test_explicit_deny_beats_a_broad_allow_per_route(gateway: Gateway) -> None:
    assert call(gateway, "GET", "/items/1", "allow-then-deny").status == 200
    assert call(gateway, "PUT", "/items/1", "allow-then-deny").status == 403


def test_single_character_wildcard(gateway: Gateway) -> None:
    assert call(gateway, "GET", "/items/1", "single-char").status == 200
    assert call(gateway, "GET", "/items/12", "single-char").status == 403


def test_authorizer_failures_are_500(gateway: Gateway) -> None:
    assert call(gateway, "GET", "/items", "crash").status == 500
    assert call(gateway, "GET", "/items", "no-policy").status == 500


def test_cached_policy_is_evaluated_for_each_route(gateway: Gateway) -> None:
    # Given a token whose policy allows GET on /items/* only
    token = "get-items-only"

    # When it reads, then writes with the policy cached from the read
    read = call(gateway, "GET", "/items/1", token)
    write = call(gateway, "PUT", "/items/1", token)
    other_read = call(gateway, "GET", "/items/2", token)

    # Then the authorizer ran once, and the cached policy refused the route it does not cover
    assert (read.status, write.status, other_read.status) == (200, 403, 200)
    assert len(authorizer_calls(gateway)) == 1


def test_cache_honours_reauthorize_every(gateway: Gateway, clock: Clock) -> None:
    # Given an answer cached for 60 seconds
    call(gateway, "GET", "/items", "allow")

    # When the same token comes back before and after the TTL
    clock.now += 59
    call(gateway, "GET", "/items", "allow")
    calls_within_ttl = len(authorizer_calls(gateway))
    clock.now += 2
    call(gateway, "GET", "/items", "allow")

    # Then the authorizer ran again only once the TTL had passed
    assert calls_within_ttl == 1
    assert len(authorizer_calls(gateway)) == 2


def test_cache_is_per_token(gateway: Gateway) -> None:
    assert call(gateway, "PUT", "/items/1", "allow").status == 200
    assert call(gateway, "PUT", "/items/1", "get-items-only").status == 403
    assert len(authorizer_calls(gateway)) == 2


def test_routes_with_auth_none_skip_the_authorizer(gateway: Gateway) -> None:
    response = call(gateway, "POST", "/open", None)

    assert response.status == 200
    assert "authorizer" not in json.loads(response.body)["event"]["requestContext"]


def test_zero_ttl_disables_the_cache(tmp_path: Path, restore_environ: None) -> None:
    gateway = Gateway(write_fake_api(tmp_path, reauthorize_every=0), root=tmp_path, port=3999)

    call(gateway, "GET", "/items", "allow")
    call(gateway, "GET", "/items", "allow")

    assert len(authorizer_calls(gateway)) == 2
