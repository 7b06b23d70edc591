"""Calling the API functions' handlers the way API Gateway does, for integration tests."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fhir_api.api.handler import make_handler
from fhir_api.routes import route_for_function
from local.lambda_runtime import LambdaContext
from tests._examples import SEED_ENCOUNTER

# The domain API Gateway reports in requestContext; the Host header the client sends differs.
GATEWAY_DOMAIN = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"


@dataclass
class Answer:
    """A handler's answer, decoded."""

    status: int
    headers: dict[str, str]
    text: str
    body: Any = field(default=None)


_HANDLERS: dict[str, Any] = {}


def call(
    function: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    path_params: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    sub: str = "user-1",
    roles: str = "practitioner",
    raw_body: str | None = None,
) -> Answer:
    """Invoke ``functions/<function>``'s handler with a REST proxy event and decode its answer."""
    handler = _HANDLERS.setdefault(function, make_handler(function))
    all_headers = {"Host": "api.example.org", "Content-Type": "application/fhir+json", **(headers or {})}
    text_body = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    event = {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in (query or {}).items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_params,
        "body": text_body,
        "isBase64Encoded": False,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "domainName": GATEWAY_DOMAIN,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "authorizer": {
                "principalId": sub,
                "sub": sub,
                "roles": roles,
                "exp": str(int(time.time()) + 3600),
            },
        },
    }
    result = handler(event, LambdaContext("integration", str(uuid.uuid4())))
    text = result.get("body") or ""
    return Answer(result["statusCode"], result.get("headers") or {}, text, json.loads(text) if text else None)


def invoke(
    function: str, body: Any = None, path_params: dict[str, str] | None = None, **kwargs: Any
) -> Answer:
    """Call ``functions/<function>`` on its route (method and path from routes.py)."""
    route = route_for_function(function)
    return call(
        function,
        route.method,
        route.path.format(**(path_params or {})),
        body,
        path_params=path_params,
        **kwargs,
    )


def create_patient(family: str = "Chalmers", **elements: Any) -> str:
    """Create a Patient and return its id."""
    patient = {"resourceType": "Patient", "name": [{"family": family, "given": ["Peter"]}], **elements}
    answer = call("patient_create", "POST", "/api/fhir/Patient", patient)
    assert answer.status == 201, answer.text
    return str(answer.body["id"])


def encounter_for(patient_id: str, **changes: Any) -> dict[str, Any]:
    """The seed's example Encounter, for ``patient_id``, with ``changes`` applied."""
    encounter = json.loads(json.dumps(SEED_ENCOUNTER))
    encounter["subject"] = {"reference": f"Patient/{patient_id}"}
    encounter.update(changes)
    return {key: value for key, value in encounter.items() if value is not None}


def create_encounter(patient_id: str, **changes: Any) -> dict[str, Any]:
    """Create an Encounter and return it as the server answered."""
    answer = call("encounter_create", "POST", "/api/fhir/Encounter", encounter_for(patient_id, **changes))
    assert answer.status == 201, answer.text
    return dict(answer.body)


def search(resource_type: str, **params: str | list[str]) -> Answer:
    """GET [type]?params (a list value repeats the parameter)."""
    query = {name: value if isinstance(value, list) else [value] for name, value in params.items()}
    return call(f"{resource_type.lower()}_search", "GET", f"/api/fhir/{resource_type}", query=query)


def ids_of(bundle: dict[str, Any]) -> list[str]:
    """The ids of a Bundle's entries, in order."""
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def next_link(bundle: dict[str, Any]) -> str | None:
    """The Bundle's next link, if any."""
    return next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)


def follow_all(resource_type: str, **params: str | list[str]) -> list[str]:
    """Every id a search returns, following next links to the end."""
    answer = search(resource_type, **params)
    assert answer.status == 200, answer.text
    found = ids_of(answer.body)
    while link := next_link(answer.body):
        query = parse_qs(urlsplit(link).query)
        answer = call(f"{resource_type.lower()}_search", "GET", f"/api/fhir/{resource_type}", query=query)
        assert answer.status == 200, answer.text
        found += ids_of(answer.body)
    return found
