"""openapi.yaml describes exactly the API that routes.py and template.yaml deploy: the same routes and
methods, the search parameter tables, bearer security, OperationOutcome errors with the statuses the
code answers, the headers the code reads and writes, the body limit of the settings and the servers
of make run and of the stack."""

from __future__ import annotations

import ast
import re
from typing import Any

import jsonschema
import pytest
import yaml
from schemathesis.specs.openapi.definitions import OPENAPI_30

from fhir_api.api.outcome import HTTP_STATUS
from fhir_api.resources import DEFINITIONS
from fhir_api.routes import API_PREFIX, PUBLIC_INTERACTIONS, ROUTES, WRITE_INTERACTIONS
from fhir_api.search.parameters import RESULT_PARAMETERS, TRANSPORT_PARAMETERS
from fhir_api.settings import Settings
from local import ROOT, SHARED_DIR
from local.gateway import DEFAULT_HOST

OPENAPI_PATH = ROOT / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# What a search accepts besides its resource's search parameters (paging, sorting, format).
CONTROL_PARAMETERS = RESULT_PARAMETERS | TRANSPORT_PARAMETERS


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    """openapi.yaml, parsed."""
    document: dict[str, Any] = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    return document


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node`` with its local $ref followed (repeatedly)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> operation object."""
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def parameters(document: dict[str, Any], path: str, method: str) -> list[dict[str, Any]]:
    """The resolved parameters of an operation (path-level ones included)."""
    item = document["paths"][path]
    declared = list(item.get("parameters", [])) + list(item[method.lower()].get("parameters", []))
    return [resolve(document, parameter) for parameter in declared]


def template_routes(template: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every Api event of every function, except the fallback's catch-all ANY."""
    found = set()
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") != "Api" or event["Properties"]["Method"].upper() == "ANY":
                continue
            found.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    return found


def test_openapi_is_a_valid_openapi_3_document(openapi: dict[str, Any]) -> None:
    # Given the OpenAPI 3.0 meta-schema
    validator = jsonschema.validators.validator_for(OPENAPI_30)(OPENAPI_30)

    # When openapi.yaml is checked against it
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(openapi)]

    # Then it is a valid OpenAPI 3.0 description
    assert openapi["openapi"].startswith("3.0")
    assert errors == []


def test_openapi_has_every_route_of_routes_py_and_no_other(openapi: dict[str, Any]) -> None:
    # Given the route table
    routes = {(route.method, route.path) for route in ROUTES}

    # When the OpenAPI operations are listed
    described = set(operations(openapi))

    # Then they are exactly the routes, with the same methods
    assert described == routes


def test_openapi_has_every_route_of_template_yaml_and_no_other(
    openapi: dict[str, Any], template: dict[str, Any]
) -> None:
    # Given the routes template.yaml deploys (one function per route; the fallback answers the rest)
    deployed = template_routes(template)

    # When the OpenAPI operations are listed
    described = set(operations(openapi))

    # Then both describe the same API
    assert deployed == described


