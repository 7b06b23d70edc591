"""Every resource the API returns validates against the official HL7 FHIR R4 JSON schema
(fhir.schema.json): resources, versions, bundles, the CapabilityStatement and every OperationOutcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local import issuer
from local.stack import LocalStack
from tests._fhir_schema import assert_valid, schema_errors

FHIR_JSON = "application/fhir+json"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SNOMED = "http://snomed.info/sct"
TIMEOUT_SECONDS = 30


def fhir_body(response: requests.Response) -> dict[str, Any]:
    """The response's FHIR JSON body, checked against the FHIR R4 schema (bundle entries one by one too)."""
    assert response.headers.get("Content-Type", "").startswith(FHIR_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert_valid(body)
    for entry in body.get("entry", []) if body.get("resourceType") == "Bundle" else []:
        assert_valid(entry["resource"])
    return body


def rich_patient(mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": mrn, "use": "usual"}],
        "active": True,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [
            {"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}
        ],
    }


def rich_encounter(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": ACT_CODE, "code": "EMER", "display": "emergency"},
        "type": [{"coding": [{"system": SNOMED, "code": "50849002", "display": "Emergency room admission"}]}],
        "priority": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority", "code": "EM"}]
        },
        "subject": {"reference": f"Patient/{patient_id}", "display": "Peter Chalmers"},
        "participant": [
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "ATND",
                            }
                        ]
                    }
                ],
                "individual": {"display": "Dr Adam Careful"},
                "period": {"start": "2024-03-15T09:00:00+01:00"},
            }
        ],
        "period": {"start": "2024-03-15T09:00:00+01:00"},
        "length": {"value": 30, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
        "reasonCode": [{"coding": [{"system": SNOMED, "code": "390906007"}], "text": "Follow-up"}],
        "hospitalization": {"admitSource": {"text": "walk-in"}},
    }


@pytest.fixture(scope="module")
def created(local_stack: LocalStack) -> dict[str, Any]:
    """A patient and an encounter created over HTTP, the encounter updated once (once per module)."""
    base = local_stack.base_url
    headers = {"Authorization": f"Bearer {issuer.mint('practitioner')}", "Content-Type": FHIR_JSON}
    patient = requests.post(
        f"{base}/Patient",
        headers=headers,
        data=json.dumps(rich_patient("schema-12345")),
        timeout=TIMEOUT_SECONDS,
    )
    assert patient.status_code == 201, patient.text
    patient_id = patient.json()["id"]
    encounter = requests.post(
        f"{base}/Encounter",
        headers=headers,
        data=json.dumps(rich_encounter(patient_id)),
        timeout=TIMEOUT_SECONDS,
    )
    assert encounter.status_code == 201, encounter.text
    body = encounter.json()
    body["status"] = "finished"
    body["period"]["end"] = "2024-03-15T10:00:00+01:00"
    updated = requests.put(
        f"{base}/Encounter/{body['id']}",
        headers={**headers, "If-Match": 'W/"1"'},
        data=json.dumps(body),
        timeout=TIMEOUT_SECONDS,
    )
    assert updated.status_code == 200, updated.text
    return {
        "patient": patient,
        "encounter": encounter,
        "updated": updated,
        "patient_id": patient_id,
        "encounter_id": body["id"],
    }


def test_the_schema_itself_refuses_what_fhir_refuses() -> None:
    # Given resources FHIR R4 does not allow (an unknown element, a status outside the code list)
    # Then the schema the tests rely on refuses them
    assert schema_errors({"resourceType": "Encounter", "status": "finished", "class": {}, "colour": "red"})
    assert schema_errors({"resourceType": "Encounter", "status": "done", "class": {"code": "AMB"}})
    assert not schema_errors({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}})


def test_capability_statement_validates(api: requests.Session) -> None:
    # When anyone reads /metadata
    response = api.get("metadata")

    # Then it is a valid CapabilityStatement
    assert response.status_code == 200
    assert fhir_body(response)["resourceType"] == "CapabilityStatement"


def test_created_and_updated_resources_validate(created: dict[str, Any]) -> None:
    # Given the answers to the creates and the update
    # Then each is a valid resource of its type
    assert fhir_body(created["patient"])["resourceType"] == "Patient"
    assert fhir_body(created["encounter"])["meta"]["versionId"] == "1"
    assert fhir_body(created["updated"])["meta"]["versionId"] == "2"


def test_reads_versions_and_history_validate(
    api: requests.Session, auth: Callable[..., dict[str, str]], created: dict[str, Any]
) -> None:
    # Given an auditor
    headers = auth("auditor")
    encounter_id, patient_id = created["encounter_id"], created["patient_id"]

    # When it reads the resources, their versions and their histories
    answers = [
        api.get(f"Encounter/{encounter_id}", headers=headers),
        api.get(f"Encounter/{encounter_id}/_history/1", headers=headers),
        api.get(f"Encounter/{encounter_id}/_history/2", headers=headers),
        api.get(f"Encounter/{encounter_id}/_history", headers=headers),
        api.get(f"Encounter/{encounter_id}/_history", headers=headers, params={"_count": "1"}),
        api.get(f"Patient/{patient_id}", headers=headers),
        api.get(f"Patient/{patient_id}/_history/1", headers=headers),
        api.get(f"Patient/{patient_id}/_history", headers=headers),
    ]

    # Then every answer is a valid FHIR resource
    assert [answer.status_code for answer in answers] == [200] * len(answers)
    bodies = [fhir_body(answer) for answer in answers]
    assert [entry["resource"]["meta"]["versionId"] for entry in bodies[3]["entry"]] == ["2", "1"]
    assert bodies[3]["type"] == "history"


