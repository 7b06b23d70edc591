"""Transactions on DynamoDB Local: one TransactWriteItems for every write, a condition that fails at
commit time named by its entry, identifiers claimed twice, reads that see the writes, an
Idempotency-Key, and the audit record of every entry."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from handler_calls import Answer, call, create_patient, invoke

from fhir_api.resources import service_for
from fhir_api.settings import get_settings
from fhir_api.store.dynamo import Store
from tests._examples import minimal_encounter
from tests._logs import captured_logs

MRN_SYSTEM = "http://clinic.example.org/mrn"


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def patient(mrn: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": "Bundle"}]}
    if mrn:
        found["identifier"] = [{"system": MRN_SYSTEM, "value": mrn}]
    return found


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    entry["request"].update(request)
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def send(kind: str, *entries: dict[str, Any], roles: str = "practitioner", **kwargs: Any) -> Answer:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": list(entries)}
    return call("bundle", "POST", "/api/fhir", bundle, roles=roles, **kwargs)


def stored_patients(mrn: str) -> list[str]:
    answer = call("patient_search", "GET", "/api/fhir/Patient", query={"identifier": [f"{MRN_SYSTEM}|{mrn}"]})
    assert answer.status == 200, answer.text
    return [entry["resource"]["id"] for entry in answer.body.get("entry", [])]


def test_all_writes_land_in_one_transaction(ddb_tables: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the store's transactions counted
    calls: list[int] = []
    original = Store.write_all

    def counted(self: Store, writes: list[Any]) -> None:
        calls.append(len(writes))
        original(self, writes)

    monkeypatch.setattr(Store, "write_all", counted)
    existing = create_patient()
    calls.clear()
    patient_urn = urn()

    # When a transaction creates a patient and two encounters and updates another patient
    update = {"resourceType": "Patient", "id": existing, "name": [{"family": "Renamed"}]}
    answer = send(
        "transaction",
        post(patient(f"MRN-{uuid.uuid4().hex[:8]}"), patient_urn),
        post(minimal_encounter("x", subject={"reference": patient_urn})),
        post(minimal_encounter(existing)),
        {"resource": update, "request": {"method": "PUT", "url": f"Patient/{existing}", "ifMatch": 'W/"1"'}},
    )

    # Then all four writes went to DynamoDB in one TransactWriteItems
    assert answer.status == 200, answer.text
    assert calls == [4]
    assert [entry["response"]["status"] for entry in answer.body["entry"]] == ["201 Created"] * 3 + ["200 OK"]


def test_a_version_changed_before_the_commit_is_named_by_its_entry_and_nothing_lands(
    ddb_tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a patient, and another writer that updates it just before the transaction commits
    existing = create_patient()
    original = Store.write_all

    def racing(self: Store, writes: list[Any]) -> None:
        monkeypatch.setattr(Store, "write_all", original)
        racer = {"resourceType": "Patient", "id": existing, "name": [{"family": "Racer"}]}
        assert invoke("patient_update", body=racer, path_params={"id": existing}).status == 200
        original(self, writes)

    monkeypatch.setattr(Store, "write_all", racing)
    mrn = f"MRN-{uuid.uuid4().hex[:8]}"

    # When a transaction creates a patient and updates the raced one with the version it saw
    update = {"resourceType": "Patient", "id": existing, "name": [{"family": "Mine"}]}
    answer = send(
        "transaction",
        post(patient(mrn)),
        {"resource": update, "request": {"method": "PUT", "url": f"Patient/{existing}", "ifMatch": 'W/"1"'}},
    )

    # Then it is 412 naming the update's entry, and the new patient was not stored either
    assert answer.status == 412, answer.text
    assert answer.body["issue"][0]["diagnostics"].startswith("Bundle.entry[1]")
    assert stored_patients(mrn) == []


def test_a_subject_that_vanished_before_the_commit_is_named_by_its_entry(
    ddb_tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a patient that an admin deletes just before the transaction commits
    existing = create_patient()
    original = Store.write_all

    def vanishing(self: Store, writes: list[Any]) -> None:
        monkeypatch.setattr(Store, "write_all", original)
        service_for("Patient", get_settings()).delete(existing, None)
        original(self, writes)

    monkeypatch.setattr(Store, "write_all", vanishing)
    mrn = f"MRN-{uuid.uuid4().hex[:8]}"

    # When a transaction adds a patient and a visit of the vanished one
    answer = send("transaction", post(patient(mrn)), post(minimal_encounter(existing)))

    # Then it is 422 naming the visit's subject, and nothing was stored
    assert answer.status == 422, answer.text
    assert answer.body["issue"][0]["expression"] == ["Bundle.entry[1].resource.subject"]
    assert stored_patients(mrn) == []


def test_one_identifier_claimed_by_two_new_patients_is_409_naming_the_second(ddb_tables: Any) -> None:
    mrn = f"MRN-{uuid.uuid4().hex[:8]}"
    answer = send("transaction", post(patient(mrn)), post(patient(mrn)))
    assert answer.status == 409, answer.text
    assert answer.body["issue"][0]["expression"] == ["Bundle.entry[1].resource.identifier"]
    assert stored_patients(mrn) == []


def test_one_resource_written_by_two_entries_is_400(ddb_tables: Any) -> None:
    existing = create_patient()
    update = {"resourceType": "Patient", "id": existing, "name": [{"family": "Twice"}]}
    entry = {"resource": update, "request": {"method": "PUT", "url": f"Patient/{existing}"}}
    answer = send("transaction", entry, entry)
    assert answer.status == 400, answer.text
    assert answer.body["issue"][0]["expression"] == ["Bundle.entry[1]"]


def test_a_visit_of_a_patient_deleted_in_the_same_transaction_is_refused(ddb_tables: Any) -> None:
    existing = create_patient()
    delete = {"request": {"method": "DELETE", "url": f"Patient/{existing}"}}
    answer = send("transaction", post(minimal_encounter(existing)), delete, roles="admin")
    assert answer.status == 422, answer.text
    assert answer.body["issue"][0]["diagnostics"].startswith("Bundle.entry[0]")
    assert (
        call("patient_read", "GET", f"/api/fhir/Patient/{existing}", path_params={"id": existing}).status
        == 200
    )


def test_reads_run_after_the_writes_and_see_them(ddb_tables: Any) -> None:
    # Given a transaction that lists its search before the create (FHIR processes GET last)
    mrn = f"MRN-{uuid.uuid4().hex[:8]}"
    search = {"request": {"method": "GET", "url": f"Patient?identifier={MRN_SYSTEM}|{mrn}"}}
    answer = send("transaction", search, post(patient(mrn), "urn:oid:1.2.36.146.595.217.0.1"))

    # Then the search finds the patient the same Bundle created, and the answer keeps the order sent
    assert answer.status == 200, answer.text
    found, created = answer.body["entry"]
    assert found["response"]["status"] == "200 OK"
    assert [entry["resource"]["id"] for entry in found["resource"]["entry"]] == [created["resource"]["id"]]


def test_an_idempotency_key_makes_a_retried_transaction_store_nothing_twice(ddb_tables: Any) -> None:
    mrn = f"MRN-{uuid.uuid4().hex[:8]}"
    key = {"Idempotency-Key": f"adt-{uuid.uuid4()}"}
    first = send("transaction", post(patient(mrn)), headers=key)
    again = send("transaction", post(patient(mrn)), headers=key)
    assert first.status == again.status == 200, (first.text, again.text)
    assert again.body == first.body
    assert len(stored_patients(mrn)) == 1
    other = send("transaction", post(patient(f"{mrn}-other")), headers=key)
    assert other.status == 422, other.text


def test_each_entry_is_audited_beside_the_bundle(
    ddb_tables: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = create_patient()
    with captured_logs(caplog, capsys) as logs:
        answer = send(
            "batch",
            post(minimal_encounter(existing)),
            {"request": {"method": "GET", "url": f"Patient/{existing}"}},
            post(minimal_encounter(existing, status="done")),
        )
    assert answer.status == 200, answer.text
    records = logs.audit_records()
    by_request = {record["request_id"].rsplit("/", 1)[-1]: record for record in records}
    bundle = next(record for record in records if "/entry/" not in record["request_id"])
    # One record per entry: its interaction, resource, status and patient
    created, read, refused = (by_request[str(index)] for index in range(3))
    assert (created["interaction"], created["status"], created["patients"]) == ("create", 201, [existing])
    assert (read["interaction"], read["resource_id"], read["status"]) == ("read", existing, 200)
    assert (refused["interaction"], refused["status"], refused["outcome"]) == ("create", 400, "failure")
    # And the Bundle's own, as a batch, naming every patient its entries touched
    assert (bundle["interaction"], bundle["action"], bundle["status"]) == ("batch", "batch", 200)
    assert bundle["patients"] == [existing]
    assert len(records) == 4


def test_a_refused_transaction_audits_its_refused_entry_and_the_bundle(
    ddb_tables: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = create_patient()
    with captured_logs(caplog, capsys) as logs:
        answer = send("transaction", post(patient()), post(minimal_encounter(existing, status="done")))
    assert answer.status == 400, answer.text
    records = {record["request_id"].rsplit("/", 1)[-1]: record for record in logs.audit_records()}
    # The entry that refused it, with its status; the entry that never ran leaves nothing
    refused = records.pop("1")
    assert (refused["interaction"], refused["status"], refused["resource_type"]) == (
        "create",
        400,
        "Encounter",
    )
    (bundle,) = records.values()
    assert (bundle["interaction"], bundle["status"], bundle["outcome"]) == ("transaction", 400, "failure")


def binary_patch(content_type: str, patch: Any) -> dict[str, Any]:
    """A PATCH entry's resource as FHIR carries it: a Binary holding the patch in base64."""
    import base64
    import json

    data = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"resourceType": "Binary", "contentType": content_type, "data": data}


