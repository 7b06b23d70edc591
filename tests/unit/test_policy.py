"""The authorizer's IAM policy: exactly the role table of ``fhir_api.routes``, right for any route."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_api import routes
from fhir_api.auth import authorizer, policy
from fhir_api.auth.access import allowed_routes
from fhir_api.auth.policy import api_arn_prefix, build_policy, is_allowed, match_route, route_pattern
from fhir_api.auth.tokens import InvalidToken, Principal
from fhir_api.routes import ROLE_INTERACTIONS, ROUTES, Route, routes_for_roles
from local.lambda_runtime import LambdaContext

PREFIX = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/Prod"
ROLES = [*sorted(ROLE_INTERACTIONS), "receptionist"]


def method_arn(route: Route, resource_id: str = "enc-42", version_id: str = "3") -> str:
    """The methodArn API Gateway sends for a request to ``route``."""
    path = route.path.replace("{id}", resource_id).replace("{vid}", version_id)
    return f"{PREFIX}/{route.method}{path}"


@pytest.fixture(autouse=True)
def fresh_policy_cache() -> Iterator[None]:
    policy._patterns.cache_clear()
    yield
    policy._patterns.cache_clear()


@pytest.mark.parametrize("role", ROLES)
def test_the_policy_allows_exactly_the_routes_of_the_role(role: str) -> None:
    # Given the policy for a token with this one role, built on some request
    answer = build_policy("user-1", routes_for_roles([role]), method_arn(ROUTES[1]))
    allowed = routes_for_roles([role])

    # When / Then every route (with real ids) is allowed exactly when the role table says so
    for route in ROUTES:
        for resource_id, version_id in (("enc-42", "3"), ("a.b-C", "12")):
            arn = method_arn(route, resource_id, version_id)
            assert is_allowed(answer["policyDocument"], arn) == (route in allowed), (role, arn)


@pytest.mark.parametrize("role", ROLES)
def test_the_policy_is_the_same_whichever_route_asked(role: str) -> None:
    # Given the policies built for requests to each route
    documents = [
        build_policy("user-1", routes_for_roles([role]), method_arn(route))["policyDocument"]
        for route in ROUTES
    ]

    # When / Then they are all the same, so the cached answer fits any later request
    assert all(document == documents[0] for document in documents)


def test_resources_are_route_arns_with_parameters_as_stars() -> None:
    # Given the admin's policy
    answer = build_policy("user-1", routes_for_roles(["admin"]), method_arn(ROUTES[3]))

    # When its resources are read
    statements = answer["policyDocument"]["Statement"]
    resources = [resource for statement in statements for resource in statement["Resource"]]

    # Then each is a route of the table under the API and stage of the request
    assert f"{PREFIX}/GET/api/fhir/Encounter/*" in resources
    assert f"{PREFIX}/PUT/api/fhir/Patient/*" in resources
    assert f"{PREFIX}/POST/api/fhir/Encounter" in resources
    assert f"{PREFIX}/GET/api/fhir/Encounter/*/_history/*" in resources
    assert not any(resource.endswith("/metadata") for resource in resources)
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert answer["policyDocument"]["Statement"][0]["Action"] == "execute-api:Invoke"


def test_a_read_pattern_allows_no_other_method_or_resource_type() -> None:
    # Given the auditor's policy, which allows GET .../Encounter/*
    document = build_policy("user-2", routes_for_roles(["auditor"]), method_arn(ROUTES[3]))["policyDocument"]

    # When / Then writes and look-alike resource types stay refused
    assert not is_allowed(document, f"{PREFIX}/PUT/api/fhir/Encounter/enc-42")
    assert not is_allowed(document, f"{PREFIX}/POST/api/fhir/Encounter")
    assert not is_allowed(document, f"{PREFIX}/DELETE/api/fhir/Encounter/enc-42")
    assert not is_allowed(document, f"{PREFIX}/GET/api/fhir/EncounterX/enc-42")
    assert not is_allowed(document, f"{PREFIX}/GET/api/fhir/Observation/1")
    other_api = "arn:aws:execute-api:eu-west-1:123456789012:otherapi/Prod"
    assert not is_allowed(document, f"{other_api}/GET/api/fhir/Encounter/enc-42")
    assert not is_allowed(document, f"{PREFIX[:-4]}Dev/GET/api/fhir/Encounter/enc-42")


def test_a_wildcard_covering_a_refused_route_gets_an_explicit_deny(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a role table where a role may read an instance but not its history
    monkeypatch.setitem(routes.ROLE_INTERACTIONS, "viewer", frozenset({"read"}))

    # When its policy is built
    document = build_policy("user-3", routes_for_roles(["viewer"]), method_arn(ROUTES[3]))["policyDocument"]

    # Then GET .../Encounter/* does not leak history or vread: an explicit Deny covers them
    deny = [statement for statement in document["Statement"] if statement["Effect"] == "Deny"]
    assert deny and f"{PREFIX}/GET/api/fhir/Encounter/*/_history" in deny[0]["Resource"]
    assert is_allowed(document, f"{PREFIX}/GET/api/fhir/Encounter/enc-42")
    assert not is_allowed(document, f"{PREFIX}/GET/api/fhir/Encounter/enc-42/_history")
    assert not is_allowed(document, f"{PREFIX}/GET/api/fhir/Encounter/enc-42/_history/2")
    assert is_allowed(document, f"{PREFIX}/GET/api/fhir/Patient/p-1")
    assert not is_allowed(document, f"{PREFIX}/GET/api/fhir/Patient/p-1/_history")
    assert not is_allowed(document, f"{PREFIX}/GET/api/fhir/Patient")


def test_roles_add_up() -> None:
    # Given a token with the auditor and practitioner roles
    document = build_policy("user-4", routes_for_roles(["auditor", "practitioner"]), method_arn(ROUTES[1]))[
        "policyDocument"
    ]

    # When / Then it may do what either may do
    assert is_allowed(document, f"{PREFIX}/POST/api/fhir/Patient")


def test_no_known_role_gets_a_policy_that_denies_everything() -> None:
    # Given a verified token whose roles the table does not know
    answer = build_policy("user-5", routes_for_roles(["receptionist", "ADMIN"]), method_arn(ROUTES[3]))

    # When / Then the answer is a Deny (API Gateway's 403), not a refusal of the token (401)
    assert answer["principalId"] == "user-5"
    assert answer["policyDocument"]["Statement"] == [
        {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": [f"{PREFIX}/*"]}
    ]


def test_an_explicit_deny_wins_over_an_allow() -> None:
    # Given a document allowing everything and denying one route
    document = {
        "Statement": [
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": [f"{PREFIX}/*"]},
            {"Effect": "Deny", "Action": "execute-api:*", "Resource": f"{PREFIX}/PUT/*"},
        ]
    }

    # When / Then
    assert is_allowed(document, f"{PREFIX}/GET/api/fhir/Patient/1")
    assert not is_allowed(document, f"{PREFIX}/PUT/api/fhir/Patient/1")
    assert not is_allowed({"Statement": []}, f"{PREFIX}/GET/api/fhir/Patient/1")


@pytest.mark.parametrize(
    "bad_arn",
    [
        "",
        "*",
        "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3",
        "arn:aws:s3:::bucket/Prod/GET/x",
        "not-an-arn/Prod/GET/api/fhir/Patient",
    ],
)
def test_a_malformed_method_arn_is_refused(bad_arn: str) -> None:
    # Given / When / Then
    with pytest.raises(ValueError):
        api_arn_prefix(bad_arn)


def test_route_patterns_write_parameters_as_stars() -> None:
    # Given / When / Then
    patterns = {route.function: route_pattern(route) for route in ROUTES}
    assert patterns["encounter_vread"] == "GET/api/fhir/Encounter/*/_history/*"
    assert patterns["patient_search"] == "GET/api/fhir/Patient"
    assert all(not re.search(r"[{}]", pattern) for pattern in patterns.values())


def test_match_route_finds_the_route_and_its_ids() -> None:
    # Given / When / Then
    route = routes.route_for_function("encounter_vread")
    assert match_route(method_arn(route, "enc-1", "7")) == (route, {"id": "enc-1", "vid": "7"})
    assert match_route(f"{PREFIX}/PATCH/api/fhir/Encounter/enc-1/_history") is None
    assert match_route("garbage") is None


# --- the authorizer handler --------------------------------------------------------------------------


def authorizer_event(route: Route, token: str | None = "Bearer header.payload.signature") -> dict[str, Any]:
    event: dict[str, Any] = {"type": "TOKEN", "methodArn": method_arn(route)}
    if token is not None:
        event["authorizationToken"] = token
    return event


LAMBDA_CONTEXT = LambdaContext("AuthorizerFunction", "inv-1")


def test_the_authorizer_answers_a_policy_and_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a token that verifies for a practitioner
    principal = Principal("user-6", ("practitioner", "x"), client_id="app-1", expires_at=1_900_000_000)
    monkeypatch.setattr(authorizer, "verify", lambda _header: principal)

    # When the authorizer runs for a search request
    event = authorizer_event(routes.route_for_function("encounter_search"))
    answer = authorizer.lambda_handler(event, LAMBDA_CONTEXT)

    # Then the policy is the practitioner's and the functions learn what they check again
    assert answer["principalId"] == "user-6"
    assert answer["context"] == {
        "sub": "user-6",
        "roles": "practitioner x",
        "scopes": "",
        "client_id": "app-1",
        "exp": 1_900_000_000,
    }
    assert is_allowed(answer["policyDocument"], f"{PREFIX}/PUT/api/fhir/Patient/p-1")


def test_a_refused_token_is_unauthorized(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a token that does not verify
    def refuse(_header: str | None) -> Principal:
        raise InvalidToken("bad signature")

    monkeypatch.setattr(authorizer, "verify", refuse)

    # When / Then API Gateway is told "Unauthorized" (its 401)
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event(ROUTES[1]), LAMBDA_CONTEXT)


def test_an_unexpected_error_is_unauthorized(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given verification that fails in a way nobody planned for
    def explode(_header: str | None) -> Principal:
        raise RuntimeError("boom")

    monkeypatch.setattr(authorizer, "verify", explode)

    # When / Then the request is refused, never allowed
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event(ROUTES[1]), LAMBDA_CONTEXT)


def test_a_malformed_method_arn_refuses_even_a_good_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a good token and an event whose methodArn cannot be read
    monkeypatch.setattr(authorizer, "verify", lambda _header: Principal("user-7", ("admin",)))

    # When / Then
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.lambda_handler({"authorizationToken": "Bearer a.b.c", "methodArn": "*"}, LAMBDA_CONTEXT)


def test_a_missing_token_is_unauthorized() -> None:
    # Given / When / Then an event without a token never reaches key lookup
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event(ROUTES[1], token=None), LAMBDA_CONTEXT)


def test_a_token_without_a_known_role_gets_a_deny_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a valid token with an unknown role
    monkeypatch.setattr(authorizer, "verify", lambda _header: Principal("user-8", ("receptionist",)))

    # When the authorizer runs
    answer = authorizer.lambda_handler(authorizer_event(ROUTES[3]), LAMBDA_CONTEXT)

    # Then it answers a policy (so 403, not 401) that allows nothing
    assert all(not is_allowed(answer["policyDocument"], method_arn(route)) for route in ROUTES)


@pytest.mark.parametrize(
    ("roles", "scopes"),
    [
        ((), ("system/Encounter.rs",)),
        ((), ("system/Patient.cu",)),
        ((), ("system/Encounter.s", "system/Patient.r")),
        (("auditor",), ("system/Patient.c",)),
        (("practitioner",), ("user/Encounter.rs",)),
        ((), ("system/*.cruds",)),
    ],
)
def test_the_policy_allows_exactly_the_routes_of_roles_and_scopes(
    roles: tuple[str, ...], scopes: tuple[str, ...]
) -> None:
    # Given the routes a token's roles and scopes allow, and the policy built from them
    access = allowed_routes(roles, scopes)
    answer = build_policy("client-1", access.routes, method_arn(ROUTES[1]))

    # When / Then every route (with real ids) is allowed exactly when it is one of them
    for route in ROUTES:
        for resource_id, version_id in (("enc-42", "3"), ("a.b-C", "12")):
            arn = method_arn(route, resource_id, version_id)
            assert is_allowed(answer["policyDocument"], arn) == access.allows(route), (scopes, arn)


def test_an_access_token_gets_the_policy_of_its_scopes_and_passes_them_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a verified client-credentials token allowed to search encounters only
    principal = Principal(
        "app-1", (), scopes=("system/Encounter.s",), client_id="app-1", expires_at=1_900_000_000
    )
    monkeypatch.setattr(authorizer, "verify", lambda _header: principal)

    # When the authorizer runs
    answer = authorizer.lambda_handler(
        authorizer_event(routes.route_for_function("encounter_search")), LAMBDA_CONTEXT
    )

    # Then the search (by GET and by POST _search) is allowed, and a Bundle (whose entries are checked one
    # by one), nothing else, and the functions learn the scopes and the client
    allowed = [route.function for route in ROUTES if is_allowed(answer["policyDocument"], method_arn(route))]
    assert allowed == ["encounter_search", "encounter_search_post", "bundle"]
    assert answer["context"]["scopes"] == "system/Encounter.s"
    assert answer["context"]["client_id"] == "app-1"


def test_a_patient_scope_gets_a_deny_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an admin token that also carries a patient-level scope
    principal = Principal("user-9", ("admin",), scopes=("patient/Encounter.rs",), expires_at=1_900_000_000)
    monkeypatch.setattr(authorizer, "verify", lambda _header: principal)

    # When the authorizer runs
    answer = authorizer.lambda_handler(authorizer_event(ROUTES[3]), LAMBDA_CONTEXT)

    # Then it allows nothing (403): patient compartments are not enforced
    assert all(not is_allowed(answer["policyDocument"], method_arn(route)) for route in ROUTES)


def test_the_bundle_route_is_allowed_with_and_without_a_trailing_slash() -> None:
    # Given an auditor's policy (every role may send a Bundle; its entries are checked one by one)
    document = build_policy("user-5", routes_for_roles(["auditor"]), method_arn(ROUTES[1]))["policyDocument"]

    # Then POST to the base URL is allowed as fhirpy sends it too (base + "/"), and nothing else there
    assert is_allowed(document, f"{PREFIX}/POST/api/fhir")
    assert is_allowed(document, f"{PREFIX}/POST/api/fhir/")
    assert not is_allowed(document, f"{PREFIX}/GET/api/fhir/")
    assert not is_allowed(document, f"{PREFIX}/POST/api/fhir/Patient")
