"""Conditional interactions and delete on DynamoDB Local, through the functions' handlers: Encounter's
identifier search, conditional create and update by identifier on both types, and delete as a version
of its own (410 on read, history kept, terms and identifier claims released, referenced patients kept)."""

from __future__ import annotations

from typing import Any

import pytest
from handler_calls import (
    Answer,
    call,
    create_encounter,
    create_patient,
    encounter_for,
    ids_of,
    invoke,
    search,
)

VISIT = "http://hospital.example.org/visit"
MRN = "http://hospital.example.org/mrn"


def visit(value: str, system: str = VISIT) -> dict[str, str]:
    return {"system": system, "value": value}


def conditional_update(resource_type: str, condition: str, body: dict[str, Any], **headers: str) -> Answer:
    name, _, value = condition.partition("=")
    return call(
        f"{resource_type.lower()}_conditional_update",
        "PUT",
        f"/api/fhir/{resource_type}",
        body,
        query={name: [value]},
        headers=headers,
    )


def delete(resource_type: str, resource_id: str, roles: str = "admin", **headers: str) -> Answer:
    return invoke(
        f"{resource_type.lower()}_delete", path_params={"id": resource_id}, roles=roles, headers=headers
    )


def read(resource_type: str, resource_id: str) -> Answer:
    return invoke(f"{resource_type.lower()}_read", path_params={"id": resource_id})


@pytest.fixture
def patient_id(ddb_tables: Any) -> str:
    return create_patient("Visited")


def test_encounters_are_found_by_every_form_of_identifier(patient_id: str) -> None:
    # Given an encounter with a visit number, one with the same value in another system, and one without
    wanted = create_encounter(patient_id, identifier=[visit("V-1")])["id"]
    other_system = create_encounter(patient_id, identifier=[visit("V-1", "urn:other")])["id"]
    create_encounter(patient_id)

    # When / Then each token form finds what FHIR says it does
    assert ids_of(search("Encounter", identifier=f"{VISIT}|V-1").body) == [wanted]
    assert sorted(ids_of(search("Encounter", identifier="V-1").body)) == sorted([wanted, other_system])
    assert ids_of(search("Encounter", identifier="|V-1").body) == []
    assert ids_of(search("Encounter", identifier=f"{VISIT}|").body) == [wanted]
    assert ids_of(search("Encounter", identifier=f"{VISIT}|V-2").body) == []
    # And together with other criteria (the subject's index answers, the identifier filters)
    assert ids_of(search("Encounter", identifier=f"{VISIT}|V-1", subject=patient_id).body) == [wanted]


def test_an_encounter_with_the_value_in_two_systems_is_returned_once(patient_id: str) -> None:
    # Given one encounter carrying V-7 under two systems
    twice = create_encounter(patient_id, identifier=[visit("V-7"), visit("V-7", "urn:billing")])["id"]

    # When it is searched by the value alone, and by both values of an OR list
    by_value = search("Encounter", identifier="V-7")
    both = search("Encounter", identifier=f"{VISIT}|V-7,urn:billing|V-7")

    # Then it is one match, not two
    assert ids_of(by_value.body) == [twice] and by_value.body["total"] == 1
    assert ids_of(both.body) == [twice]


def test_changing_an_encounters_visit_number_moves_it_in_search(patient_id: str) -> None:
    encounter = create_encounter(patient_id, identifier=[visit("V-OLD")])
    answer = invoke(
        "encounter_update",
        path_params={"id": encounter["id"]},
        body={**encounter, "identifier": [visit("V-NEW")]},
    )
    assert answer.status == 200, answer.body
    assert ids_of(search("Encounter", identifier="V-OLD").body) == []
    assert ids_of(search("Encounter", identifier="V-NEW").body) == [encounter["id"]]


