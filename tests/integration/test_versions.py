"""Versions on DynamoDB Local: the newest version is the current item, and the update that supersedes a
version writes its copy. Every version stays readable (vread, history newest first, each exactly once,
across pages and read budgets), also on tables written when a create wrote its own copy."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from handler_calls import Answer, invoke
from test_races import concurrently

from bench.calls import CallRecorder
from fhir_api.settings import get_settings, reset_settings
from fhir_api.store.dynamo import dynamodb_client
from tests._examples import minimal_encounter

LIFECYCLE = ("arrived", "triaged", "in-progress", "onleave", "in-progress", "finished")


def create_patient(family: str = "Versioned", **elements: Any) -> dict[str, Any]:
    answer = invoke(
        "patient_create", body={"resourceType": "Patient", "name": [{"family": family}], **elements}
    )
    assert answer.status == 201, answer.body
    return dict(answer.body)


def updated(resource_type: str, document: dict[str, Any], **headers: str) -> Answer:
    function = f"{resource_type.lower()}_update"
    return invoke(function, path_params={"id": document["id"]}, body=document, headers=headers)


def encounter_through_lifecycle(patient_id: str) -> tuple[str, list[str]]:
    """An encounter created planned and updated through LIFECYCLE: its id, and its status per version."""
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    assert created.status == 201, created.body
    document = created.body
    for status in LIFECYCLE:
        answer = updated("Encounter", {**document, "status": status})
        assert answer.status == 200, answer.body
        document = answer.body
    return document["id"], ["planned", *LIFECYCLE]


def vread(resource_type: str, resource_id: str, version: int | str) -> Answer:
    function = f"{resource_type.lower()}_vread"
    return invoke(function, path_params={"id": resource_id, "vid": str(version)})


def history_pages(resource_type: str, resource_id: str, count: int) -> list[list[dict[str, Any]]]:
    """Every page of the resource's history at ``count`` a page, following next links."""
    function = f"{resource_type.lower()}_history"
    query: dict[str, list[str]] | None = {"_count": [str(count)]}
    pages = []
    while query is not None:
        answer = invoke(function, path_params={"id": resource_id}, query=query)
        assert answer.status == 200, answer.body
        pages.append([entry["resource"] for entry in answer.body.get("entry", [])])
        link = next((link["url"] for link in answer.body["link"] if link["relation"] == "next"), None)
        query = parse_qs(urlsplit(link).query) if link else None
    return pages


def history_versions(resource_type: str, resource_id: str, count: int) -> list[int]:
    """The versionIds the whole history returns, in order, at ``count`` a page."""
    pages = history_pages(resource_type, resource_id, count)
    return [int(resource["meta"]["versionId"]) for page in pages for resource in page]


def version_copies(ddb_tables: Any, resource_type: str, resource_id: str) -> list[int]:
    """The versionIds of the resource's copies in the versions table, read past the API."""
    answer = ddb_tables.client.query(
        TableName=ddb_tables.names["VersionsTable"],
        KeyConditionExpression="resourceKey = :key",
        ExpressionAttributeValues={":key": {"S": f"{resource_type}/{resource_id}"}},
        ConsistentRead=True,
    )
    return [int(item["versionId"]["N"]) for item in answer["Items"]]


def copy_current_version_as_before(ddb_tables: Any, resource_type: str, resource_id: str) -> None:
    """Leave the versions table as the earlier write path did, which wrote a copy of every version
    (the current one included) in the transaction that created it."""
    table = ddb_tables.names[f"{resource_type}sTable"]
    item = ddb_tables.client.get_item(TableName=table, Key={"id": {"S": resource_id}}, ConsistentRead=True)
    current = item["Item"]
    ddb_tables.client.put_item(
        TableName=ddb_tables.names["VersionsTable"],
        Item={
            "resourceKey": {"S": f"{resource_type}/{resource_id}"},
            "versionId": current["versionId"],
            "resource": current["resource"],
            "lastUpdated": current["lastUpdated"],
        },
    )


