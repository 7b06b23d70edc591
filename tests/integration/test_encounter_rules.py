"""Encounter create, read, update and versions through the handlers, on moto and DynamoDB Local."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from handler_calls import (
    GATEWAY_DOMAIN,
    SEED_ENCOUNTER,
    call,
    create_encounter,
    create_patient,
    encounter_for,
    search,
)

pytestmark = pytest.mark.usefixtures("backend")

ENCOUNTER = "/api/fhir/Encounter"


def read(encounter_id: str) -> Any:
    return call("encounter_read", "GET", f"{ENCOUNTER}/{encounter_id}", path_params={"id": encounter_id})


def update(encounter: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return call(
        "encounter_update",
        "PUT",
        f"{ENCOUNTER}/{encounter['id']}",
        encounter,
        path_params={"id": encounter["id"]},
        headers=headers,
    )


def stored_count(patient_id: str) -> int:
    return int(search("Encounter", subject=patient_id, _summary="count").body["total"])


def test_the_seed_example_is_created_as_sent_with_server_id_and_meta() -> None:
    # Given a patient and the seed's example request pointing at it
    patient_id = create_patient()
    sent = encounter_for(patient_id)

    # When it is posted
    answer = call("encounter_create", "POST", ENCOUNTER, sent)

    # Then it is created: 201, Location of version 1, ETag, Last-Modified, and the body as sent
    assert answer.status == 201
    body = answer.body
    assert (
        answer.headers["Location"]
        == f"https://{GATEWAY_DOMAIN}/Prod/api/fhir/Encounter/{body['id']}/_history/1"
    )
    assert answer.headers["ETag"] == 'W/"1"'
    assert answer.headers["Last-Modified"].endswith("GMT")
    assert body["meta"]["versionId"] == "1"
    assert {key: value for key, value in body.items() if key not in ("id", "meta")} == sent
    assert read(body["id"]).body == body


def test_a_clients_id_and_meta_are_ignored() -> None:
    patient_id = create_patient()
    sent = encounter_for(patient_id, id="chosen-by-client", meta={"versionId": "99", "tag": [{"code": "x"}]})

    answer = call("encounter_create", "POST", ENCOUNTER, sent)

    assert answer.status == 201
    assert answer.body["id"] != "chosen-by-client"
    assert answer.body["meta"]["versionId"] == "1"
    assert "tag" not in answer.body["meta"]


def test_decimals_keep_their_digits() -> None:
    patient_id = create_patient()
    raw = json.dumps(encounter_for(patient_id)).replace(
        '"status"', '"length": {"value": 1.50, "unit": "h"}, "status"'
    )

    answer = call("encounter_create", "POST", ENCOUNTER, raw_body=raw)

    assert answer.status == 201, answer.text
    assert '"length":{"value":1.50,"unit":"h"}' in read(answer.body["id"]).text
    assert json.loads(answer.text, parse_float=Decimal)["length"]["value"] == Decimal("1.50")


def test_prefer_return_minimal_answers_without_a_body() -> None:
    patient_id = create_patient()

    answer = call(
        "encounter_create", "POST", ENCOUNTER, encounter_for(patient_id), headers={"Prefer": "return=minimal"}
    )

    assert answer.status == 201
    assert answer.text == ""
    assert answer.headers["ETag"] == 'W/"1"'
    assert answer.headers["Location"].endswith("/_history/1")


@pytest.mark.parametrize(
    ("change", "status", "expression"),
    [
        ({"status": None}, 400, "Encounter.status"),
        ({"class": None}, 400, "Encounter.class"),
        ({"subject": None}, 400, "Encounter.subject"),
        ({"status": "bogus"}, 400, "Encounter.status"),
        ({"unknownElement": 1}, 400, "Encounter.unknownElement"),
        ({"period": {"start": "2024-02-30T09:00:00Z"}}, 400, "Encounter.period.start"),
        (
            {"period": {"start": "2024-03-15T10:00:00Z", "end": "2024-03-15T09:00:00Z"}},
            422,
            "Encounter.period",
        ),
        (
            {"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "XYZ"}},
            422,
            "Encounter.class",
        ),
        ({"subject": {"reference": "Group/123"}}, 422, "Encounter.subject"),
    ],
)
def test_refused_encounters_name_the_element_and_store_nothing(
    change: dict[str, Any], status: int, expression: str
) -> None:
    # Given a patient and an encounter that breaks one rule
    patient_id = create_patient()
    sent = encounter_for(patient_id, **change)
    sent = {key: value for key, value in sent.items() if value is not None}
    for key, value in change.items():
        if value is None:
            sent.pop(key, None)

    # When it is posted
    answer = call("encounter_create", "POST", ENCOUNTER, sent)

    # Then it is refused with an OperationOutcome naming the element, and nothing is stored
    assert answer.status == status, answer.text
    assert answer.body["resourceType"] == "OperationOutcome"
    expressions = [item for issue in answer.body["issue"] for item in issue.get("expression", [])]
    assert any(item.startswith(expression) for item in expressions), expressions
    assert stored_count(patient_id) == 0


def test_every_actencountercode_class_is_accepted() -> None:
    patient_id = create_patient()
    for code in ("AMB", "EMER", "FLD", "HH", "IMP", "ACUTE", "NONAC", "OBSENC", "PRENC", "SS", "VR"):
        klass = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code}
        assert (
            call("encounter_create", "POST", ENCOUNTER, encounter_for(patient_id, **{"class": klass})).status
            == 201
        )


def test_a_subject_that_does_not_exist_is_refused_and_nothing_is_stored() -> None:
    answer = call("encounter_create", "POST", ENCOUNTER, encounter_for("no-such-patient"))

    assert answer.status == 422
    assert "Patient/no-such-patient" in answer.body["issue"][0]["diagnostics"]
    assert search("Encounter", subject="no-such-patient").body.get("entry") is None


def test_read_of_an_unknown_id_is_404_and_an_invalid_id_400() -> None:
    assert read("does-not-exist").status == 404
    assert read("not_a_valid$id").status == 400


def test_update_keeps_every_version_readable() -> None:
    # Given an encounter in progress
    patient_id = create_patient()
    created = create_encounter(patient_id, status="in-progress", period={"start": "2024-03-15T09:00:00Z"})

    # When it is finished
    finished = {
        **created,
        "status": "finished",
        "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T10:00:00Z"},
    }
    answer = update(finished, {"If-Match": 'W/"1"'})

    # Then version 2 is current and version 1 is still there
    assert answer.status == 200, answer.text
    assert answer.headers["ETag"] == 'W/"2"'
    assert read(created["id"]).body["status"] == "finished"
    first = call(
        "encounter_vread",
        "GET",
        f"{ENCOUNTER}/{created['id']}/_history/1",
        path_params={"id": created["id"], "vid": "1"},
    )
    assert first.status == 200
    assert first.body["status"] == "in-progress"
    history = call(
        "encounter_history", "GET", f"{ENCOUNTER}/{created['id']}/_history", path_params={"id": created["id"]}
    )
    assert history.body["type"] == "history"
    assert [entry["resource"]["meta"]["versionId"] for entry in history.body["entry"]] == ["2", "1"]
    assert [entry["request"]["method"] for entry in history.body["entry"]] == ["PUT", "POST"]


def test_a_stale_if_match_is_412_and_changes_nothing() -> None:
    patient_id = create_patient()
    created = create_encounter(patient_id, status="planned", period=None)
    assert update({**created, "status": "arrived"}, {"If-Match": 'W/"1"'}).status == 200

    answer = update({**created, "status": "triaged"}, {"If-Match": 'W/"1"'})

    assert answer.status == 412
    assert read(created["id"]).body["status"] == "arrived"


def test_update_id_must_match_the_url_and_unknown_ids_are_404() -> None:
    patient_id = create_patient()
    created = create_encounter(patient_id)
    other = {**created, "id": "another-id"}

    mismatch = call(
        "encounter_update", "PUT", f"{ENCOUNTER}/{created['id']}", other, path_params={"id": created["id"]}
    )
    unknown = update({**created, "id": "unknown-id"})

    assert mismatch.status == 400
    assert unknown.status == 404


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        ("planned", "arrived", True),
        ("planned", "finished", True),
        ("in-progress", "onleave", True),
        ("onleave", "in-progress", True),
        ("triaged", "cancelled", True),
        ("finished", "entered-in-error", True),
        ("finished", "in-progress", False),
        ("cancelled", "planned", False),
        ("in-progress", "cancelled", False),
        ("arrived", "planned", False),
    ],
)
def test_the_status_lifecycle_is_enforced_on_update(before: str, after: str, allowed: bool) -> None:
    # Given an encounter in status `before`
    patient_id = create_patient()
    created = create_encounter(patient_id, status=before, period={"start": "2024-03-15T09:00:00Z"})

    # When a client moves it to `after`
    answer = update({**created, "status": after})

    # Then the move is accepted or refused with 422 naming the allowed moves
    if allowed:
        assert answer.status == 200, answer.text
    else:
        assert answer.status == 422, answer.text
        assert "allowed" in answer.body["issue"][0]["diagnostics"]
        assert read(created["id"]).body["status"] == before


def test_a_subject_change_must_point_at_an_existing_patient() -> None:
    patient_id = create_patient()
    created = create_encounter(patient_id)

    answer = update({**created, "subject": {"reference": "Patient/missing-patient"}})

    assert answer.status == 422
    assert read(created["id"]).body["subject"]["reference"] == f"Patient/{patient_id}"


def test_the_seed_body_is_accepted_verbatim() -> None:
    patient_id = create_patient()
    sent = {**SEED_ENCOUNTER, "subject": {"reference": f"Patient/{patient_id}"}}

    answer = call("encounter_create", "POST", ENCOUNTER, sent, headers={"Content-Type": "application/json"})

    assert answer.status == 201
    for key, value in sent.items():
        assert answer.body[key] == value


def test_a_repeated_json_key_is_400_and_stores_nothing() -> None:
    # Given a body where "status" appears twice: which one is meant cannot be known
    patient_id = create_patient()
    raw = json.dumps(encounter_for(patient_id, status="planned"))[:-1] + ', "status": "finished"}'

    answer = call("encounter_create", "POST", ENCOUNTER, raw_body=raw)

    assert answer.status == 400
    assert "twice" in answer.body["issue"][0]["diagnostics"]
    assert stored_count(patient_id) == 0


def test_a_charset_other_than_utf8_is_415() -> None:
    patient_id = create_patient()
    latin = {"Content-Type": "application/fhir+json; charset=iso-8859-1"}
    utf8 = {"Content-Type": "application/fhir+json; charset=UTF-8"}

    refused = call("encounter_create", "POST", ENCOUNTER, encounter_for(patient_id), headers=latin)
    accepted = call("encounter_create", "POST", ENCOUNTER, encounter_for(patient_id), headers=utf8)

    assert refused.status == 415
    assert accepted.status == 201


def test_history_pages_by_the_search_count_rule() -> None:
    # Given an encounter with three versions
    patient_id = create_patient()
    created = create_encounter(patient_id, status="planned", period=None)
    for status in ("arrived", "in-progress"):
        current = read(created["id"]).body
        assert update({**current, "status": status}).status == 200

    # When its history is read one version a page, and with a huge _count
    path = f"{ENCOUNTER}/{created['id']}/_history"
    params = {"id": created["id"]}
    first = call("encounter_history", "GET", path, path_params=params, query={"_count": ["1"]})
    huge = call("encounter_history", "GET", path, path_params=params, query={"_count": ["999999999999"]})

    # Then the first page holds the newest version and links to the next; a huge count is capped
    assert [entry["resource"]["meta"]["versionId"] for entry in first.body["entry"]] == ["3"]
    next_url = next(link["url"] for link in first.body["link"] if link["relation"] == "next")
    next_query = parse_qs(urlsplit(next_url).query)
    second = call("encounter_history", "GET", path, path_params=params, query=next_query)
    assert [entry["resource"]["meta"]["versionId"] for entry in second.body["entry"]] == ["2"]
    assert huge.status == 200
    assert [entry["resource"]["meta"]["versionId"] for entry in huge.body["entry"]] == ["3", "2", "1"]


def test_numbers_come_back_as_they_were_written() -> None:
    patient_id = create_patient()
    raw = json.dumps(encounter_for(patient_id)).replace('"status"', '"length": {"value": 2.5E0}, "status"')

    answer = call("encounter_create", "POST", ENCOUNTER, raw_body=raw)

    assert answer.status == 201, answer.text
    assert '"length":{"value":2.5E0}' in read(answer.body["id"]).text
