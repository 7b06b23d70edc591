"""Keys built from several client values cannot be made to meet: the Idempotency-Key's scope
(sub, resource type, key) and a Patient identifier's uniqueness claim (system, value)."""

from __future__ import annotations

from typing import Any

import pytest
from handler_calls import call, create_patient, encounter_for, ids_of, search

pytestmark = pytest.mark.usefixtures("backend")

PATIENT = "/api/fhir/Patient"


def create(function: str, body: dict[str, Any], sub: str, key: str) -> Any:
    path = "/api/fhir/Encounter" if function == "encounter_create" else PATIENT
    return call(function, "POST", path, body, sub=sub, headers={"Idempotency-Key": key})


def test_a_sub_holding_the_separator_never_receives_another_users_first_answer() -> None:
    # Given alice's encounter, created with Idempotency-Key "Patient#k"
    patient_id = create_patient()
    alice = create("encounter_create", encounter_for(patient_id), sub="alice", key="Patient#k")
    assert alice.status == 201, alice.text
    # When a user whose sub is "alice#Encounter" creates a patient with the key "k"
    # (the same text once sub, type and key are joined with "#")
    other = create(
        "patient_create",
        {"resourceType": "Patient", "name": [{"family": "Other"}]},
        sub="alice#Encounter",
        key="k",
    )
    # Then that user's own patient is created; alice's encounter is not handed out
    assert other.status == 201, other.text
    assert other.body["resourceType"] == "Patient"
    assert other.body["id"] != alice.body["id"]


def test_the_same_key_still_replays_for_the_same_user_and_type() -> None:
    # Given a patient created with an Idempotency-Key holding separators
    body = {"resourceType": "Patient", "name": [{"family": "Replay"}]}
    first = create("patient_create", body, sub="alice#Encounter", key="a#b|c")
    # When the same user retries it
    retry = create("patient_create", body, sub="alice#Encounter", key="a#b|c")
    # Then the first answer comes back and nothing new is stored
    assert (first.status, retry.status) == (201, 201)
    assert retry.body["id"] == first.body["id"]
    assert ids_of(search("Patient", family="Replay").body) == [first.body["id"]]


def post_identifier(system: str, value: str) -> Any:
    patient = {"resourceType": "Patient", "identifier": [{"system": system, "value": value}]}
    return call("patient_create", "POST", PATIENT, patient)


def test_identifiers_whose_system_and_value_join_alike_are_different_identifiers() -> None:
    # Given a patient with identifier system "urn:example:a|1" and value "2"
    first = post_identifier("urn:example:a|1", "2")
    assert first.status == 201, first.text
    # When another patient has system "urn:example:a" and value "1|2"
    second = post_identifier("urn:example:a", "1|2")
    # Then it is another identifier: created, not a 409 conflict
    assert second.status == 201, second.text
    # And search by identifier (| escaped as FHIR says) finds each patient by its own pair
    assert ids_of(search("Patient", identifier="urn:example:a\\|1|2").body) == [first.body["id"]]
    assert ids_of(search("Patient", identifier="urn:example:a|1\\|2").body) == [second.body["id"]]
    # And the same pair again is still refused
    again = post_identifier("urn:example:a", "1|2")
    assert again.status == 409, again.text
