"""A deletion on the change stream: the tombstone a delete writes becomes a ``*.deleted`` event that
fits the published schema, names the patient of the replaced version, and notifies no rest-hook."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from fhir_api.notifications.changes import change_from_record
from fhir_api.notifications.matching import ActiveSubscription, notifications
from fhir_api.resources.subscription import parse_criteria
from tests._change_events import EVENT_SCHEMA, as_delivered

WHEN = "2026-01-02T03:04:05.000000Z"


def encounter_image(version: int, status: str) -> dict[str, Any]:
    """The stream image of an encounter's current item."""
    document = {
        "resourceType": "Encounter",
        "id": "e1",
        "meta": {"versionId": str(version), "lastUpdated": WHEN},
        "status": status,
        "subject": {"reference": "Patient/p1"},
    }
    return {
        "id": {"S": "e1"},
        "resource": {"S": json.dumps(document)},
        "versionId": {"N": str(version)},
        "lastUpdated": {"S": WHEN},
        "status": {"S": status},
    }


def tombstone_image(resource_type: str, resource_id: str, version: int) -> dict[str, Any]:
    """The stream image of a tombstone, as the store writes it (no resource, no index attributes)."""
    return {
        "id": {"S": resource_id},
        "versionId": {"N": str(version)},
        "lastUpdated": {"S": WHEN},
        "deleted": {"BOOL": True},
        "resourceType": {"S": resource_type},
    }


def modify(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"Keys": {"id": new["id"]}, "NewImage": new}
    if old is not None:
        data["OldImage"] = old
    return {"eventName": "MODIFY", "dynamodb": data}


def test_an_encounters_deletion_is_an_event_naming_its_patient_and_last_status() -> None:
    # Given the stream record of an encounter's deletion (version 2 replaces finished version 1)
    change = change_from_record(modify(tombstone_image("Encounter", "e1", 2), encounter_image(1, "finished")))

    # Then it is an Encounter.deleted event, as the schema says, with the replaced version's codes
    assert change is not None
    entry = change.event_entry("bus")
    event = as_delivered(entry)
    jsonschema.validate(event, EVENT_SCHEMA)
    assert event["detail-type"] == "Encounter.deleted"
    assert event["detail"] == {
        "version": "1",
        "resourceType": "Encounter",
        "id": "e1",
        "versionId": "2",
        "interaction": "delete",
        "statusBefore": "finished",
        "statusAfter": None,
        "subject": "Patient/p1",
        "lastUpdated": WHEN,
    }


def test_a_patients_deletion_names_the_patient() -> None:
    change = change_from_record(modify(tombstone_image("Patient", "p9", 3), None))
    assert change is not None
    assert (change.detail_type, change.detail()["subject"]) == ("Patient.deleted", "Patient/p9")


def test_a_deletion_notifies_no_subscription_even_one_matching_every_encounter() -> None:
    # Given a subscription to every encounter, and a deletion and an update on the stream
    everything = ActiveSubscription("s1", parse_criteria("Encounter"), None)
    deleted = change_from_record(
        modify(tombstone_image("Encounter", "e1", 2), encounter_image(1, "finished"))
    )
    updated = change_from_record(modify(encounter_image(2, "finished"), encounter_image(1, "in-progress")))
    assert deleted is not None and updated is not None

    # Then only the update is delivered
    assert [(n.resource_id, n.version_id) for n in notifications([deleted, updated], [everything])] == [
        ("e1", 2)
    ]