def test_encounter_conditional_create_answers_the_match_with_its_location(patient_id: str) -> None:
    # Given an encounter with a visit number, and the server's base URL
    first = invoke("encounter_create", body=encounter_for(patient_id, identifier=[visit("V-10")]))
    existing, base = first.body, first.headers["Location"].split("/Encounter/")[0]

    # When the same visit is posted with If-None-Exist as HAPI's client writes it (the full URL)
    answer = invoke(
        "encounter_create",
        body=encounter_for(patient_id, identifier=[visit("V-10")]),
        headers={"If-None-Exist": f"{base}/Encounter?identifier={VISIT}|V-10"},
    )

    # Then the match is answered, with its Location and Content-Location, and nothing is stored
    assert answer.status == 200, answer.body
    assert answer.body["id"] == existing["id"]
    location = f"{base}/Encounter/{existing['id']}/_history/1"
    assert answer.headers["Location"] == answer.headers["Content-Location"] == location
    assert ids_of(search("Encounter", identifier="V-10").body) == [existing["id"]]


def test_encounter_conditional_update_creates_then_updates_by_visit_number(patient_id: str) -> None:
    body = encounter_for(patient_id, identifier=[visit("V-20")], status="in-progress")

    # When the visit is PUT by its number twice, the second time finished
    created = conditional_update("Encounter", f"identifier={VISIT}|V-20", body)
    updated = conditional_update("Encounter", f"identifier={VISIT}|V-20", {**body, "status": "finished"})

    # Then the first creates (201), the second updates the same encounter (200, version 2)
    assert created.status == 201, created.body
    assert created.headers["Location"].endswith(f"/Encounter/{created.body['id']}/_history/1")
    assert updated.status == 200, updated.body
    assert (updated.body["id"], updated.body["meta"]["versionId"]) == (created.body["id"], "2")
    assert updated.body["status"] == "finished"


def test_conditional_update_refusals(patient_id: str) -> None:
    first = create_encounter(patient_id, identifier=[visit("V-30")])
    body = encounter_for(patient_id, identifier=[visit("V-30")])

    # A body id other than the match's is 400; a stale If-Match is 412
    assert conditional_update("Encounter", f"identifier={VISIT}|V-30", {**body, "id": "other"}).status == 400
    assert (
        conditional_update("Encounter", f"identifier={VISIT}|V-30", body, **{"If-Match": 'W/"9"'}).status
        == 412
    )
    # A body id when nothing matches is 400: the server assigns ids
    assert conditional_update("Encounter", f"identifier={VISIT}|V-31", {**body, "id": "mine"}).status == 400
    # A condition that names no criterion, or an unknown parameter, is 400
    assert conditional_update("Encounter", "_count=1", body).status == 400
    assert conditional_update("Encounter", "mrn=1", body).status == 400
    # Two encounters with the same visit number (FHIR allows it): 412, nothing changed
    create_encounter(patient_id, identifier=[visit("V-30")])
    several = conditional_update("Encounter", f"identifier={VISIT}|V-30", {**body, "status": "cancelled"})
    assert several.status == 412, several.body
    assert read("Encounter", first["id"]).body["meta"]["versionId"] == "1"


def test_patient_conditional_update_by_mrn(ddb_tables: Any) -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": "MRN-1"}],
        "gender": "female",
    }
    created = conditional_update("Patient", f"identifier={MRN}|MRN-1", patient)
    updated = conditional_update("Patient", f"identifier={MRN}|MRN-1", {**patient, "gender": "other"})
    assert created.status == 201, created.body
    assert updated.status == 200, updated.body
    assert (updated.body["id"], updated.body["gender"]) == (created.body["id"], "other")