def test_a_patch_entry_changes_its_resource_with_the_rest_of_the_transaction(ddb_tables: Any) -> None:
    # Given a patient with one encounter in progress
    patient_id = create_patient()
    encounter = call("encounter_create", "POST", "/api/fhir/Encounter", minimal_encounter(patient_id))
    assert encounter.status == 201, encounter.text
    encounter_id = encounter.body["id"]
    finish = [
        {"op": "test", "path": "/status", "value": encounter.body["status"]},
        {"op": "replace", "path": "/status", "value": "finished"},
    ]

    # When a transaction creates a second encounter and finishes the first by a JSON Patch (ifMatch W/"1")
    answer = send(
        "transaction",
        post(minimal_encounter(patient_id)),
        {
            "resource": binary_patch("application/json-patch+json", finish),
            "request": {"method": "PATCH", "url": f"Encounter/{encounter_id}", "ifMatch": 'W/"1"'},
        },
    )

    # Then both land: the patched encounter is version 2, finished, and its entry says 200
    assert answer.status == 200, answer.text
    statuses = [entry["response"]["status"] for entry in answer.body["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("200")
    assert answer.body["entry"][1]["response"]["etag"] == 'W/"2"'
    read = call(
        "encounter_read", "GET", f"/api/fhir/Encounter/{encounter_id}", path_params={"id": encounter_id}
    )
    assert read.body["status"] == "finished" and read.body["meta"]["versionId"] == "2"


def test_a_patch_entry_that_breaks_its_resource_refuses_the_transaction(ddb_tables: Any) -> None:
    # Given a patient
    patient_id = create_patient()

    # When a transaction creates an encounter and patches the patient with an invalid gender
    bad = {"gender": "martian"}
    answer = send(
        "transaction",
        post(minimal_encounter(patient_id)),
        {
            "resource": binary_patch("application/merge-patch+json", bad),
            "request": {"method": "PATCH", "url": f"Patient/{patient_id}"},
        },
    )

    # Then the transaction is refused naming the PATCH entry, and nothing is stored
    assert answer.status == 422, answer.text
    assert any(
        "Bundle.entry[1]" in expression
        for issue in answer.body["issue"]
        for expression in issue.get("expression", [])
    )
    search = call(
        "encounter_search", "GET", "/api/fhir/Encounter", query={"subject": [f"Patient/{patient_id}"]}
    )
    assert search.body.get("total", 0) == 0
    read = call("patient_read", "GET", f"/api/fhir/Patient/{patient_id}", path_params={"id": patient_id})
    assert read.body["meta"]["versionId"] == "1"


def test_fhirpath_patch_entries_are_refused_with_what_to_send(ddb_tables: Any) -> None:
    # Given a patient
    patient_id = create_patient()

    # When a transaction carries a FHIRPath Patch (a Parameters resource)
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "operation"}]}
    answer = send(
        "transaction",
        {"resource": parameters, "request": {"method": "PATCH", "url": f"Patient/{patient_id}"}},
    )

    # Then it is 415 saying to send a JSON Patch
    assert answer.status == 415, answer.text
    assert "json-patch+json" in answer.body["issue"][0]["diagnostics"]


def test_encounters_of_one_stored_patient_land_together(ddb_tables: Any) -> None:
    # Given a patient stored before (as an ADT feed's patient usually is)
    patient_id = create_patient()

    # When one transaction creates three of the patient's encounters (each checks that the patient exists)
    answer = send("transaction", *(post(minimal_encounter(patient_id)) for _ in range(3)))

    # Then all three land (one existence check of the patient serves them all)
    assert answer.status == 200, answer.text
    assert [entry["response"]["status"][:3] for entry in answer.body["entry"]] == ["201"] * 3
    search = call(
        "encounter_search", "GET", "/api/fhir/Encounter", query={"subject": [f"Patient/{patient_id}"]}
    )
    assert len(search.body["entry"]) == 3
