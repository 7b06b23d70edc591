"""openapi.yaml describes exactly the API that routes.py and template.yaml deploy: the same routes and
methods, the search parameter tables, bearer security and OperationOutcome errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from schemathesis.specs.openapi.definitions import OPENAPI_30

from fhir_api.resources import DEFINITIONS
from fhir_api.routes import PUBLIC_INTERACTIONS, ROUTES
from fhir_api.search.parameters import RESULT_PARAMETERS, TRANSPORT_PARAMETERS

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
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

        # When the search operation's query parameters are read
        route = next(r for r in ROUTES if r.resource_type == resource_type and r.interaction == "search-type")
        query = {p["name"] for p in parameters(openapi, route.path, route.method) if p["in"] == "query"}

        # Then they are the table plus the paging, sorting and format parameters, nothing else
        assert query - CONTROL_PARAMETERS == table, resource_type
        assert query & CONTROL_PARAMETERS == CONTROL_PARAMETERS, resource_type


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
