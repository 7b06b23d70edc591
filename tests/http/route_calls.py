"""Calls of any route of the table with a valid request, for the role and scope matrices."""

from __future__ import annotations

from typing import Any

import requests

from fhir_api.routes import Route

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def patient_body(family: str, resource_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": ["Test"]}]}
    if resource_id:
        body["id"] = resource_id
    return body


def encounter_body(patient_id: str, resource_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": V3_ACT_CODE, "code": "AMB"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if resource_id:
        body["id"] = resource_id
    return body


def subscription_body(criteria: str, endpoint: str, resource_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Tests",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON},
    }
    if resource_id:
        body["id"] = resource_id
    return body


# A rest-hook that no write of the role and scope tests matches (nothing listens there either).
QUIET_SUBSCRIPTION = ("Patient?_id=never-written", "http://127.0.0.1:9/hook")


# The identifier a conditional update of a route check names: the first creates, later ones update it.
ROUTE_CHECK_IDENTIFIER = "urn:oid:2.999|route-check"


def create_records(local_stack: Any) -> dict[str, str]:
    """A patient, an encounter and a Subscription made by an admin, for the routes that need ids."""
    headers = {"Authorization": f"Bearer {local_stack.token('admin')}", "Content-Type": FHIR_JSON}
    base = local_stack.base_url
    patient = requests.post(f"{base}/Patient", json=patient_body("Rolecheck"), headers=headers, timeout=30)
    assert patient.status_code == 201, patient.text
    patient_id = patient.json()["id"]
    encounter = requests.post(
        f"{base}/Encounter", json=encounter_body(patient_id), headers=headers, timeout=30
    )
    assert encounter.status_code == 201, encounter.text
    subscription = requests.post(
        f"{base}/Subscription", json=subscription_body(*QUIET_SUBSCRIPTION), headers=headers, timeout=30
    )
    assert subscription.status_code == 201, subscription.text
    return {
        "Patient": patient_id,
        "Encounter": encounter.json()["id"],
        "Subscription": subscription.json()["id"],
    }


def call(api: Any, route: Route, headers: dict[str, str], records: dict[str, str]) -> Any:
    """One request to ``route``, with a valid body where the route takes one."""
    if route.interaction == "transaction":
        # A batch that reads the patient: every role may send it, and each may read
        read = {"request": {"method": "GET", "url": f"Patient/{records['Patient']}"}}
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": [read]}
        return api.request(
            route.method, api.base_url, json=bundle, headers={**headers, "Content-Type": FHIR_JSON}
        )
    resource_type = route.resource_type or ""
    # A delete names an id never stored (200, nothing deleted): the records stay for the other routes
    resource_id = "never-stored" if route.interaction == "delete" else records.get(resource_type, "missing")
    path = route.path.removeprefix("/api/fhir/").replace("{id}", resource_id).replace("{vid}", "1")
    if route.conditional:
        path += f"?identifier={ROUTE_CHECK_IDENTIFIER}"
    body: dict[str, Any] | None = None
    if route.interaction in ("create", "update"):
        given_id = resource_id if route.interaction == "update" and not route.conditional else None
        if resource_type == "Subscription":
            body = subscription_body(*QUIET_SUBSCRIPTION, given_id)
        elif resource_type == "Encounter":
            body = encounter_body(records["Patient"], given_id)
        else:
            body = patient_body("Rolecheck", given_id)
    content_type = FHIR_JSON
    if route.interaction == "patch":
        body, content_type = [{"op": "add", "path": "/active", "value": True}], JSON_PATCH
        if resource_type == "Encounter":
            body = [{"op": "test", "path": "/subject/reference", "value": f"Patient/{records['Patient']}"}]
    elif route.interaction == "operation":  # $validate of a new resource
        body = (
            encounter_body(records["Patient"]) if resource_type == "Encounter" else patient_body("Rolecheck")
        )
    return api.request(route.method, path, json=body, headers={**headers, "Content-Type": content_type})


def assert_forbidden(response: Any) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
