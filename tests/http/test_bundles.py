"""Transaction and batch Bundles at the base URL, through the local gateway and with fhirpy: a patient
and its encounters by urn:uuid, an ADT feed's upsert by MRN, all or nothing, entries named in errors,
per-entry roles, limits, and the change events and AuditEvents every entry still leaves."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fhirpy import SyncFHIRClient

from local.stack import LocalStack
from tests.http.conftest import ApiSession

FHIR_JSON = "application/fhir+json"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
MRN_SYSTEM = "http://clinic.example.org/mrn"
VISIBLE_WITHIN_SECONDS = 60


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _mrn() -> str:
    return f"MRN-{uuid.uuid4().hex[:12]}"


def _patient(mrn: str, family: str = "Chalmers") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
        "name": [{"family": family, "given": ["Peter"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
    }


def _encounter(subject: str, status: str = "finished", start: str = "2024-03-15T09:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": subject},
        "period": {"start": start},
    }


def _post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _headers(auth: Callable[..., dict[str, str]], role: str, **kwargs: Any) -> dict[str, str]:
    return {**auth(role, **kwargs), "Content-Type": FHIR_JSON}


def _send(api: ApiSession, bundle: dict[str, Any], headers: dict[str, str]) -> Any:
    return api.post(api.base_url, json=bundle, headers=headers)


def _patients_with(api: ApiSession, headers: dict[str, str], mrn: str) -> list[dict[str, Any]]:
    answer = api.get(f"Patient?identifier={MRN_SYSTEM}|{mrn}", headers=headers)
    assert answer.status_code == 200, answer.text
    return [entry["resource"] for entry in answer.json().get("entry", [])]


def _status(entry: dict[str, Any]) -> int:
    return int(entry["response"]["status"].split()[0])


def test_fhirpy_sends_a_patient_and_two_encounters_linked_by_urn_uuid(
    fhirpy_client: Callable[[str], SyncFHIRClient],
) -> None:
    # Given a transaction of a new patient and two encounters whose subject is the patient's urn:uuid
    client = fhirpy_client("practitioner")
    patient_urn, mrn = _urn(), _mrn()
    bundle = _bundle(
        "transaction",
        _post(_encounter(patient_urn), _urn()),
        _post(_patient(mrn), patient_urn),
        _post(_encounter(patient_urn, "in-progress", "2024-04-01T08:00:00Z"), _urn()),
    )

    # When fhirpy posts it to the base URL
    answer = client.execute("", method="post", data=bundle)

    # Then every entry was created, in the order sent, with its location, etag and lastModified
    assert answer["resourceType"] == "Bundle" and answer["type"] == "transaction-response"
    entries = answer["entry"]
    assert [entry["response"]["status"] for entry in entries] == ["201 Created"] * 3
    patient_id = entries[1]["resource"]["id"]
    for entry in entries:
        resource = entry["resource"]
        assert entry["response"]["location"] == f"{resource['resourceType']}/{resource['id']}/_history/1"
        assert entry["response"]["etag"] == 'W/"1"'
        assert entry["response"]["lastModified"] == resource["meta"]["lastUpdated"]
    # And both encounters point at the patient created with them
    for position in (0, 2):
        assert entries[position]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    found = client.resources("Encounter").search(subject=f"Patient/{patient_id}").fetch_all()
    assert sorted(encounter.id for encounter in found) == sorted(entries[p]["resource"]["id"] for p in (0, 2))


def test_a_bad_third_entry_refuses_the_bundle_naming_it_and_stores_nothing(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    # Given a transaction whose third entry has a status outside FHIR's value set
    headers = _headers(auth, "practitioner")
    patient_urn, mrn = _urn(), _mrn()
    bundle = _bundle(
        "transaction",
        _post(_patient(mrn), patient_urn),
        _post(_encounter(patient_urn), _urn()),
        _post(_encounter(patient_urn, status="done"), _urn()),
    )

    # When it is sent
    answer = _send(api, bundle, headers)

    # Then it is refused as that entry would be on its own, the expression re-rooted at the entry
    assert answer.status_code == 400, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[2].resource.status"]
    assert outcome["issue"][0]["diagnostics"].startswith("Bundle.entry[2]")
    # And nothing of it was stored, not even the valid patient
    assert _patients_with(api, headers, mrn) == []


def test_a_rule_broken_by_one_entry_is_422_naming_it(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    # Given a transaction whose second encounter ends before it starts
    headers = _headers(auth, "practitioner")
    patient_urn, mrn = _urn(), _mrn()
    backwards = _encounter(patient_urn)
    backwards["period"] = {"start": "2024-03-15T10:00:00Z", "end": "2024-03-15T09:00:00Z"}
    bundle = _bundle("transaction", _post(_patient(mrn), patient_urn), _post(backwards))

    # When it is sent, then it is 422 naming the entry's period, and the patient is not stored
    answer = _send(api, bundle, headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["issue"][0]["expression"][0].startswith("Bundle.entry[1].resource.period")
    assert _patients_with(api, headers, mrn) == []


def test_if_none_exist_twice_stores_the_patient_once(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    # Given the same transaction, sent twice: a patient created only if its MRN is new, and a visit
    headers = _headers(auth, "practitioner")
    mrn = _mrn()

    def send() -> list[dict[str, Any]]:
        patient_urn = _urn()
        bundle = _bundle(
            "transaction",
            _post(_patient(mrn), patient_urn, ifNoneExist=f"identifier={MRN_SYSTEM}|{mrn}"),
            _post(_encounter(patient_urn), _urn()),
        )
        answer = _send(api, bundle, headers)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["entry"])

    first, second = send(), send()

    # Then the first created the patient, the second found it (200) and stored no second patient
    assert _status(first[0]) == 201 and _status(second[0]) == 200
    patient_id = first[0]["resource"]["id"]
    assert second[0]["resource"]["id"] == patient_id
    assert [patient["id"] for patient in _patients_with(api, headers, mrn)] == [patient_id]
    # And each visit was linked to that one patient
    assert second[1]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"


def test_an_adt_feed_upserts_the_patient_by_mrn_and_links_the_visit(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    # Given an ADT message as a transaction: the patient by conditional update on the MRN, the visit
    # referencing the patient's urn:uuid
    headers = _headers(auth, "practitioner")
    mrn = _mrn()

    def send(family: str) -> list[dict[str, Any]]:
        patient_urn = _urn()
        upsert = {
            "fullUrl": patient_urn,
            "resource": _patient(mrn, family),
            "request": {"method": "PUT", "url": f"Patient?identifier={MRN_SYSTEM}|{mrn}"},
        }
        answer = _send(api, _bundle("transaction", _post(_encounter(patient_urn), _urn()), upsert), headers)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["entry"])

    # When the first message arrives, and then a second one with a corrected family name
    first = send("Chalmers")
    second = send("Chalmers-Smith")

    # Then the first created the patient (201), the second updated it (200, version 2)
    assert _status(first[1]) == 201 and _status(second[1]) == 200
    patient_id = first[1]["resource"]["id"]
    assert second[1]["resource"]["id"] == patient_id
    assert second[1]["response"]["etag"] == 'W/"2"'
    (stored,) = _patients_with(api, headers, mrn)
    assert stored["name"][0]["family"] == "Chalmers-Smith"
    # And both visits belong to that patient
    for entries in (first, second):
        assert entries[0]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"


def test_an_auditors_transaction_with_a_write_is_refused_whole(
    api: ApiSession, auth: Callable[..., dict[str, str]], records: dict[str, str]
) -> None:
    # Given an auditor's transaction: a read, then a create
    mrn = _mrn()
    bundle = _bundle(
        "transaction",
        {"request": {"method": "GET", "url": f"Patient/{records['Patient']}"}},
        _post(_patient(mrn)),
    )

    # When it is sent, then it is 403 naming the write entry, and nothing is stored
    answer = _send(api, bundle, _headers(auth, "auditor"))
    assert answer.status_code == 403, answer.text
    assert answer.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]
    assert _patients_with(api, _headers(auth, "practitioner"), mrn) == []


def test_a_batch_answers_each_entry_on_its_own(
    api: ApiSession, auth: Callable[..., dict[str, str]], records: dict[str, str]
) -> None:
    # Given a batch of a good create, a create that breaks FHIR, a read of nothing and a good read
    headers = _headers(auth, "practitioner")
    mrn = _mrn()
    bundle = _bundle(
        "batch",
        _post(_patient(mrn)),
        _post(_encounter(f"Patient/{records['Patient']}", status="done")),
        {"request": {"method": "GET", "url": "Encounter/no-such-encounter"}},
        {"request": {"method": "GET", "url": f"Patient/{records['Patient']}"}},
    )

    # When it is sent
    answer = _send(api, bundle, headers)

    # Then the batch is 200 and each entry has its own status; failures carry their OperationOutcome
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["type"] == "batch-response"
    entries = result["entry"]
    assert [_status(entry) for entry in entries] == [201, 400, 404, 200]
    assert entries[1]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.status"]
    assert entries[2]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[3]["resource"]["id"] == records["Patient"]
    # And the good create was stored although another entry failed
    assert [patient["id"] for patient in _patients_with(api, headers, mrn)] == [entries[0]["resource"]["id"]]


def test_an_auditors_batch_reads_and_is_refused_each_write(
    api: ApiSession, auth: Callable[..., dict[str, str]], records: dict[str, str]
) -> None:
    bundle = _bundle(
        "batch",
        {"request": {"method": "GET", "url": f"Encounter?subject=Patient/{records['Patient']}"}},
        _post(_patient(_mrn())),
    )
    answer = _send(api, bundle, _headers(auth, "auditor"))
    assert answer.status_code == 200, answer.text
    search, write = answer.json()["entry"]
    assert _status(search) == 200 and search["resource"]["type"] == "searchset"
    assert _status(write) == 403 and write["response"]["outcome"]["issue"][0]["code"] == "forbidden"


def test_a_delete_entry_is_the_admins_and_lands_with_the_rest(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    # Given a patient with no encounters
    admin = _headers(auth, "admin")
    created = api.post("Patient", json=_patient(_mrn()), headers=admin)
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    delete = {"request": {"method": "DELETE", "url": f"Patient/{patient_id}"}}

    # When a practitioner sends its deletion in a transaction, then it is 403 and it stays readable
    refused = _send(api, _bundle("transaction", delete), _headers(auth, "practitioner"))
    assert refused.status_code == 403, refused.text
    assert api.get(f"Patient/{patient_id}", headers=admin).status_code == 200

    # When an admin sends it with a new patient, then both land: the deleted patient reads 410
    answer = _send(api, _bundle("transaction", delete, _post(_patient(_mrn()))), admin)
    assert answer.status_code == 200, answer.text
    removed, added = answer.json()["entry"]
    assert _status(removed) == 200 and removed["response"]["etag"] == 'W/"2"'
    assert _status(added) == 201
    assert api.get(f"Patient/{patient_id}", headers=admin).status_code == 410


def test_bundles_beyond_the_limits_are_refused_with_413(
    api: ApiSession, auth: Callable[..., dict[str, str]], records: dict[str, str]
) -> None:
    headers = _headers(auth, "practitioner")
    # Given a batch of more entries than MAX_BUNDLE_ENTRIES (100 by default)
    read = {"request": {"method": "GET", "url": f"Patient/{records['Patient']}"}}
    answer = _send(api, _bundle("batch", *[read] * 101), headers)
    assert answer.status_code == 413, answer.text
    assert "101 entries" in answer.json()["issue"][0]["diagnostics"]
    # And a Bundle over MAX_BUNDLE_BYTES (2 MB by default)
    big = _patient(_mrn())
    big["text"] = {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{"x" * 2_200_000}</div>',
    }
    answer = _send(api, _bundle("transaction", _post(big)), headers)
    assert answer.status_code == 413, answer.text
    # And a transaction that one DynamoDB transaction cannot hold (over 100 actions): nothing stored
    mrn = _mrn()
    patients = [_post(_patient(f"{mrn}-{n}")) for n in range(40)]
    answer = _send(api, _bundle("transaction", *patients), headers)
    assert answer.status_code == 413, answer.text
    assert "database actions" in answer.json()["issue"][0]["diagnostics"]
    assert _patients_with(api, headers, f"{mrn}-0") == []


def test_a_bundle_of_another_type_is_400_naming_bundle_type(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    answer = _send(api, _bundle("collection"), _headers(auth, "practitioner"))
    assert answer.status_code == 400, answer.text
    assert answer.json()["issue"][0]["expression"] == ["Bundle.type"]


def test_subscription_and_audit_event_entries_are_refused_clearly(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    bundle = _bundle("batch", {"request": {"method": "GET", "url": "AuditEvent"}})
    answer = _send(api, bundle, _headers(auth, "admin"))
    assert answer.status_code == 200, answer.text
    (entry,) = answer.json()["entry"]
    assert _status(entry) == 400
    assert "AuditEvent has its own endpoint" in entry["response"]["outcome"]["issue"][0]["diagnostics"]


def test_each_entry_leaves_its_change_event_and_its_audit_event(
    api: ApiSession, auth: Callable[..., dict[str, str]], local_stack: LocalStack
) -> None:
    # Given a practitioner's transaction of a patient and an encounter
    sub = f"dr-bundle-{uuid.uuid4().hex[:8]}"
    patient_urn = _urn()
    bundle = _bundle("transaction", _post(_patient(_mrn()), patient_urn), _post(_encounter(patient_urn)))
    answer = _send(api, bundle, _headers(auth, "practitioner", sub=sub))
    assert answer.status_code == 200, answer.text
    patient_id, encounter_id = (entry["resource"]["id"] for entry in answer.json()["entry"])
    auditor = _headers(auth, "auditor")

    # Then within a minute the change stream has published each write, and the audit trail holds an
    # AuditEvent per entry (create) and the Bundle's own (transaction)
    deadline = time.monotonic() + VISIBLE_WITHIN_SECONDS
    while True:
        assert local_stack.notifications is not None
        published = {
            (event["detail-type"], event["detail"]["id"])
            for event in local_stack.notifications.events.events()
        }
        found = api.get(f"AuditEvent?agent={sub}", headers=auditor)
        assert found.status_code == 200, found.text
        events = [
            entry["resource"] for entry in found.json().get("entry", []) if entry["search"]["mode"] == "match"
        ]
        subtypes = sorted(event["subtype"][0]["code"] for event in events)
        written = {("Patient.created", patient_id), ("Encounter.created", encounter_id)} <= published
        if (written and subtypes == ["create", "create", "transaction"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert written
    assert subtypes == ["create", "create", "transaction"]
    references = {
        entity["what"]["reference"]
        for event in events
        for entity in event.get("entity", [])
        if "what" in entity
    }
    assert {f"Patient/{patient_id}/_history/1", f"Encounter/{encounter_id}/_history/1"} <= references


@pytest.mark.parametrize("prefer", ["return=minimal", "return=OperationOutcome"])
def test_prefer_chooses_what_each_entry_carries(
    api: ApiSession, auth: Callable[..., dict[str, str]], prefer: str
) -> None:
    headers = {**_headers(auth, "practitioner"), "Prefer": prefer}
    answer = _send(api, _bundle("transaction", _post(_patient(_mrn()))), headers)
    assert answer.status_code == 200, answer.text
    (entry,) = answer.json()["entry"]
    assert "resource" not in entry and entry["response"]["location"].startswith("Patient/")
    assert ("outcome" in entry["response"]) is (prefer == "return=OperationOutcome")


def test_a_machine_clients_scopes_are_checked_entry_by_entry(
    api: ApiSession, records: dict[str, str]
) -> None:
    # Given an integration whose token may create patients and read encounters, and nothing else
    from local.issuer import mint_access_token

    headers = {
        "Authorization": f"Bearer {mint_access_token('system/Patient.c system/Encounter.r')}",
        "Content-Type": FHIR_JSON,
    }
    mrn = _mrn()
    create = _post(_patient(mrn))
    visit = _post(_encounter(f"Patient/{records['Patient']}"))

    # When it sends a batch of a patient, a visit and a read, then the visit alone is refused
    answer = _send(
        api,
        _bundle(
            "batch", create, visit, {"request": {"method": "GET", "url": f"Encounter/{records['Encounter']}"}}
        ),
        headers,
    )
    assert answer.status_code == 200, answer.text
    assert [_status(entry) for entry in answer.json()["entry"]] == [201, 403, 200]
    # And a transaction holding the visit is refused whole
    refused = _send(api, _bundle("transaction", _post(_patient(_mrn())), visit), headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["issue"][0]["expression"] == ["Bundle.entry[1]"]


def test_the_base_url_takes_only_post(api: ApiSession, auth: Callable[..., dict[str, str]]) -> None:
    answer = api.get(api.base_url, headers=auth("practitioner"))
    assert answer.status_code == 405, answer.text
    assert answer.headers["Allow"] == "POST"
