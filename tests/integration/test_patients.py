"""Patient through the handlers, on moto and DynamoDB Local: rules, uniqueness, search, versions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from handler_calls import (
    call,
    create_encounter,
    follow_all,
    ids_of,
    search,
)

pytestmark = pytest.mark.usefixtures("backend")

PATIENT = "/api/fhir/Patient"
MRN = "urn:oid:1.2.36.146.595.217.0.1"


def post(patient: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return call("patient_create", "POST", PATIENT, {"resourceType": "Patient", **patient}, headers=headers)


def put(patient: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return call(
        "patient_update",
        "PUT",
        f"{PATIENT}/{patient['id']}",
        patient,
        path_params={"id": patient["id"]},
        headers=headers,
    )


def found(**params: str | list[str]) -> list[str]:
    answer = search("Patient", **params)
    assert answer.status == 200, answer.text
    return ids_of(answer.body)


@pytest.fixture
def chalmers() -> dict[str, Any]:
    answer = post(
        {
            "identifier": [{"use": "usual", "system": MRN, "value": "MRN-12345"}],
            "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
            "telecom": [{"system": "email", "value": "peter@example.org"}],
            "gender": "male",
            "birthDate": "1974-12-25",
        }
    )
    assert answer.status == 201, answer.text
    return dict(answer.body)


@pytest.fixture
def muller() -> dict[str, Any]:
    answer = post(
        {"name": [{"family": "Müller", "given": ["Zoë"]}], "gender": "female", "birthDate": "1990-06"}
    )
    assert answer.status == 201, answer.text
    return dict(answer.body)


def test_a_full_patient_is_kept_exactly(chalmers: dict[str, Any]) -> None:
    read = call("patient_read", "GET", f"{PATIENT}/{chalmers['id']}", path_params={"id": chalmers["id"]})
    assert read.status == 200
    assert read.body == chalmers
    assert read.headers["ETag"] == 'W/"1"'
    assert chalmers["name"] == [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}]


def test_a_second_patient_with_the_same_identifier_is_409(chalmers: dict[str, Any]) -> None:
    answer = post({"identifier": [{"system": MRN, "value": "MRN-12345"}], "name": [{"family": "Other"}]})
    assert answer.status == 409
    assert answer.body["issue"][0]["code"] == "duplicate"
    assert found(family="other") == []


def test_if_none_exist_returns_the_existing_patient(chalmers: dict[str, Any]) -> None:
    answer = post(
        {"identifier": [{"system": MRN, "value": "MRN-12345"}]},
        headers={"If-None-Exist": f"identifier={MRN}|MRN-12345"},
    )
    created = post(
        {"identifier": [{"system": MRN, "value": "MRN-99"}]},
        headers={"If-None-Exist": f"identifier={MRN}|MRN-99"},
    )
    assert answer.status == 200
    assert answer.body["id"] == chalmers["id"]
    assert created.status == 201


def test_search_by_mrn_name_birthdate_and_gender(chalmers: dict[str, Any], muller: dict[str, Any]) -> None:
    me, her = [chalmers["id"]], [muller["id"]]
    assert found(identifier=f"{MRN}|MRN-12345") == me
    assert found(identifier="MRN-12345") == me
    assert found(identifier="http://other|MRN-12345") == []
    assert found(family="Cha") == me
    assert found(family="mul") == her  # accent-insensitive
    assert found(family="MÜL") == her
    assert found(given="zoe") == her
    assert found(given="jam") == me
    assert found(name="pet") == me
    assert found(name="chalmers,müller") in (me + her, her + me)
    assert found(**{"family:exact": "Müller"}) == her
    assert found(**{"family:exact": "muller"}) == []
    assert found(birthdate="1974-12-25") == me
    assert found(birthdate="1990") == her
    assert found(birthdate="lt1980") == me
    assert found(birthdate=["ge1980", "le1999"]) == her
    assert found(gender="female") == her
    assert found(gender="http://hl7.org/fhir/administrative-gender|male") == me
    assert found(family="cha", gender="female") == []
    assert found(_id=chalmers["id"]) == me
    assert sorted(found()) == sorted(me + her)


def test_a_patient_found_through_two_name_parts_is_listed_once() -> None:
    # Given a patient whose family and given names both start with "an"
    answer = post({"name": [{"family": "Anderson", "given": ["Anna", "Annabel"]}]})
    assert answer.status == 201

    # When the name search is read one entry a page
    listed = follow_all("Patient", name="an", _count="1")

    # Then the patient is listed once
    assert listed == [answer.body["id"]]


def test_a_correction_changes_what_search_finds_and_keeps_the_first_version(chalmers: dict[str, Any]) -> None:
    # Given an encounter of the patient
    encounter = create_encounter(chalmers["id"])

    # When the family name is corrected
    corrected = {**chalmers, "name": [{"use": "official", "family": "Chambers", "given": ["Peter"]}]}
    answer = put(corrected, {"If-Match": 'W/"1"'})

    # Then search finds the new name only, the first version is readable, and the encounter still points at it
    assert answer.status == 200, answer.text
    assert found(family="chambers") == [chalmers["id"]]
    assert found(family="chalmers") == []
    assert found(identifier="MRN-12345") == [chalmers["id"]]
    first = call(
        "patient_vread",
        "GET",
        f"{PATIENT}/{chalmers['id']}/_history/1",
        path_params={"id": chalmers["id"], "vid": "1"},
    )
    assert first.body["name"][0]["family"] == "Chalmers"
    assert ids_of(search("Encounter", patient=chalmers["id"]).body) == [encounter["id"]]


def test_an_identifier_moves_between_patients_only_once_released(
    chalmers: dict[str, Any], muller: dict[str, Any]
) -> None:
    taken = put({**muller, "identifier": [{"system": MRN, "value": "MRN-12345"}]})
    released = put({**chalmers, "identifier": [{"system": MRN, "value": "MRN-00001"}]})
    moved = put({**muller, "identifier": [{"system": MRN, "value": "MRN-12345"}]})

    assert taken.status == 409
    assert released.status == 200
    assert moved.status == 200
    assert found(identifier="MRN-12345") == [muller["id"]]


@pytest.mark.parametrize(
    ("patient", "status", "expression"),
    [
        ({"gender": "boy"}, 400, "Patient.gender"),
        ({"birthDate": "1990-13"}, 400, "Patient.birthDate"),
        ({"birthDate": "1990-02-30"}, 400, "Patient.birthDate"),
        ({"birthDate": "2999-01-01"}, 422, "Patient.birthDate"),
        ({"nickname": "Pete"}, 400, "Patient.nickname"),
        ({"identifier": [{"system": "not a uri", "value": "1"}]}, 400, "Patient.identifier[0].system"),
        ({"telecom": [{"value": "call me"}]}, 422, "Patient.telecom[0].system"),
        (
            {
                "text": {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script/>x</div>',
                }
            },
            400,
            "Patient.text.div",
        ),
        (
            {"text": {"status": "generated", "div": "<div>Peter</div><img src=x onerror=alert(1)>"}},
            400,
            "Patient.text.div",
        ),
        ({"telecom": [{"system": "pigeon", "value": "x"}]}, 400, "Patient.telecom[0].system"),
        ({"active": "true"}, 400, "Patient.active"),
    ],
)
def test_refused_patients_name_the_element_and_store_nothing(
    patient: dict[str, Any], status: int, expression: str
) -> None:
    answer = post({"name": [{"family": "Refused"}], **patient})

    assert answer.status == status, answer.text
    expressions = [item for issue in answer.body["issue"] for item in issue.get("expression", [])]
    assert any(item.startswith(expression) for item in expressions), expressions
    assert found(family="refused") == []


def test_identifiers_without_a_value_or_a_system_are_kept_searchable_and_claim_nothing() -> None:
    # Given two patients with the same value-less identifier and the same system-less one (valid R4),
    # and a third with a full identifier of that system
    system = f"http://clinic.example/mrn/{uuid.uuid4()}"
    loose = [{"use": "old", "system": system}, {"value": f"X-{system[-8:]}"}]
    first = post({"identifier": loose, "name": [{"family": "Loose"}]})
    second = post({"identifier": loose, "name": [{"family": "Loose"}]})
    full = post({"identifier": [{"system": system, "value": "7"}], "name": [{"family": "Full"}]})

    # Then all three are stored as sent: neither loose identifier claims uniqueness
    assert [answer.status for answer in (first, second, full)] == [201, 201, 201], first.text
    assert first.body["identifier"] == loose
    ids = [first.body["id"], second.body["id"]]

    # And each is found as far as it goes: by its system alone, by its value alone, with no system
    assert sorted(found(identifier=f"{system}|")) == sorted([*ids, full.body["id"]])
    assert sorted(found(identifier=f"X-{system[-8:]}")) == sorted(ids)
    assert sorted(found(identifier=f"|X-{system[-8:]}")) == sorted(ids)
    assert found(identifier=f"{system}|X-{system[-8:]}") == []
    assert found(identifier=f"{system}|7") == [full.body["id"]]