@pytest.fixture
def patient_id(ddb_tables: Any) -> str:
    return str(create_patient()["id"])


def test_a_create_writes_no_copy_and_each_update_writes_the_copy_of_the_version_it_replaces(
    ddb_tables: Any, patient_id: str
) -> None:
    # Given a new encounter
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    encounter_id = created.body["id"]
    # Then its only item is the current one
    assert version_copies(ddb_tables, "Encounter", encounter_id) == []

    # When it is updated twice
    second = updated("Encounter", {**created.body, "status": "arrived"})
    third = updated("Encounter", {**second.body, "status": "triaged"})

    # Then the versions table holds versions 1 and 2, exactly as they were answered
    assert (second.status, third.status) == (200, 200)
    assert version_copies(ddb_tables, "Encounter", encounter_id) == [1, 2]
    assert vread("Encounter", encounter_id, 1).body == created.body
    assert vread("Encounter", encounter_id, 2).body == second.body
    assert vread("Encounter", encounter_id, 3).body == third.body


def test_every_version_of_an_encounter_is_readable_after_several_updates(patient_id: str) -> None:
    # Given an encounter taken through its lifecycle: seven versions
    encounter_id, statuses = encounter_through_lifecycle(patient_id)

    # When each version is read
    answers = [vread("Encounter", encounter_id, number) for number in range(1, len(statuses) + 1)]

    # Then each is that version, with its own status, ETag and meta
    for number, (answer, status) in enumerate(zip(answers, statuses, strict=True), start=1):
        assert answer.status == 200, answer.body
        assert answer.body["meta"]["versionId"] == str(number)
        assert answer.body["status"] == status
        assert answer.headers["ETag"] == f'W/"{number}"'

    # And versions that do not exist are 404
    assert vread("Encounter", encounter_id, len(statuses) + 1).status == 404
    assert vread("Encounter", encounter_id, 0).status == 404
    assert vread("Encounter", str(uuid.uuid4()), 1).status == 404


def test_a_vread_of_the_version_just_written_is_one_read(patient_id: str) -> None:
    # Given an encounter in its third version
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    second = updated("Encounter", {**created.body, "status": "arrived"}).body
    third = updated("Encounter", {**second, "status": "in-progress"}).body
    recorder = CallRecorder(dynamodb_client(get_settings()))

    # When the version a client was just given (its Location) is read, then an older one
    with recorder.recording() as calls:
        current = vread("Encounter", created.body["id"], 3)
    current_reads = [call.operation for call in calls]
    with recorder.recording() as calls:
        older = vread("Encounter", created.body["id"], 1)
    older_reads = [call.operation for call in calls]

    # Then the current version took one GetItem, the older one the current item's and its copy's
    assert current.body == third and current_reads == ["GetItem"]
    assert older.body == created.body and older_reads == ["GetItem", "GetItem"]


@pytest.mark.parametrize("count", [1, 2, 3, 50])
def test_history_returns_every_version_once_newest_first_at_any_page_size(
    patient_id: str, count: int
) -> None:
    # Given an encounter with seven versions
    encounter_id, statuses = encounter_through_lifecycle(patient_id)

    # When its whole history is read, `count` versions a page
    pages = history_pages("Encounter", encounter_id, count)

    # Then every version comes exactly once, newest first, each with its own content
    resources = [resource for page in pages for resource in page]
    assert [int(r["meta"]["versionId"]) for r in resources] == list(range(len(statuses), 0, -1))
    assert [r["status"] for r in resources] == list(reversed(statuses))
    assert all(len(page) <= count for page in pages)


