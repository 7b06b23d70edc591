"""The documented example end to end over HTTP: the "Create Encounter" request of the API page (sent as
``application/json``, as its cURL does), after creating the patient it refers to; then the documented
list, read and update calls and the role table."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local import issuer
from local.stack import LocalStack
from tests._examples import SEED_ENCOUNTER, V3_ACT_CODE

TIMEOUT_SECONDS = 30

# The fields the example response promises (besides the server's id), with the request's values.
PROMISED = ("resourceType", "status", "class", "subject", "period")


@pytest.fixture(scope="module")
def seeded(local_stack: LocalStack) -> dict[str, Any]:
    """The patient, then the example encounter with its subject rewritten to that patient."""
    base = local_stack.base_url
    headers = {"Authorization": f"Bearer {issuer.mint('practitioner')}", "Content-Type": "application/json"}
    patient = requests.post(
        f"{base}/Patient",
        headers=headers,
        data=json.dumps({"resourceType": "Patient", "name": [{"family": "Seed", "given": ["Example"]}]}),
        timeout=TIMEOUT_SECONDS,
    )
    assert patient.status_code == 201, patient.text
    patient_id = patient.json()["id"]
    body = copy.deepcopy(SEED_ENCOUNTER)
    body["subject"]["reference"] = f"Patient/{patient_id}"
    response = requests.post(
        f"{base}/Encounter", headers=headers, data=json.dumps(body), timeout=TIMEOUT_SECONDS
    )
    return {"patient_id": patient_id, "sent": body, "response": response}


def test_the_example_request_is_created_with_every_promised_field(seeded: dict[str, Any]) -> None:
    # Given the example request, sent after its patient exists
    response, sent = seeded["response"], seeded["sent"]

    # Then it is created: 201, a Location to version 1, an ETag and a FHIR JSON body
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert response.headers["ETag"] == 'W/"1"'
    assert "Last-Modified" in response.headers
    created = response.json()
    assert response.headers["Location"].endswith(f"/api/fhir/Encounter/{created['id']}/_history/1")

    # And every field the example response shows comes back as sent, with a server-assigned id
    assert isinstance(created["id"], str) and created["id"]
    for name in PROMISED:
        assert created[name] == sent[name], name
    assert created["period"] == {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00Z"}

    # And nothing sent is lost (type and reasonCode too), with meta added
    assert {name: created[name] for name in sent} == sent
    assert created["meta"]["versionId"] == "1"


def test_the_example_reads_back_by_id(
    seeded: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # Given the created example
    created = seeded["response"].json()

    # When an auditor gets it by id (GET /api/fhir/Encounter/:id)
    response = api.get(f"Encounter/{created['id']}", headers=auth("auditor"))

    # Then it is the same resource
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize(
    "params",
    [
        {"subject": "Patient/{patient_id}"},
        {"subject": "Patient/{patient_id}", "status": "finished"},
        {"subject": "Patient/{patient_id}", "date": "2024-03-15"},
        {"status": "finished", "date": "ge2024-03-15T09:00:00Z"},
        {"date": "2024-03"},
    ],
)
def test_the_example_is_listed_by_the_documented_filters(
    seeded: dict[str, Any],
    api: requests.Session,
    auth: Callable[..., dict[str, str]],
    params: dict[str, str],
) -> None:
    # Given the created example
    created = seeded["response"].json()
    query = {name: value.format(patient_id=seeded["patient_id"]) for name, value in params.items()}

    # When the list is filtered by subject, status and date (GET /api/fhir/Encounter)
    response = api.get("Encounter", headers=auth("auditor"), params=query)

    # Then the example is in the searchset
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert created["id"] in [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def test_the_example_is_not_listed_outside_its_filters(
    seeded: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # Given the created example (finished, on 2024-03-15)
    patient = f"Patient/{seeded['patient_id']}"

    # When the list is filtered on another status or another day
    by_status = api.get(
        "Encounter", headers=auth("auditor"), params={"subject": patient, "status": "planned"}
    )
    by_date = api.get("Encounter", headers=auth("auditor"), params={"subject": patient, "date": "2024-03-16"})

    # Then it is not there
    assert by_status.status_code == by_date.status_code == 200
    assert by_status.json()["total"] == by_date.json()["total"] == 0


def test_the_example_updates_and_an_auditor_may_not(
    seeded: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # Given the created example, with an added reason text
    created = seeded["response"].json()
    changed = copy.deepcopy(created)
    changed["reasonCode"][0]["text"] = "Follow-up after check up"
    body = json.dumps(changed)

    # When an auditor and then a practitioner update it (PUT /api/fhir/Encounter/:id, application/json)
    refused = api.put(
        f"Encounter/{created['id']}",
        headers={**auth("auditor"), "Content-Type": "application/json"},
        data=body,
    )
    accepted = api.put(
        f"Encounter/{created['id']}",
        headers={**auth("practitioner"), "Content-Type": "application/json"},
        data=body,
    )

    # Then the auditor gets 403 and the practitioner version 2
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["meta"]["versionId"] == "2"
    assert accepted.json()["reasonCode"][0]["text"] == "Follow-up after check up"


@pytest.mark.parametrize("code", ["AMB", "EMER", "IMP", "VR"])
def test_every_documented_class_is_accepted(
    seeded: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]], code: str
) -> None:
    # Given the example with another documented class
    body = copy.deepcopy(seeded["sent"])
    body["class"] = {"system": V3_ACT_CODE, "code": code}

    # When it is created
    response = api.post(
        "Encounter", headers={**auth("admin"), "Content-Type": "application/json"}, data=json.dumps(body)
    )

    # Then it is stored with that class
    assert response.status_code == 201, response.text
    assert response.json()["class"]["code"] == code


def test_an_auditor_may_not_create_the_example(
    seeded: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # When an auditor sends the example request
    response = api.post(
        "Encounter",
        headers={**auth("auditor"), "Content-Type": "application/json"},
        data=json.dumps(seeded["sent"]),
    )

    # Then it is refused with an OperationOutcome
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_the_example_with_its_unknown_patient_is_refused(
    api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # Given the example as written, whose subject Patient/65f1234567890abcdef12345 does not exist here
    # When it is sent
    response = api.post(
        "Encounter",
        headers={**auth("practitioner"), "Content-Type": "application/json"},
        data=json.dumps(SEED_ENCOUNTER),
    )

    # Then it is refused (all encounters must reference a valid Patient), naming the subject
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert ["Encounter.subject"] in [issue.get("expression") for issue in outcome["issue"]]