def test_a_deleted_encounter_is_gone_but_its_history_stays(patient_id: str) -> None:
    # Given an encounter with a visit number, updated once
    encounter = create_encounter(patient_id, identifier=[visit("V-40")], status="in-progress")
    invoke("encounter_update", path_params={"id": encounter["id"]}, body={**encounter, "status": "finished"})

    # When an admin deletes it
    deleted = delete("Encounter", encounter["id"])

    # Then the answer is 200 with an OperationOutcome and the deletion's version
    assert deleted.status == 200, deleted.body
    assert deleted.body["resourceType"] == "OperationOutcome"
    assert deleted.headers["ETag"] == 'W/"3"'
    # And read is 410, no search finds it
    gone = read("Encounter", encounter["id"])
    assert gone.status == 410 and gone.body["issue"][0]["code"] == "deleted"
    assert ids_of(search("Encounter", subject=patient_id).body) == []
    assert ids_of(search("Encounter", identifier="V-40").body) == []
    assert ids_of(search("Encounter", status="finished").body) == []
    # And the earlier versions stay readable; the deletion's version is 410
    vread = {v: invoke("encounter_vread", path_params={"id": encounter["id"], "vid": v}) for v in "123"}
    assert [vread["1"].status, vread["2"].status, vread["3"].status] == [200, 200, 410]
    # And history shows the deletion as FHIR does: a DELETE entry without a resource, newest first
    history = invoke("encounter_history", path_params={"id": encounter["id"]}).body
    first = history["entry"][0]
    assert "resource" not in first
    assert first["request"] == {"method": "DELETE", "url": f"Encounter/{encounter['id']}"}
    assert first["response"]["etag"] == 'W/"3"'
    assert [entry["resource"]["meta"]["versionId"] for entry in history["entry"][1:]] == ["2", "1"]


def test_delete_again_unknown_and_if_match(patient_id: str) -> None:
    encounter = create_encounter(patient_id)
    # A stale If-Match is 412 and deletes nothing
    assert delete("Encounter", encounter["id"], **{"If-Match": 'W/"2"'}).status == 412
    assert read("Encounter", encounter["id"]).status == 200
    # The current one deletes
    assert delete("Encounter", encounter["id"], **{"If-Match": 'W/"1"'}).status == 200
    # Deleting it again, or an id never used, changes nothing and is 200 (as HAPI answers)
    again = delete("Encounter", encounter["id"])
    unknown = delete("Encounter", "never-used")
    assert (again.status, unknown.status) == (200, 200)
    assert "already deleted" in again.body["issue"][0]["diagnostics"]
    assert "does not exist" in unknown.body["issue"][0]["diagnostics"]
    assert "ETag" not in again.headers
    # With If-Match there is no current version to match: 412
    assert delete("Encounter", "never-used", **{"If-Match": 'W/"1"'}).status == 412


def test_a_put_brings_a_deleted_encounter_back_as_its_next_version(patient_id: str) -> None:
    encounter = create_encounter(patient_id, identifier=[visit("V-50")])
    delete("Encounter", encounter["id"])
    answer = invoke("encounter_update", path_params={"id": encounter["id"]}, body=encounter)
    assert answer.status == 200, answer.body
    assert answer.body["meta"]["versionId"] == "3"
    assert read("Encounter", encounter["id"]).status == 200
    assert ids_of(search("Encounter", identifier="V-50").body) == [encounter["id"]]


def test_only_an_admin_deletes(patient_id: str) -> None:
    encounter = create_encounter(patient_id)
    for role in ("practitioner", "auditor"):
        answer = delete("Encounter", encounter["id"], roles=role)
        assert answer.status == 403, (role, answer.body)
    assert read("Encounter", encounter["id"]).status == 200


def test_a_referenced_patient_is_kept_and_a_deleted_one_frees_its_mrn(ddb_tables: Any) -> None:
    # Given a patient with an MRN and two encounters
    patient_id = create_patient("Referenced", identifier=[{"system": MRN, "value": "MRN-60"}])
    encounters = [create_encounter(patient_id)["id"] for _ in range(2)]

    # When the admin deletes the patient: 409 naming the encounters and how many
    refused = delete("Patient", patient_id)
    assert refused.status == 409, refused.body
    diagnostics = refused.body["issue"][0]["diagnostics"]
    assert "2 Encounter" in diagnostics and all(f"Encounter/{e}" in diagnostics for e in encounters)
    assert read("Patient", patient_id).status == 200

    # When the encounters are deleted first, the patient can be
    for encounter_id in encounters:
        assert delete("Encounter", encounter_id).status == 200
    assert delete("Patient", patient_id).status == 200

    # Then an encounter may not name the deleted patient (422, as a missing one), and its MRN is free
    refused_encounter = invoke("encounter_create", body=encounter_for(patient_id))
    assert refused_encounter.status == 422, refused_encounter.body
    assert ids_of(search("Patient", identifier=f"{MRN}|MRN-60").body) == []
    assert create_patient("Reused", identifier=[{"system": MRN, "value": "MRN-60"}])
