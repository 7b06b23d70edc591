"""REST API proxy events (payload 1.0) for calling the functions' handlers directly.

Each starts from the function's sample in ``events/`` (its resource path and request context, as API
Gateway builds them) and takes the path, query, body and caller of the request being measured.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from functools import cache
from typing import Any

from local import ROOT

HOST = "127.0.0.1:3000"


@cache
def _sample(function: str) -> dict[str, Any]:
    with open(ROOT / "events" / f"{function}.json", encoding="utf-8") as handle:
        sample: dict[str, Any] = json.load(handle)
    return sample


def api_event(
    function: str,
    path: str,
    *,
    path_params: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
    body: str | None = None,
    sub: str = "bench",
    roles: str = "practitioner",
) -> dict[str, Any]:
    """The event API Gateway would hand ``function`` for this request (authorized as ``sub``/``roles``)."""
    event = copy.deepcopy(_sample(function))
    headers = {"Accept": "application/fhir+json", "Host": HOST, "X-Forwarded-Proto": "http"}
    if body is not None:
        headers["Content-Type"] = "application/fhir+json"
    request_id = str(uuid.uuid4())
    context = event["requestContext"]
    context.update({"path": f"/Prod{path}", "requestId": request_id, "extendedRequestId": request_id})
    if context.get("authorizer") is not None:
        # The functions check the token's expiry again (the authorizer passes exp): an hour ahead.
        expires = str(int(time.time()) + 3600)
        context["authorizer"] = {
            "principalId": sub,
            "sub": sub,
            "roles": roles,
            "exp": expires,
            "integrationLatency": 0,
        }
    event.update(
        {
            "path": path,
            "httpMethod": context["httpMethod"],
            "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "queryStringParameters": {name: values[-1] for name, values in query.items()} if query else None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": path_params or None,
            "body": body,
            "isBase64Encoded": False,
        }
    )
    return event


def read_event(resource_id: str) -> dict[str, Any]:
    """GET /api/fhir/Encounter/{id}"""
    return api_event("encounter_read", f"/api/fhir/Encounter/{resource_id}", path_params={"id": resource_id})


def vread_event(resource_id: str, version_id: int = 1) -> dict[str, Any]:
    """GET /api/fhir/Encounter/{id}/_history/{vid}"""
    return api_event(
        "encounter_vread",
        f"/api/fhir/Encounter/{resource_id}/_history/{version_id}",
        path_params={"id": resource_id, "vid": str(version_id)},
    )


def search_event(query: dict[str, list[str]]) -> dict[str, Any]:
    """GET /api/fhir/Encounter?<query>"""
    return api_event("encounter_search", "/api/fhir/Encounter", query=query)


def create_event(document: dict[str, Any]) -> dict[str, Any]:
    """POST /api/fhir/Encounter (no Idempotency-Key: the plain create path)."""
    return api_event(
        "encounter_create", "/api/fhir/Encounter", body=json.dumps(document, separators=(",", ":"))
    )


def update_event(resource_id: str, document: dict[str, Any]) -> dict[str, Any]:
    """PUT /api/fhir/Encounter/{id} (no If-Match: the update replaces whatever version is current)."""
    return api_event(
        "encounter_update",
        f"/api/fhir/Encounter/{resource_id}",
        path_params={"id": resource_id},
        body=json.dumps({**document, "id": resource_id}, separators=(",", ":")),
    )


def metadata_event() -> dict[str, Any]:
    """GET /api/fhir/metadata (no token)."""
    return api_event("metadata", "/api/fhir/metadata")
