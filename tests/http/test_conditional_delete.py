"""Conditional interactions and delete through the local gateway, with a real client (fhirpy) where
integrations use one: an upsert by visit number, HAPI's full-URL If-None-Exist, and an admin's delete
as clients, the change stream and the audit trail see it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from local.stack import LocalStack
from tests._change_events import EVENT_SCHEMA
from tests._fhir_schema import assert_valid
from tests.http.conftest import ApiSession
from tests.http.route_calls import encounter_body, patient_body

VISIT = "http://hospital.example.org/visit"
MRN = "http://hospital.example.org/mrn"
FHIR_JSON = "application/fhir+json"
# How long the change stream and the audit pipeline may take to show a write (they run beside the API).
VISIBLE_WITHIN_SECONDS = 60

Auth = Callable[..., dict[str, str]]


def _eventually(find: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """What ``find`` returns once it returns something, looking again until the deadline."""
    deadline = time.monotonic() + VISIBLE_WITHIN_SECONDS
    while not (found := find()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _create(api: ApiSession, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(body["resourceType"], json=body, headers={**headers, "Content-Type": FHIR_JSON})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


@pytest.fixture
def patient_id(api: ApiSession, auth: Auth) -> str:
    return str(_create(api, auth("practitioner"), patient_body("Upserted"))["id"])


def test_fhirpy_upserts_an_encounter_by_its_visit_number(
    fhirpy_client: Callable[[str], SyncFHIRClient], patient_id: str
) -> None:
    # Given a practitioner's fhirpy client and an encounter from an ADT feed, keyed by its visit number
    client = fhirpy_client("practitioner")
    visit = {"system": VISIT, "value": "ADT-1001"}
    body = {**encounter_body(patient_id), "identifier": [visit], "status": "in-progress"}
    by_visit = client.resources("Encounter").search(identifier=f"{VISIT}|ADT-1001")

    # When the feed sends it twice, the second time finished (fhirpy's conditional update)
    first, created = by_visit.update(client.resource("Encounter", **body))
    second, created_again = by_visit.update(client.resource("Encounter", **{**body, "status": "finished"}))

    # Then the first created it and the second updated the same encounter
    assert created is True and created_again is False
    assert second.id == first.id
    assert (second.meta.versionId, second.status) == ("2", "finished")
    assert [found.id for found in by_visit.fetch_all()] == [first.id]


def test_fhirpy_conditional_update_of_a_patient_by_mrn_and_its_refusals(
    fhirpy_client: Callable[[str], SyncFHIRClient],
) -> None:
    client = fhirpy_client("practitioner")
    mrn = {"system": MRN, "value": "MRN-HTTP-1"}
    by_mrn = client.resources("Patient").search(identifier=f"{MRN}|MRN-HTTP-1")
    patient, created = by_mrn.update(client.resource("Patient", identifier=[mrn], gender="female"))
    assert created is True
    # A body id that is not the match's is refused with an OperationOutcome
    with pytest.raises(OperationOutcome) as refused:
        by_mrn.update(client.resource("Patient", id="someone-else", identifier=[mrn]))
    assert "someone-else" in str(refused.value)
    # Conditional delete is not offered: 405, nothing deleted
    with pytest.raises(OperationOutcome):
        by_mrn.delete()
    assert client.resources("Patient").search(_id=patient.id).count() == 1


def test_hapi_style_if_none_exist_answers_the_match_with_its_location(
    api: ApiSession, auth: Auth, local_stack: LocalStack, patient_id: str
) -> None:
    headers = {**auth("practitioner"), "Content-Type": FHIR_JSON}
    body = {**encounter_body(patient_id), "identifier": [{"system": VISIT, "value": "ADT-2002"}]}
    existing = _create(api, headers, body)

    # When HAPI's generic client posts the same visit with the full URL as If-None-Exist
    condition = f"{local_stack.base_url}/Encounter?identifier={VISIT}|ADT-2002"
    answer = api.post("Encounter", json=body, headers={**headers, "If-None-Exist": condition})

    # Then the match is answered with 200, its Location and Content-Location
    assert answer.status_code == 200, answer.text
    location = f"{local_stack.base_url}/Encounter/{existing['id']}/_history/1"
    assert answer.headers["Location"] == answer.headers["Content-Location"] == location
    assert answer.json()["id"] == existing["id"]


def test_an_admin_deletes_an_encounter_as_every_reader_sees_it(
    api: ApiSession, auth: Auth, local_stack: LocalStack, patient_id: str
) -> None:
    practitioner, admin = auth("practitioner"), auth("admin", sub="admin-who-deletes")
    encounter = _create(api, practitioner, encounter_body(patient_id))
    path = f"Encounter/{encounter['id']}"

    # When a practitioner, then an auditor, then the admin delete it
    refused = [api.delete(path, headers=auth(role)) for role in ("practitioner", "auditor")]
    deleted = api.delete(path, headers=admin)

    # Then only the admin's delete is served (the gateway's policy refuses the others)
    assert [answer.status_code for answer in refused] == [403, 403]
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["resourceType"] == "OperationOutcome"
    assert deleted.headers["ETag"] == 'W/"2"'
    # And read is 410 Gone, search no longer finds it, history keeps version 1 and shows the deletion
    gone = api.get(path, headers=practitioner)
    assert gone.status_code == 410 and gone.json()["resourceType"] == "OperationOutcome"
    assert "entry" not in api.get(f"Encounter?subject=Patient/{patient_id}", headers=practitioner).json()
    history = api.get(f"{path}/_history", headers=practitioner).json()
    assert_valid(history)  # the deletion's entry, without a resource, is valid FHIR R4
    assert [entry["request"]["method"] for entry in history["entry"]] == ["DELETE", "POST"]
    assert history["entry"][1]["resource"]["id"] == encounter["id"]
    assert api.get(f"{path}/_history/1", headers=practitioner).status_code == 200
    assert api.get(f"{path}/_history/2", headers=practitioner).status_code == 410

    # And the bus gets an Encounter.deleted event that names the patient, as its schema says
    assert local_stack.notifications is not None
    events = _eventually(
        lambda: [
            event
            for event in local_stack.notifications.events.events()  # type: ignore[union-attr]
            if event["detail"]["id"] == encounter["id"] and event["detail-type"] == "Encounter.deleted"
        ]
    )
    assert len(events) == 1
    jsonschema.validate(events[0], EVENT_SCHEMA)
    assert events[0]["detail"]["subject"] == f"Patient/{patient_id}"
    assert (events[0]["detail"]["statusBefore"], events[0]["detail"]["statusAfter"]) == ("planned", None)

    # And the audit trail records the delete with action D, naming the deletion's version and the patient
    auditor = auth("auditor")

    def audited() -> list[dict[str, Any]]:
        answer = api.get(f"AuditEvent?entity={path}&action=D", headers=auditor)
        assert answer.status_code == 200, answer.text
        return [entry["resource"] for entry in answer.json().get("entry", [])]

    def succeeded() -> list[dict[str, Any]]:
        return [event for event in audited() if event["outcome"] == "0"]

    # (the two refused deletes are audited too, as failures)
    (event,) = _eventually(succeeded)
    assert event["action"] == "D"
    assert {coding["code"] for coding in event["subtype"]} >= {"delete"}
    references = {entity["what"]["reference"] for entity in event["entity"] if "what" in entity}
    assert {f"{path}/_history/2", f"Patient/{patient_id}"} <= references


def test_a_patient_with_encounters_is_not_deleted(api: ApiSession, auth: Auth, patient_id: str) -> None:
    admin = auth("admin")
    encounter = _create(api, auth("practitioner"), encounter_body(patient_id))
    refused = api.delete(f"Patient/{patient_id}", headers=admin)
    assert refused.status_code == 409, refused.text
    assert f"Encounter/{encounter['id']}" in refused.json()["issue"][0]["diagnostics"]
    assert api.get(f"Patient/{patient_id}", headers=admin).status_code == 200