def test_every_operation_id_is_unique(openapi: dict[str, Any]) -> None:
    # Given every operation
    ids = [operation.get("operationId") for operation in operations(openapi).values()]

    # Then each has its own operationId
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_bearer_security_on_every_route_but_metadata(openapi: dict[str, Any]) -> None:
    # Given the bearer scheme and the default security requirement
    scheme = openapi["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert openapi["security"] == [{"bearer": []}]

    # When the security of each operation is read
    for route in ROUTES:
        operation = operations(openapi)[(route.method, route.path)]
        security = operation.get("security", openapi["security"])

        # Then only the public routes (metadata) are open
        if route.interaction in PUBLIC_INTERACTIONS:
            assert security == [], route.path
        else:
            assert security == [{"bearer": []}], f"{route.method} {route.path}"
            assert "401" in operation["responses"] and "403" in operation["responses"]


def test_request_bodies_are_fhir_json_resources(openapi: dict[str, Any]) -> None:
    # Given the create and update operations
    writes = [route for route in ROUTES if route.interaction in ("create", "update")]
    assert writes

    for route in writes:
        operation = operations(openapi)[(route.method, route.path)]

        # When their request body is read
        body = resolve(openapi, operation["requestBody"])
        schema = resolve(openapi, body["content"]["application/fhir+json"]["schema"])

        # Then it is a required FHIR JSON object of the route's resourceType, open to every element
        assert body["required"] is True
        assert schema["type"] == "object"
        assert "resourceType" in schema["required"]
        assert schema["properties"]["resourceType"]["enum"] == [route.resource_type]
        assert schema.get("additionalProperties", True) is True


def test_search_parameters_equal_the_search_parameter_tables(openapi: dict[str, Any]) -> None:
    for resource_type, definition in DEFINITIONS.items():
        # Given the resource's search parameter table
        table = set(definition.search_parameters)

        # with the chains it offers, and the result parameters that apply to it
        chains = {
            f"{parameter.name}.{chained}"
            for parameter in definition.search_parameters.values()
            for target in parameter.target
            for chained in definition.chained_parameters.get(target, {})
        }
        control = CONTROL_PARAMETERS - {
            name
            for name, offered in (
                ("_include", definition.includes),
                ("_revinclude", definition.revincludes),
                ("_elements", definition.subsettable),
            )
            if not offered
        }

        # When the search operation's query parameters are read
        route = next(r for r in ROUTES if r.resource_type == resource_type and r.interaction == "search-type")
        query = {p["name"] for p in parameters(openapi, route.path, route.method) if p["in"] == "query"}

        # Then they are the table plus its chains, the paging, sorting and format parameters, nothing else
        assert query - control - chains == table, resource_type
        assert query & CONTROL_PARAMETERS == control, resource_type


def test_sort_values_equal_the_resources_sorts(openapi: dict[str, Any]) -> None:
    for resource_type, definition in DEFINITIONS.items():
        # Given the search operation's _sort parameter
        route = next(r for r in ROUTES if r.resource_type == resource_type and r.interaction == "search-type")
        sort = next(p for p in parameters(openapi, route.path, route.method) if p["name"] == "_sort")

        # Then it lists the sorts the resource accepts
        assert tuple(sort["schema"].get("enum", ())) == tuple(definition.sort_parameters), resource_type


def test_path_parameters_are_declared(openapi: dict[str, Any]) -> None:
    for route in ROUTES:
        # Given a route's path template
        placeholders = {part[1:-1] for part in route.path.split("/") if part.startswith("{")}

        # When its path parameters are read
        declared = {p["name"] for p in parameters(openapi, route.path, route.method) if p["in"] == "path"}

        # Then every placeholder is a required path parameter
        assert declared == placeholders, route.path


def test_every_error_response_is_an_operation_outcome(openapi: dict[str, Any]) -> None:
    outcome = openapi["components"]["schemas"]["OperationOutcome"]
    for (method, path), operation in operations(openapi).items():
        errors = {status: resolve(openapi, answer) for status, answer in operation["responses"].items()}
        assert any(status.startswith("4") for status in errors), f"{method} {path}"
        for status, answer in errors.items():
            if not status.startswith(("4", "5")):
                continue
            # Then each 4xx/5xx answer is FHIR JSON whose schema is the OperationOutcome schema
            schema = resolve(openapi, answer["content"]["application/fhir+json"]["schema"])
            assert schema is outcome, f"{method} {path} {status}"


def test_service_unavailable_documents_retry_after(openapi: dict[str, Any]) -> None:
    # Given the 503 answer the operations share
    answer = openapi["components"]["responses"]["ServiceUnavailable"]

    # Then it carries Retry-After
    assert "Retry-After" in answer["headers"]
    for (_, path), operation in operations(openapi).items():
        if path.endswith("/metadata"):
            continue
        assert operation["responses"]["503"] == {"$ref": "#/components/responses/ServiceUnavailable"}, path


# -- limits, servers and headers ---------------------------------------------------------------------

# The headers the layer reads that are described by the operations' content types rather than as
# parameters: Content-Type (the request bodies), Accept (the answers' content, 406 otherwise) and Origin
# (sent by browsers themselves; CORS is off unless the stack is configured for it).
NEGOTIATION_HEADERS = frozenset({"Content-Type", "Accept", "Origin"})
# Headers every answer documents, and those it must carry.
EVERY_ANSWER_HEADERS = ("X-Request-Id", "Cache-Control", "X-Content-Type-Options")
# API Gateway's own refusals carry the request id as x-amzn-RequestId; every answer is kept out of caches.
REQUIRED_ON_EVERY_ANSWER = ("Cache-Control", "X-Content-Type-Options")
# _resource_response in interactions.py: a version's answer names it; a write also gives its URL.
VERSION_INTERACTIONS = frozenset({"create", "update", "read", "vread"})
LOCATION_ANSWERS = frozenset({("create", "201"), ("update", "200")})
SIZE_FIGURE = re.compile(r"(\d[\d,]*)\s*(KB|bytes)\b")


def function_environment(template: dict[str, Any]) -> dict[str, str]:
    """The literal environment variables template.yaml gives the functions (globals, then each function)."""
    variables: dict[str, Any] = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            variables.update((resource["Properties"].get("Environment") or {}).get("Variables") or {})
    return {name: value for name, value in variables.items() if isinstance(value, str)}


def headers_read_by_the_layer() -> set[str]:
    """Every header name the Lambda layer reads with ``request.header("...")``."""
    names = set()
    for source in (SHARED_DIR / "fhir_api").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "header"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return names


def header_parameters(document: dict[str, Any], route: Any) -> set[str]:
    """The names of an operation's header parameters."""
    return {p["name"] for p in parameters(document, route.path, route.method) if p["in"] == "header"}


def answers(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, resolved response) of every answer of every operation."""
    return [
        (f"{method} {path} {status}", resolve(document, answer))
        for (method, path), operation in operations(document).items()
        for status, answer in operation["responses"].items()
    ]


def test_body_limit_is_the_functions_max_body_bytes(
    openapi: dict[str, Any], template: dict[str, Any]
) -> None:
    # Given the body limit the functions run with (the settings' default unless template.yaml sets it)
    limit = Settings.from_environ(function_environment(template)).max_body_bytes
    texts = {
        "info": openapi["info"]["description"],
        "413": openapi["components"]["responses"]["PayloadTooLarge"]["description"],
        **{
            f"{name} body": body["description"]
            for name, body in openapi["components"]["requestBodies"].items()
        },
    }

    for where, text in texts.items():
        # When the sizes the description gives are read
        figures = SIZE_FIGURE.findall(text)

        # Then each names that limit, in KB or in bytes
        assert figures, where
        for number, unit in figures:
            value = int(number.replace(",", ""))
            assert value == (limit // 1024 if unit == "KB" else limit), f"{where}: {number} {unit}"
    assert "358400 bytes" in texts["413"]


def test_local_server_has_the_port_of_make_run_as_a_variable(openapi: dict[str, Any]) -> None:
    # Given the port make run serves by default
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    default_port = re.search(r"^PORT \?= (\d+)$", makefile, re.MULTILINE)
    assert default_port is not None

    # When the local server is read
    local = openapi["servers"][0]

    # Then it is the gateway's address with the port as a variable defaulting to make run's
    assert local["url"] == f"http://{DEFAULT_HOST}:{{port}}"
    assert local["variables"]["port"]["default"] == default_port.group(1)


def test_aws_server_is_the_stacks_api_url(openapi: dict[str, Any], template: dict[str, Any]) -> None:
    # Given the stack's FHIR base URL and its stage parameter
    api_url = template["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    stage = template["Parameters"]["StageName"]["Default"]

    # When the API Gateway server is read
    aws = next(server for server in openapi["servers"] if "execute-api" in server["url"])

    # Then it is ApiUrl without the FHIR base (each path carries it), with a variable per unknown part
    expected = (
        api_url.replace("${FhirApi}", "{apiId}")
        .replace("${AWS::Region}", "{region}")
        .replace("${AWS::URLSuffix}", "amazonaws.com")
        .replace("${StageName}", "{stage}")
    )
    assert aws["url"] + API_PREFIX == expected
    assert set(aws["variables"]) == {"apiId", "region", "stage"}
    assert aws["variables"]["stage"]["default"] == stage
    for server in openapi["servers"]:
        assert not server["url"].endswith(API_PREFIX), server["url"]
    assert all(path == API_PREFIX or path.startswith(API_PREFIX + "/") for path in openapi["paths"])


def test_every_header_the_layer_reads_is_documented(openapi: dict[str, Any]) -> None:
    # Given the headers the Lambda layer reads
    read = headers_read_by_the_layer() - NEGOTIATION_HEADERS
    assert {"If-Match", "If-None-Exist", "Idempotency-Key", "Prefer"} <= read

    # When the header parameters of every operation are gathered
    documented = set().union(*(header_parameters(openapi, route) for route in ROUTES))

    # Then they are the same names: none left out, none the API ignores
    assert documented == read


def test_request_headers_are_on_the_interactions_that_read_them(openapi: dict[str, Any]) -> None:
    for route in ROUTES:
        # Given an operation's header parameters
        headers = header_parameters(openapi, route)
        definition = DEFINITIONS.get(str(route.resource_type))

        # Then each interaction lists the headers its code reads, and no other
        expected: set[str] = set()
        if route.interaction == "create":
            expected = {"Prefer", "Idempotency-Key"}
            if definition is not None and definition.conditional_create:
                expected.add("If-None-Exist")
        elif route.interaction in ("update", "patch"):
            expected = {"Prefer", "If-Match"}
        elif route.interaction in ("read", "vread") and route.resource_type != "AuditEvent":
            expected = {"If-None-Match", "If-Modified-Since"}
        elif route.interaction == "delete":
            expected = {"If-Match"}
        elif route.interaction == "search-type":
            expected = {"Prefer"}
        elif route.interaction == "transaction":
            expected = {"Prefer", "Idempotency-Key"}
        assert headers == expected, f"{route.method} {route.path}"


def test_conditional_create_answers_are_documented_only_where_it_is_supported(
    openapi: dict[str, Any],
) -> None:
    for route in ROUTES:
        if route.interaction != "create":
            continue
        # Given a create and whether its resource supports If-None-Exist
        responses = operations(openapi)[(route.method, route.path)]["responses"]
        supported = DEFINITIONS[str(route.resource_type)].conditional_create

        # Then the 200 of a match and the 412 of several matches are documented exactly when it does
        assert ("200" in responses) is supported, route.path
        assert ("412" in responses) is supported, route.path


def test_version_answers_document_etag_last_modified_and_location(openapi: dict[str, Any]) -> None:
    for route in ROUTES:
        if route.interaction not in VERSION_INTERACTIONS:
            continue
        # Given the success answers of an interaction that answers with one version
        responses = operations(openapi)[(route.method, route.path)]["responses"]
        for status, answer in responses.items():
            if not status.startswith("2"):
                continue
            headers = {name: resolve(openapi, header) for name, header in answer["headers"].items()}

            # Then they carry the version's ETag and Last-Modified, and a write its Location
            assert headers["ETag"]["required"] is True, f"{route.path} {status}"
            assert headers["Last-Modified"]["required"] is True, f"{route.path} {status}"
            if (route.interaction, status) in LOCATION_ANSWERS:
                assert headers["Location"]["required"] is True, f"{route.path} {status}"


def test_every_answer_documents_the_request_id_and_the_caching_headers(openapi: dict[str, Any]) -> None:
    for label, answer in answers(openapi):
        # Given any answer of any operation
        headers = {name: resolve(openapi, header) for name, header in (answer.get("headers") or {}).items()}

        # Then it documents the request id and the headers that keep it out of caches (always there)
        for name in EVERY_ANSWER_HEADERS:
            assert name in headers, f"{label}: {name}"
        for name in REQUIRED_ON_EVERY_ANSWER:
            assert headers[name]["required"] is True, f"{label}: {name}"


def test_unauthorized_documents_the_gateways_challenge(
    openapi: dict[str, Any], template: dict[str, Any]
) -> None:
    # Given the headers API Gateway's UNAUTHORIZED response sets (besides its content type)
    gateway = template["Resources"]["FhirApi"]["Properties"]["GatewayResponses"]["UNAUTHORIZED"]
    set_headers = {
        name: value.strip("'")
        for name, value in gateway["ResponseParameters"]["Headers"].items()
        if name.lower() != "content-type"
    }
    assert "WWW-Authenticate" in set_headers

    # When the documented 401 answer is read
    unauthorized = openapi["components"]["responses"]["Unauthorized"]

    # Then it documents each as required, and the value the gateway sends fits the documented one
    for name, value in set_headers.items():
        header = resolve(openapi, unauthorized["headers"][name])
        assert header["required"] is True, name
        assert re.match(header["schema"]["pattern"], value), (name, value)
    for route in ROUTES:
        if route.interaction not in PUBLIC_INTERACTIONS:
            responses = operations(openapi)[(route.method, route.path)]["responses"]
            assert responses["401"] == {"$ref": "#/components/responses/Unauthorized"}, route.path


def test_error_statuses_are_those_the_api_answers(openapi: dict[str, Any], template: dict[str, Any]) -> None:
    # Given the statuses the functions answer errors with, and those of the gateway's refusals
    gateway = template["Resources"]["FhirApi"]["Properties"]["GatewayResponses"]
    refusals = {int(gateway[kind]["StatusCode"]) for kind in ("UNAUTHORIZED", "ACCESS_DENIED")}
    answered = {status for _, status in HTTP_STATUS} | refusals

    # When the error statuses of every operation are gathered
    documented = {
        int(status)
        for operation in operations(openapi).values()
        for status in operation["responses"]
        if status.startswith(("4", "5"))
    }

    # Then none is one the API never gives, and each it gives is documented (405 answers only the
    # methods that no operation has, from the fallback function)
    assert documented <= answered
    assert answered - {405} == documented
    for route in ROUTES:
        responses = operations(openapi)[(route.method, route.path)]["responses"]
        if route.interaction in WRITE_INTERACTIONS:
            assert {"400", "409", "413", "415", "422"} <= set(responses), route.path
        # A delete of an unknown id is 200 (nothing to delete), as FHIR allows and HAPI answers
        if "{id}" in route.path and route.interaction != "delete":
            assert "404" in responses, route.path