@pytest.mark.parametrize("budget", [10, 11])
def test_history_under_the_smallest_read_budget_still_returns_every_version_once(
    patient_id: str, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an encounter with 25 versions (in progress and on leave by turns), and requests allowed to
    # read only `budget` items each (the smallest budget the settings accept, and one more)
    created = invoke("encounter_create", body=minimal_encounter(patient_id, status="in-progress"))
    document = created.body
    for number in range(2, 26):
        answer = updated("Encounter", {**document, "status": "onleave" if number % 2 == 0 else "in-progress"})
        assert answer.status == 200, answer.body
        document = answer.body
    monkeypatch.setenv("SEARCH_READ_BUDGET", str(budget))
    reset_settings()

    # When its history is read 50 at a time
    pages = history_pages("Encounter", created.body["id"], 50)

    # Then the budget ends each page early, and together they hold every version exactly once
    assert len(pages) > 2
    versions = [int(resource["meta"]["versionId"]) for page in pages for resource in page]
    assert versions == list(range(25, 0, -1))


def test_a_patients_versions_follow_the_same_rule(ddb_tables: Any) -> None:
    # Given a patient whose family name and identifier change over two updates
    system = "urn:oid:1.2.36.146.595.217.0.1"
    first = create_patient("Before", identifier=[{"system": system, "value": "MRN-v1"}])
    second = updated("Patient", {**first, "name": [{"family": "Between"}]})
    third = updated(
        "Patient",
        {**second.body, "name": [{"family": "After"}], "identifier": [{"system": system, "value": "MRN-v3"}]},
    )
    assert (second.status, third.status) == (200, 200)

    # Then only the superseded versions have copies, every version reads back, history is complete
    patient = first["id"]
    assert version_copies(ddb_tables, "Patient", patient) == [1, 2]
    families = [vread("Patient", patient, number).body["name"][0]["family"] for number in (1, 2, 3)]
    assert families == ["Before", "Between", "After"]
    assert history_versions("Patient", patient, 1) == [3, 2, 1]

    # And search sees the current version only; the released identifier can be claimed again
    found = invoke("patient_search", query={"family": ["after"]})
    assert [entry["resource"]["id"] for entry in found.body["entry"]] == [patient]
    assert invoke("patient_search", query={"family": ["before"]}).body.get("entry") is None
    claimed = invoke(
        "patient_create",
        body={"resourceType": "Patient", "identifier": [{"system": system, "value": "MRN-v1"}]},
    )
    assert claimed.status == 201, claimed.body


def test_an_idempotent_replay_stores_one_version_that_reads_back(ddb_tables: Any, patient_id: str) -> None:
    # Given an encounter created with an Idempotency-Key, and the same request sent again
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = invoke("encounter_create", body=minimal_encounter(patient_id), headers=key)
    replay = invoke("encounter_create", body=minimal_encounter(patient_id), headers=key)

    # Then both answers are the one encounter at version 1, which vread and history return
    assert (first.status, replay.status) == (201, 201)
    assert replay.body == first.body
    encounter_id = first.body["id"]
    assert vread("Encounter", encounter_id, 1).body == first.body
    assert history_versions("Encounter", encounter_id, 10) == [1]
    assert version_copies(ddb_tables, "Encounter", encounter_id) == []


# -- tables written by the earlier write path: a copy of every version, the current one included ----


def test_an_encounter_stored_the_earlier_way_reads_every_version_once(
    ddb_tables: Any, patient_id: str
) -> None:
    # Given an encounter with seven versions whose current version also has a copy, as the earlier
    # write path left every resource
    encounter_id, statuses = encounter_through_lifecycle(patient_id)
    copy_current_version_as_before(ddb_tables, "Encounter", encounter_id)
    assert version_copies(ddb_tables, "Encounter", encounter_id) == list(range(1, len(statuses) + 1))

    # When its history is read at several page sizes, and each version is read
    newest_first = list(range(len(statuses), 0, -1))
    for count in (1, 2, 7, 50):
        # Then the current version appears once, at the top, and every other version once after it
        assert history_versions("Encounter", encounter_id, count) == newest_first, count
    for number, status in enumerate(statuses, start=1):
        assert vread("Encounter", encounter_id, number).body["status"] == status


def test_a_created_only_resource_stored_the_earlier_way_has_a_history_of_one(
    ddb_tables: Any, patient_id: str
) -> None:
    # Given an encounter at version 1 that also has its copy, as every create used to write it
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    encounter_id = created.body["id"]
    copy_current_version_as_before(ddb_tables, "Encounter", encounter_id)

    # When its history is read
    answer = invoke("encounter_history", path_params={"id": encounter_id})

    # Then it holds version 1 once, with a total of 1 and no next link
    assert answer.status == 200, answer.body
    assert [entry["resource"] for entry in answer.body["entry"]] == [created.body]
    assert answer.body["total"] == 1
    assert [link["relation"] for link in answer.body["link"]] == ["self"]


def test_updating_a_resource_stored_the_earlier_way_keeps_every_version_once(
    ddb_tables: Any, patient_id: str
) -> None:
    # Given an encounter at version 2 stored the earlier way (copies of versions 1 and 2)
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    second = updated("Encounter", {**created.body, "status": "arrived"})
    encounter_id = created.body["id"]
    copy_current_version_as_before(ddb_tables, "Encounter", encounter_id)

    # When the new code updates it, once with a stale If-Match and once with the current one
    stale = updated("Encounter", {**second.body, "status": "triaged"}, **{"If-Match": 'W/"1"'})
    third = updated("Encounter", {**second.body, "status": "triaged"}, **{"If-Match": 'W/"2"'})

    # Then the stale one is 412 and the other lands: version 2's copy is rewritten unchanged
    assert stale.status == 412, stale.body
    assert third.status == 200, third.body
    assert version_copies(ddb_tables, "Encounter", encounter_id) == [1, 2]
    assert vread("Encounter", encounter_id, 2).body == second.body
    assert history_versions("Encounter", encounter_id, 1) == [3, 2, 1]


def test_a_patient_stored_the_earlier_way_reads_every_version_once(ddb_tables: Any) -> None:
    # Given a patient at version 2 whose current version also has a copy
    first = create_patient("Earlier")
    second = updated("Patient", {**first, "gender": "female"})
    patient = first["id"]
    copy_current_version_as_before(ddb_tables, "Patient", patient)

    # Then its history and vreads are as for any patient, and an update continues it
    assert history_versions("Patient", patient, 1) == [2, 1]
    assert vread("Patient", patient, 2).body == second.body
    assert updated("Patient", {**second.body, "gender": "male"}).status == 200
    assert history_versions("Patient", patient, 2) == [3, 2, 1]
    assert [vread("Patient", patient, n).body.get("gender") for n in (1, 2, 3)] == [None, "female", "male"]


def test_racing_updates_of_a_resource_stored_the_earlier_way_have_one_winner(
    ddb_tables: Any, patient_id: str
) -> None:
    # Given an encounter at version 2 stored the earlier way, and eight writers who all read version 2
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    second = updated("Encounter", {**created.body, "status": "arrived"})
    encounter_id = created.body["id"]
    copy_current_version_as_before(ddb_tables, "Encounter", encounter_id)

    # When they all update it at once with If-Match: W/"2"
    answers = concurrently(
        8,
        lambda index: updated(
            "Encounter",
            {**second.body, "status": "triaged", "reasonCode": [{"text": f"writer {index}"}]},
            **{"If-Match": 'W/"2"'},
        ),
    )

    # Then one wins and the others get 412; the history holds each version once, the winner's on top
    assert sorted(answer.status for answer in answers) == [200] + [412] * 7
    winner = next(answer for answer in answers if answer.status == 200)
    pages = history_pages("Encounter", encounter_id, 50)
    assert [int(resource["meta"]["versionId"]) for resource in pages[0]] == [3, 2, 1]
    assert pages[0][0] == winner.body
    assert pages[0][1] == second.body
