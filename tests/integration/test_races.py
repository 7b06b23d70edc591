"""Racing writers on DynamoDB Local (real conditional transactions): optimistic locking lets exactly one
of the writers of a version win, and concurrent creates neither collide nor get lost."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from handler_calls import Answer, invoke

from tests._examples import minimal_encounter


def concurrently(count: int, work: Callable[[int], Answer]) -> list[Answer]:
    """Run ``work(0..count-1)`` in as many threads, released together."""
    start = threading.Barrier(count)

    def run(index: int) -> Answer:
        start.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def create_patient(**extra: Any) -> str:
    answer = invoke(
        "patient_create", body={"resourceType": "Patient", "name": [{"family": "Racer"}], **extra}
    )
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


def encounter(patient_id: str, **changes: Any) -> dict[str, Any]:
    return minimal_encounter(
        patient_id, **{"status": "in-progress", "period": {"start": "2024-03-15T09:00:00Z"}, **changes}
    )


@pytest.fixture
def existing(ddb_tables: Any) -> dict[str, str]:
    """A patient and one of its encounters, at version 1."""
    patient_id = create_patient()
    created = invoke("encounter_create", body=encounter(patient_id))
    assert created.status == 201, created.body
    return {"patient": patient_id, "encounter": created.body["id"]}


def history(encounter_id: str) -> list[dict[str, Any]]:
    answer = invoke("encounter_history", path_params={"id": encounter_id}, query={"_count": ["100"]})
    assert answer.status == 200, answer.body
    return [entry["resource"] for entry in answer.body["entry"]]


def test_twelve_updates_with_the_same_if_match_have_one_winner(existing: dict[str, str]) -> None:
    # Given an encounter at version 1 and twelve writers who all read version 1
    encounter_id = existing["encounter"]

    def update(index: int) -> Answer:
        body = {
            **encounter(existing["patient"], reasonCode=[{"text": f"writer {index}"}]),
            "id": encounter_id,
        }
        return invoke(
            "encounter_update", path_params={"id": encounter_id}, body=body, headers={"If-Match": 'W/"1"'}
        )

    # When they all update it at once with If-Match: W/"1"
    answers = concurrently(12, update)

    # Then exactly one gets 200 and the eleven others 412 with an OperationOutcome
    statuses = Counter(answer.status for answer in answers)
    assert statuses == {200: 1, 412: 11}, statuses
    assert all(a.body["resourceType"] == "OperationOutcome" for a in answers if a.status == 412)

    # And the encounter is at version 2, holding the winner's change
    winner = next(answer for answer in answers if answer.status == 200)
    current = invoke("encounter_read", path_params={"id": encounter_id})
    assert current.body["meta"]["versionId"] == "2"
    assert current.body["reasonCode"] == winner.body["reasonCode"]
    assert [version["meta"]["versionId"] for version in history(encounter_id)] == ["2", "1"]


def test_eight_updates_without_if_match_each_winner_is_its_own_version(existing: dict[str, str]) -> None:
    # Given an encounter and eight writers, each with its own change, none sending If-Match
    encounter_id = existing["encounter"]

    def update(index: int) -> Answer:
        body = {
            **encounter(existing["patient"], reasonCode=[{"text": f"writer {index}"}]),
            "id": encounter_id,
        }
        return invoke("encounter_update", path_params={"id": encounter_id}, body=body)

    # When they all update it at once
    answers = concurrently(8, update)

    # Then each answer is a 200 or a 409 (a conflict the client may retry), never a 5xx
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {200, 409}, statuses
    assert statuses[200] >= 1

    # And every 200 is a distinct version, kept in the history with that writer's change
    won = {
        answer.body["meta"]["versionId"]: answer.body["reasonCode"]
        for answer in answers
        if answer.status == 200
    }
    assert len(won) == statuses[200]
    versions = {version["meta"]["versionId"]: version for version in history(encounter_id)}
    assert set(versions) == {"1", *won}
    for version_id, reason in won.items():
        assert versions[version_id]["reasonCode"] == reason
    assert sorted(int(version_id) for version_id in versions) == list(range(1, len(versions) + 1))


def test_twenty_concurrent_creates_store_twenty_encounters(ddb_tables: Any) -> None:
    # Given a patient
    patient_id = create_patient()

    # When twenty encounters of the patient are created at once
    answers = concurrently(
        20,
        lambda index: invoke(
            "encounter_create", body=encounter(patient_id, period={"start": f"2024-03-15T09:{index:02d}:00Z"})
        ),
    )

    # Then all twenty are created, each with its own id
    assert [answer.status for answer in answers] == [201] * 20, [a.body for a in answers if a.status != 201]
    ids = {answer.body["id"] for answer in answers}
    assert len(ids) == 20

    # And a search finds exactly those twenty, each once, each at version 1
    found = invoke("encounter_search", query={"subject": [f"Patient/{patient_id}"], "_count": ["100"]})
    assert found.status == 200
    entries = [entry["resource"] for entry in found.body["entry"]]
    assert sorted(resource["id"] for resource in entries) == sorted(ids)
    assert found.body["total"] == 20
    assert {resource["meta"]["versionId"] for resource in entries} == {"1"}


def test_concurrent_creates_of_one_identifier_store_one_patient(ddb_tables: Any) -> None:
    # Given six clients creating the same patient (the same identifier) at once
    identifier = [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "race-42"}]
    answers = concurrently(
        6,
        lambda index: invoke(
            "patient_create",
            body={"resourceType": "Patient", "identifier": identifier, "name": [{"family": "Twin"}]},
        ),
    )

    # Then one is created and the others are refused as duplicates
    statuses = Counter(answer.status for answer in answers)
    assert statuses == {201: 1, 409: 5}, statuses

    # And the identifier finds one patient
    found = invoke("patient_search", query={"identifier": ["urn:oid:1.2.36.146.595.217.0.1|race-42"]})
    assert found.status == 200
    assert found.body["total"] == 1