@pytest.mark.parametrize(
    "path, params",
    [
        ("Encounter", {"subject": "Patient/{patient_id}"}),
        ("Encounter", {"patient": "{patient_id}", "date": "ge2024-03-15", "_count": "1"}),
        ("Encounter", {"status": "finished,in-progress"}),
        ("Encounter", {"_id": "{encounter_id}"}),
        ("Encounter", {"class": f"{ACT_CODE}|EMER", "_sort": "-date"}),
        ("Encounter", {"subject": "{patient_id}", "_summary": "count"}),
        ("Encounter", {"subject": "{patient_id}", "_count": "0"}),
        ("Encounter", {"status": "cancelled"}),
        ("Patient", {"identifier": "urn:oid:1.2.36.146.595.217.0.1|schema-12345"}),
        ("Patient", {"family": "chal", "gender": "male", "birthdate": "1974"}),
        ("Patient", {"_id": "{patient_id}", "_total": "accurate"}),
    ],
)
def test_search_bundles_validate(
    api: requests.Session,
    auth: Callable[..., dict[str, str]],
    created: dict[str, Any],
    path: str,
    params: dict[str, str],
) -> None:
    # Given a search
    query = {name: value.format(**created) for name, value in params.items()}

    # When an auditor runs it
    response = api.get(path, headers=auth("auditor"), params=query)

    # Then the searchset Bundle and every resource in it are valid
    assert response.status_code == 200, response.text
    body = fhir_body(response)
    assert body["type"] == "searchset"


def test_minimal_and_outcome_answers_validate(
    api: requests.Session, auth: Callable[..., dict[str, str]], created: dict[str, Any]
) -> None:
    # Given a client that asks for an OperationOutcome instead of the resource
    headers = {**auth("practitioner"), "Content-Type": FHIR_JSON, "Prefer": "return=OperationOutcome"}

    # When it creates an encounter
    response = api.post("Encounter", headers=headers, data=json.dumps(rich_encounter(created["patient_id"])))

    # Then the answer is a valid OperationOutcome
    assert response.status_code == 201
    assert fhir_body(response)["resourceType"] == "OperationOutcome"


def _deleted_encounter(
    api: requests.Session, auth: Callable[..., dict[str, str]], patient_id: str
) -> requests.Response:
    """The read of an encounter an admin has deleted."""
    write = {**auth("practitioner"), "Content-Type": FHIR_JSON}
    created = api.post("Encounter", headers=write, data=json.dumps(rich_encounter(patient_id)))
    assert created.status_code == 201, created.text
    path = f"Encounter/{created.json()['id']}"
    assert api.delete(path, headers=auth("admin")).status_code == 200
    return api.get(path, headers=auth("auditor"))


def error_requests(api: requests.Session, auth: Callable[..., dict[str, str]], ids: dict[str, Any]) -> dict:
    """One request for each error the API gives: name -> (expected status, response)."""
    write = {**auth("practitioner"), "Content-Type": FHIR_JSON}
    encounter = rich_encounter(ids["patient_id"])
    stale = {**encounter, "id": ids["encounter_id"]}
    backwards = {**encounter, "id": ids["encounter_id"], "status": "planned"}
    return {
        "invalid resource": (
            400,
            api.post("Encounter", headers=write, data=json.dumps({"resourceType": "Encounter"})),
        ),
        "bad search": (400, api.get("Encounter", headers=auth("auditor"), params={"date": "notadate"})),
        "no token": (401, api.get("Encounter")),
        "auditor writes": (
            403,
            api.post(
                "Patient",
                headers={**auth("auditor"), "Content-Type": FHIR_JSON},
                data=json.dumps(rich_patient("x")),
            ),
        ),
        "unknown id": (404, api.get("Encounter/unknown-id", headers=auth("auditor"))),
        "unknown path": (404, api.get("Observation", headers=auth("auditor"))),
        "wrong method": (405, api.post(f"Encounter/{ids['encounter_id']}", headers=write, data="{}")),
        "deleted": (410, _deleted_encounter(api, auth, ids["patient_id"])),
        "xml wanted": (406, api.get("metadata", params={"_format": "xml"})),
        "duplicate identifier": (
            409,
            api.post("Patient", headers=write, data=json.dumps(rich_patient("schema-12345"))),
        ),
        "stale If-Match": (
            412,
            api.put(
                f"Encounter/{ids['encounter_id']}",
                headers={**write, "If-Match": 'W/"1"'},
                data=json.dumps(stale),
            ),
        ),
        "form body": (
            415,
            api.post(
                "Encounter",
                headers={**auth("practitioner"), "Content-Type": "text/plain"},
                data=json.dumps(encounter),
            ),
        ),
        "finished goes back": (
            422,
            api.put(f"Encounter/{ids['encounter_id']}", headers=write, data=json.dumps(backwards)),
        ),
    }


def test_every_error_is_a_valid_operation_outcome(
    api: requests.Session, auth: Callable[..., dict[str, str]], created: dict[str, Any]
) -> None:
    # Given one request for each kind of error
    answers = error_requests(api, auth, created)

    for name, (status, response) in answers.items():
        # Then each gets its status and a valid OperationOutcome
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        body = fhir_body(response)
        assert body["resourceType"] == "OperationOutcome", name
        assert body["issue"][0]["severity"] in ("error", "fatal"), name
