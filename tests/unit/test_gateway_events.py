"""The local gateway builds the REST proxy event API Gateway builds (payload 1.0) and turns the
function's proxy result into the HTTP answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_fakes import write_fake_api

from local import issuer
from local.api_model import ApiDefinition
from local.gateway import Gateway
from local.http_messages import MAX_BODY_BYTES, HttpRequest, HttpResponse


@pytest.fixture
def gateway(tmp_path: Path, restore_environ: None) -> Iterator[Gateway]:
    template = write_fake_api(tmp_path)
    yield Gateway(template, root=tmp_path, port=3999)


def call(
    gateway: Gateway,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> HttpResponse:
    path, _, query = target.partition("?")
    return gateway.handle(HttpRequest(method, path, query, headers or [("Authorization", "allow")], body))


def event_of(response: HttpResponse) -> dict[str, Any]:
    assert response.status == 200, response.body
    return json.loads(response.body)["event"]  # type: ignore[no-any-return]


def test_repeated_query_parameters_stay_apart(gateway: Gateway) -> None:
    # Given a FHIR search that repeats a parameter and encodes its values
    target = "/items?date=ge2024-01-01&date=lt2024-02-01&name=van%20der+Berg&empty=&code=a%2Cb"

    # When the gateway builds the event
    event = event_of(call(gateway, "GET", target))

    # Then the repeated values stay apart, decoded, and the single map keeps the last of each
    assert event["multiValueQueryStringParameters"] == {
        "date": ["ge2024-01-01", "lt2024-02-01"],
        "name": ["van der Berg"],
        "empty": [""],
        "code": ["a,b"],
    }
    assert event["queryStringParameters"]["date"] == "lt2024-02-01"
    assert event["httpMethod"] == "GET"
    assert event["resource"] == "/items"
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None


def test_path_parameters_resource_and_request_context(gateway: Gateway) -> None:
    # Given a request on the route with two path parameters, called with the stage prefix
    # When the gateway builds the event
    event = event_of(call(gateway, "GET", "/Prod/items/abc-1/_history/2"))

    # Then the resource, path, parameters and context are those API Gateway gives
    assert event["resource"] == "/items/{id}/_history/{vid}"
    assert event["path"] == "/items/abc-1/_history/2"
    assert event["pathParameters"] == {"id": "abc-1", "vid": "2"}
    context = event["requestContext"]
    assert context["path"] == "/Prod/items/abc-1/_history/2"
    assert context["stage"] == "Prod"
    assert context["resourcePath"] == "/items/{id}/_history/{vid}"
    assert context["httpMethod"] == "GET"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"]
    assert context["authorizer"]["principalId"] == "user-1"
    assert context["authorizer"]["sub"] == "user-1"
    assert context["authorizer"]["roles"] == "admin"


def test_without_stage_prefix_the_context_path_is_the_path(gateway: Gateway) -> None:
    event = event_of(call(gateway, "GET", "/items/7"))

    assert event["requestContext"]["path"] == "/items/7"
    assert event["pathParameters"] == {"id": "7"}


def test_specific_routes_win_over_proxy(gateway: Gateway) -> None:
    # Given /items/{id} (GET, PUT) and /items/{proxy+} (ANY)
    # When a defined method, an undefined one and a deeper path are called
    read = json.loads(call(gateway, "GET", "/items/7").body)
    delete = call(gateway, "DELETE", "/items/7")
    deep = json.loads(call(gateway, "GET", "/items/7/other/x").body)

    # Then the most specific resource is chosen first, then its method (as API Gateway does);
    # the proxy serves only paths no specific resource matches
    assert read["function"] == "EchoFunction"
    assert delete.status == 403
    assert deep["function"] == "FallbackFunction"
    assert deep["event"]["resource"] == "/items/{proxy+}"
    assert deep["event"]["pathParameters"] == {"proxy": "7/other/x"}


def test_repeated_headers_and_multi_value_headers(gateway: Gateway) -> None:
    headers = [
        ("Authorization", "allow"),
        ("X-Tag", "one"),
        ("X-Tag", "two"),
        ("Accept", "application/fhir+json"),
    ]

    event = event_of(call(gateway, "GET", "/items", headers))

    assert event["multiValueHeaders"]["X-Tag"] == ["one", "two"]
    assert event["headers"]["X-Tag"] == "two"
    assert event["headers"]["Accept"] == "application/fhir+json"
    assert event["headers"]["Authorization"] == "allow"


def test_text_body_is_passed_as_text(gateway: Gateway) -> None:
    body = json.dumps({"resourceType": "Patient", "name": [{"family": "Øster"}]}, ensure_ascii=False)

    event = event_of(call(gateway, "PUT", "/items/1", body=body.encode("utf-8")))

    assert event["isBase64Encoded"] is False
    assert event["body"] == body


def test_bytes_that_are_not_utf8_reach_the_function_base64_encoded(gateway: Gateway) -> None:
    raw = b'{"name": "\xff\xfe"}'

    event = event_of(call(gateway, "PUT", "/items/1", body=raw))

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_no_body_is_null(gateway: Gateway) -> None:
    event = event_of(call(gateway, "GET", "/items/1"))

    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_proxy_result_headers_multi_value_headers_and_base64_body(gateway: Gateway) -> None:
    text = call(gateway, "GET", "/items/1")
    binary = call(gateway, "GET", "/binary", headers=[])

    assert ("X-Multi", "a") in text.headers and ("X-Multi", "b") in text.headers
    assert ("Content-Type", "application/json") in text.headers
    assert binary.body == bytes([0, 255, 1])


def test_a_function_that_raises_gives_502_with_the_default_5xx_response(gateway: Gateway) -> None:
    response = call(gateway, "GET", "/crash", headers=[])

    assert response.status == 502
    assert json.loads(response.body) == {"outcome": "server error"}


def test_a_body_over_10_mb_is_refused_with_413(gateway: Gateway) -> None:
    response = call(gateway, "PUT", "/items/1", body=b"x" * (MAX_BODY_BYTES + 1))

    assert response.status == 413
    assert json.loads(response.body) == {"message": "Request Too Long"}


def test_unknown_path_is_missing_authentication_token(gateway: Gateway) -> None:
    response = call(gateway, "GET", "/nowhere")

    assert response.status == 403
    assert json.loads(response.body) == {"message": "Missing Authentication Token"}


def test_jwks_is_served(gateway: Gateway) -> None:
    response = call(gateway, "GET", "/.well-known/jwks.json", headers=[])

    assert response.status == 200
    assert json.loads(response.body) == issuer.jwks()


def test_function_environment_is_the_union_of_globals_and_functions(gateway: Gateway) -> None:
    # Given the template's globals, a function's own variable and the local settings
    env = gateway.environment

    # Then the union is what every function sees
    assert env["GLOBAL_FLAG"] == "yes"
    assert env["FALLBACK_FLAG"] == "on"
    assert env["JWKS_URL"] == "http://127.0.0.1:3999/.well-known/jwks.json"
    assert env["TOKEN_ISSUER"] == "encounter-api-local"
    assert env["TOKEN_AUDIENCE"] == "encounter-api"
    assert env["PAGE_TOKEN_SECRET"]
    assert env["AWS_REGION"] == "us-east-1"


def test_the_real_template_routes_every_route_of_routes_py(template: dict[str, Any]) -> None:
    from fhir_api.routes import PUBLIC_INTERACTIONS, ROUTES

    # Given template.yaml read by the gateway
    definition = ApiDefinition.from_template(template, Path("."))

    # Then each route is served by its function, behind the authorizer unless public
    for route in ROUTES:
        sample = route.path.replace("{id}", "abc").replace("{vid}", "1")
        found = definition.find(route.method, sample)
        assert found is not None, route
        api_route, _ = found
        assert api_route.function == route.logical_id
        assert (api_route.authorizer is None) == (route.interaction in PUBLIC_INTERACTIONS)
