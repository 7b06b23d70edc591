"""The route matcher (routes.py) and the IAM matcher (auth/iam.py) the handler, the authorizer's policy
and the local gateway share."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from fhir_api.auth.iam import is_allowed, wildcard_match
from fhir_api.routes import (
    match_route,
    methods_for_path,
    operation_methods,
    path_parameters,
    route_for_function,
)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/api/fhir/Encounter/{id}", "/api/fhir/Encounter/e-1", {"id": "e-1"}),
        ("/api/fhir/Encounter/{id}", "/api/fhir/Encounter/e-1/", {"id": "e-1"}),
        ("/api/fhir/Encounter/{id}", "/api/fhir/Encounter/", None),
        ("/api/fhir/Encounter/{id}", "/api/fhir/Encounter/e-1/_history", None),
        ("/api/fhir/Encounter", "/api/fhir/Patient", None),
        ("/items/{proxy+}", "/items/a/b", {"proxy": "a/b"}),
        ("/items/{proxy+}", "/items", None),
    ],
)
def test_path_parameters(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert path_parameters(template, path) == expected


def test_an_encoded_slash_stays_inside_its_segment() -> None:
    # Given a raw path whose id carries an encoded "/"
    # When it is matched with decoding
    params = path_parameters("/api/fhir/Encounter/{id}", "/api/fhir/Encounter/a%2Fb", unquote)

    # Then the id is one segment, decoded
    assert params == {"id": "a/b"}


def test_match_route_gives_the_route_and_its_ids() -> None:
    assert match_route("GET", "/api/fhir/Patient/p-1/_history/3") == (
        route_for_function("patient_vread"),
        {"id": "p-1", "vid": "3"},
    )
    assert match_route("DELETE", "/api/fhir/Patient/p-1/_history") is None


def test_methods_for_path_lists_what_the_api_serves_there() -> None:
    assert methods_for_path("/api/fhir/Encounter/e-1") == ("GET", "PUT", "PATCH", "DELETE")
    assert methods_for_path("/api/fhir/Encounter/$validate") == ("GET", "PUT", "PATCH", "POST", "DELETE")
    assert operation_methods("/api/fhir/Encounter/$validate") == ("POST",)
    assert operation_methods("/api/fhir/Encounter/$everything") == ()
    assert methods_for_path("/api/fhir/Encounter") == ("POST", "GET", "PUT")
    assert methods_for_path("/api/fhir/Observation") == ()


def test_iam_wildcards_cross_slashes_and_question_mark_is_one_character() -> None:
    assert wildcard_match("arn:x/GET/api/*", "arn:x/GET/api/fhir/Encounter/1/_history")
    assert wildcard_match("arn:x/GET/?", "arn:x/GET/a")
    assert not wildcard_match("arn:x/GET/?", "arn:x/GET/ab")
    assert not wildcard_match("arn:x/GET/a.c", "arn:x/GET/abc")


def test_iam_actions_ignore_case_and_a_deny_wins() -> None:
    allow = {"Effect": "Allow", "Action": "Execute-API:*", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "arn:x/PUT/*"}

    assert is_allowed({"Statement": [allow]}, "arn:x/PUT/a")
    assert not is_allowed({"Statement": [allow, deny]}, "arn:x/PUT/a")
    assert not is_allowed({"Statement": [allow]}, "arn:x/PUT/a", action="s3:GetObject")
    assert not is_allowed({"Statement": "not a statement"}, "arn:x/PUT/a")
