"""Encounter validation: FHIR R4 structure (400) and this server's rules (422)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from fhir_api.errors import BusinessRuleViolation, InvalidResource
from fhir_api.fhir import fhirjson
from fhir_api.fhir.ids import reference_id
from fhir_api.fhir.models import _model_issue, model_issues, resource_model
from fhir_api.fhir.terminology import ACT_ENCOUNTER_CODES, V3_ACT_CODE
from fhir_api.fhir.validation import validate_resource
from fhir_api.resources.encounter_rules import check_encounter_rules
from tests._examples import SEED_ENCOUNTER, changed, set_path


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


# Every element of the R4 Encounter, each backbone element with all of its own elements.
FULL_ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "implicitRules": "http://clinic.example/fhir/rules",
    "language": "en-AU",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Check-up of Jane Doe</p></div>',
    },
    "contained": [
        {"resourceType": "Location", "id": "room1", "name": "Consulting room 1", "status": "active"},
        {"resourceType": "Condition", "id": "cond1", "subject": {"reference": "Patient/p-1"}},
    ],
    "extension": [
        {"url": "http://clinic.example/fhir/StructureDefinition/referral-source", "valueString": "GP letter"},
        {
            "url": "http://clinic.example/fhir/StructureDefinition/triage",
            "extension": [{"url": "score", "valueDecimal": 2.50}, {"url": "level", "valueInteger": 3}],
        },
    ],
    "modifierExtension": [
        {"url": "http://clinic.example/fhir/StructureDefinition/confidential", "valueBoolean": False}
    ],
    "identifier": [
        {
            "use": "official",
            "type": _concept("http://terminology.hl7.org/CodeSystem/v2-0203", "VN", "Visit number"),
            "system": "http://clinic.example/encounters",
            "value": "E-1001",
            "period": {"start": "2024-03-15"},
            "assigner": {"reference": "Organization/org-1", "display": "Example Clinic"},
        }
    ],
    "status": "finished",
    "_status": {
        "id": "status-1",
        "extension": [{"url": "http://clinic.example/fhir/StructureDefinition/source", "valueCode": "desk"}],
    },
    "statusHistory": [
        {"status": "arrived", "period": {"start": "2024-03-15T08:50:00Z", "end": "2024-03-15T08:55:00Z"}},
        {"status": "triaged", "period": {"start": "2024-03-15T08:55:00Z", "end": "2024-03-15T09:00:00Z"}},
        {"status": "in-progress", "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00Z"}},
    ],
    "class": {"system": V3_ACT_CODE, "version": "2018-08-12", "code": "AMB", "display": "ambulatory"},
    "classHistory": [
        {
            "class": {"system": V3_ACT_CODE, "code": "EMER", "display": "emergency"},
            "period": {"start": "2024-03-15T08:50:00+10:00", "end": "2024-03-15T09:00:00+10:00"},
        }
    ],
    "type": [_concept("http://snomed.info/sct", "185349003", "Encounter for check up")],
    "serviceType": _concept("http://terminology.hl7.org/CodeSystem/service-type", "124", "General Practice"),
    "priority": _concept("http://terminology.hl7.org/CodeSystem/v3-ActPriority", "R", "routine"),
    "subject": {"reference": "Patient/65f1234567890abcdef12345", "type": "Patient", "display": "Jane Doe"},
    "episodeOfCare": [{"reference": "EpisodeOfCare/ep-1"}],
    "basedOn": [{"reference": "ServiceRequest/sr-1"}],
    "participant": [
        {
            "type": [
                _concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PPRF", "primary")
            ],
            "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00Z"},
            "individual": {"reference": "Practitioner/pr-1", "display": "Dr Adam Careful"},
        }
    ],
    "appointment": [{"reference": "Appointment/ap-1"}],
    "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00.250Z"},
    "length": {
        "value": 30.25,
        "comparator": "<",
        "unit": "min",
        "system": "http://unitsofmeasure.org",
        "code": "min",
    },
    "reasonCode": [_concept("http://snomed.info/sct", "390906007", "Follow-up encounter")],
    "reasonReference": [{"reference": "#cond1"}],
    "diagnosis": [
        {
            "condition": {"reference": "#cond1"},
            "use": _concept(
                "http://terminology.hl7.org/CodeSystem/diagnosis-role", "AD", "Admission diagnosis"
            ),
            "rank": 1,
        }
    ],
    "account": [{"reference": "Account/acc-1"}],
    "hospitalization": {
        "preAdmissionIdentifier": {"system": "http://clinic.example/pre-admission", "value": "PA-77"},
        "origin": {"reference": "Location/home-1"},
        "admitSource": _concept(
            "http://terminology.hl7.org/CodeSystem/admit-source", "gp", "General Practitioner"
        ),
        "reAdmission": _concept("http://terminology.hl7.org/CodeSystem/v2-0092", "R", "Re-admission"),
        "dietPreference": [
            _concept("http://terminology.hl7.org/CodeSystem/diet", "vegetarian", "Vegetarian")
        ],
        "specialCourtesy": [
            _concept("http://terminology.hl7.org/CodeSystem/v3-EncounterSpecialCourtesy", "VIP", "VIP")
        ],
        "specialArrangement": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/encounter-special-arrangements", "wheel", "Wheelchair"
            )
        ],
        "destination": {"reference": "Location/home-1"},
        "dischargeDisposition": _concept(
            "http://terminology.hl7.org/CodeSystem/discharge-disposition", "home", "Home"
        ),
    },
    "location": [
        {
            "location": {"reference": "#room1"},
            "status": "completed",
            "physicalType": _concept(
                "http://terminology.hl7.org/CodeSystem/location-physical-type", "ro", "Room"
            ),
            "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00Z"},
        }
    ],
    "serviceProvider": {"reference": "Organization/org-1"},
    "partOf": {"reference": "Encounter/enc-0"},
}


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        del document[name]

    return change


def _expressions(error: InvalidResource | BusinessRuleViolation) -> list[str]:
    return [expression for issue in error.issues for expression in issue.expression]


# --- accepted -------------------------------------------------------------------------------------


def test_seed_example_is_accepted_unchanged() -> None:
    # Given the example of the API's documentation
    document = copy.deepcopy(SEED_ENCOUNTER)

    # When it is validated and checked
    accepted = validate_resource("Encounter", document)
    check_encounter_rules(accepted, None)

    # Then what comes back is what was sent, in the same order
    assert json.dumps(accepted) == json.dumps(SEED_ENCOUNTER)


def test_full_r4_encounter_is_accepted_unchanged() -> None:
    # Given an Encounter using every element of the R4 specification
    document = copy.deepcopy(FULL_ENCOUNTER)

    # When it is validated and checked
    accepted = validate_resource("Encounter", document)
    check_encounter_rules(accepted, None)

    # Then nothing is lost or altered (_status and the contained resources included)
    assert json.dumps(accepted) == json.dumps(FULL_ENCOUNTER)


def test_numbers_and_strings_survive_exactly_as_written() -> None:
    # Given a JSON body with a decimal's trailing zero and non-ASCII text, parsed as the API does
    text = json.dumps(FULL_ENCOUNTER, ensure_ascii=False, separators=(",", ":"))
    text = text.replace('"value":30.25', '"value":30.250').replace('"Check-up"', '"Contrôle à 9h"')

    # When it is validated and written back
    accepted = validate_resource("Encounter", fhirjson.loads(text))

    # Then the text is the same, digit for digit
    assert fhirjson.dumps(accepted) == text


def test_client_id_and_meta_are_dropped_even_when_malformed() -> None:
    # Given a body with the client's own id and meta
    document = {**SEED_ENCOUNTER, "id": "not a valid id!", "meta": {"versionId": "9", "unknown": 1}}

    # When it is validated
    accepted = validate_resource("Encounter", document)

    # Then the server-set elements are gone and nothing else changed
    assert "id" not in accepted and "meta" not in accepted
    assert accepted == SEED_ENCOUNTER


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("period.start", "2024"),
        ("period.start", "2024-03"),
        ("period.start", "2024-03-15"),
        ("period.start", "2016-12-31T23:59:60Z"),  # a leap second
        ("period.start", "2024-03-15T09:00:00.123456789+14:00"),
        ("period.start", "2024-02-29T09:00:00-05:30"),
        ("length", {"value": 30}),
        ("length", {"value": 0.5, "unit": "h"}),
        ("length", {"value": Decimal("30.50"), "unit": "min"}),  # how the API parses JSON decimals
        ("length", {"value": Decimal("1E+2"), "unit": "min"}),
        ("class", {"system": "http://clinic.example/encounter-class", "code": "WALK-IN"}),
        ("status", "entered-in-error"),
        ("status", "unknown"),
    ],
)
def test_valid_variants_are_accepted(path: str, value: object) -> None:
    # Given the seed example with one valid variation
    document = changed(SEED_ENCOUNTER, set_path(path, value))

    # When it is validated and checked
    accepted = validate_resource("Encounter", document)
    check_encounter_rules(accepted, None)

    # Then it is kept as sent
    assert accepted == document


@pytest.mark.parametrize("code", sorted(ACT_ENCOUNTER_CODES.codes))
def test_every_act_encounter_code_is_accepted(code: str) -> None:
    # Given a class from v3-ActCode with an ActEncounterCode code
    document = changed(SEED_ENCOUNTER, set_path("class", {"system": V3_ACT_CODE, "code": code}))

    # When / Then it passes
    check_encounter_rules(validate_resource("Encounter", document), None)


# --- 400: structure, types, formats, codes ------------------------------------------------------------


@pytest.mark.parametrize("document", [[], None, "Encounter", 42, True, [SEED_ENCOUNTER]])
def test_a_body_that_is_not_an_object_is_refused(document: object) -> None:
    # When a body that is not a JSON object is validated
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", document)

    # Then the issue names the resource
    assert _expressions(caught.value) == ["Encounter"]
    assert caught.value.issues[0].code == "structure"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (_drop("resourceType"), "required"),
        (set_path("resourceType", "Patient"), "structure"),
        (set_path("resourceType", ["Encounter"]), "structure"),
    ],
)
def test_missing_or_wrong_resource_type_is_refused(
    change: Callable[[dict[str, Any]], None], code: str
) -> None:
    # When the body's resourceType is not Encounter
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, change))

    # Then the issue says so
    assert _expressions(caught.value) == ["Encounter.resourceType"]
    assert caught.value.issues[0].code == code


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("foo", 1, "Encounter.foo"),
        ("clas", {"code": "AMB"}, "Encounter.clas"),
        ("class_fhir", {"code": "AMB"}, "Encounter.class_fhir"),
        ("resource_type", "Encounter", "Encounter.resource_type"),
        ("fhir_comments", "a comment", "Encounter.fhir_comments"),
        ("status__ext", {"id": "x"}, "Encounter.status__ext"),
        ("_subject", {"id": "x"}, "Encounter._subject"),
        ("subject.referense", "Patient/1", "Encounter.subject.referense"),
        ("class.resourceType", "Coding", "Encounter.class.resourceType"),
        ("type.0.coding.0.sytem", "http://snomed.info/sct", "Encounter.type[0].coding[0].sytem"),
        ("period.begin", "2024-03-15", "Encounter.period.begin"),
    ],
)
def test_unknown_elements_are_refused(path: str, value: object, expression: str) -> None:
    # When a body carries an element FHIR R4 does not define there
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path(path, value)))

    # Then the issue names it
    assert _expressions(caught.value) == [expression]
    assert caught.value.issues[0].code == "structure"


def test_a_misspelled_element_gets_a_suggestion() -> None:
    # When "class" is misspelled
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path("clas", {"code": "AMB"})))

    # Then the message suggests the element meant
    assert "did you mean 'class'" in caught.value.issues[0].diagnostics


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("status", 1, "Encounter.status"),
        ("status", ["finished"], "Encounter.status"),
        ("class", [{"code": "AMB"}], "Encounter.class"),
        ("class", "AMB", "Encounter.class"),
        ("type", {"text": "check-up"}, "Encounter.type"),
        ("subject.reference", 42, "Encounter.subject.reference"),
        ("length", {"value": "30"}, "Encounter.length.value"),
        ("length", {"value": True}, "Encounter.length.value"),
        ("length", {"value": float("nan")}, "Encounter.length.value"),
        ("period.start", 20240315, "Encounter.period.start"),
        ("_status", "desk", "Encounter.status"),
        ("_status", [{"id": "x"}], "Encounter.status"),
        (
            "modifierExtension",
            [{"url": "http://x.example", "valueBoolean": "false"}],
            "Encounter.modifierExtension[0].valueBoolean",
        ),
        (
            "extension",
            [{"url": "http://x.example", "valueInteger": 3.0}],
            "Encounter.extension[0].valueInteger",
        ),
        (
            "extension",
            [{"url": "http://x.example", "valueInteger": "3"}],
            "Encounter.extension[0].valueInteger",
        ),
        (
            "extension",
            [{"url": "http://x.example", "valueInteger": Decimal("3.0")}],
            "Encounter.extension[0].valueInteger",
        ),
        ("length", {"value": Decimal("Infinity")}, "Encounter.length.value"),
        (
            "extension",
            [{"url": "http://x.example", "valueInteger": 2**31}],
            "Encounter.extension[0].valueInteger",
        ),
        (
            "extension",
            [{"url": "http://x.example", "valuePositiveInt": 0}],
            "Encounter.extension[0].valuePositiveInt",
        ),
        (
            "extension",
            [{"url": "http://x.example", "valueDecimal": "2.5"}],
            "Encounter.extension[0].valueDecimal",
        ),
    ],
)
def test_wrong_json_types_are_refused(path: str, value: object, expression: str) -> None:
    # When an element has a JSON type FHIR's JSON format does not allow there
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path(path, value)))

    # Then the issue names the element
    assert _expressions(caught.value) == [expression]


@pytest.mark.parametrize(
    "value",
    [
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-3-15",
        "24-03-15",
        "0000",
        "2024-03-15T09:00Z",
        "2024-03-15T09:00:00",
        "2024-03-15 09:00:00Z",
        "2024-03-15T24:00:00Z",
        "2024-03-15T09:00:00+15:00",
        "2024-03-15T09:00:00.Z",
        "2024-02-30T09:00:00Z",
        "15/03/2024",
        "",
    ],
)
def test_bad_date_times_are_refused(value: str) -> None:
    # When period.start is not a real FHIR dateTime
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path("period.start", value)))

    # Then the issue names it
    assert _expressions(caught.value) == ["Encounter.period.start"]
    assert caught.value.issues[0].code == "value"


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("status", "bogus", "Encounter.status"),
        ("status", "Finished", "Encounter.status"),
        ("status", "in progress", "Encounter.status"),
        (
            "statusHistory",
            [{"status": "done", "period": {"start": "2024"}}],
            "Encounter.statusHistory[0].status",
        ),
        (
            "location",
            [{"location": {"reference": "Location/l1"}, "status": "gone"}],
            "Encounter.location[0].status",
        ),
        ("identifier", [{"use": "primary", "value": "E-1"}], "Encounter.identifier[0].use"),
        ("length", {"value": 3, "comparator": "~"}, "Encounter.length.comparator"),
        (
            "text",
            {"status": "made", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
            "Encounter.text.status",
        ),
    ],
)
def test_codes_outside_required_bindings_are_refused(path: str, value: object, expression: str) -> None:
    # When a code is not in the value set its element is bound to (required)
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path(path, value)))

    # Then the issue names the element
    assert _expressions(caught.value) == [expression]
    assert caught.value.issues[0].code == "code-invalid"


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("status", "", "Encounter.status"),
        ("type", [], "Encounter.type"),
        ("period", {}, "Encounter.period"),
        ("subject", {}, "Encounter.subject"),
        ("extension", [], "Encounter.extension"),
        ("type", [{}], "Encounter.type[0]"),
        ("subject.display", "", "Encounter.subject.display"),
        ("status", None, "Encounter.status"),
        ("period", None, "Encounter.period"),
        ("type", [None], "Encounter.type[0]"),
        ("_status", {}, "Encounter.status"),
    ],
)
def test_empty_and_null_values_are_refused(path: str, value: object, expression: str) -> None:
    # When an element is empty or null (FHIR: leave it out instead)
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path(path, value)))

    # Then the issue names it
    assert _expressions(caught.value) == [expression]


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("status", " finished", "Encounter.status"),
        ("class.code", "AMB ", "Encounter.class.code"),
        ("class.system", " http://terminology.hl7.org/CodeSystem/v3-ActCode", "Encounter.class.system"),
        ("implicitRules", "http://x.example/a b", "Encounter.implicitRules"),
        ("contained", [{"resourceType": "Location", "id": "room 1"}], "Encounter.contained[0].id"),
        ("contained", [{"resourceType": "Location", "id": "r" * 65}], "Encounter.contained[0].id"),
    ],
)
def test_whitespace_where_fhir_forbids_it_is_refused(path: str, value: object, expression: str) -> None:
    # When a code, uri or id has whitespace it cannot have
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path(path, value)))

    # Then the issue names it
    assert _expressions(caught.value) == [expression]


def test_strings_keep_their_whitespace() -> None:
    # Given a display with surrounding spaces (allowed for FHIR strings)
    document = changed(SEED_ENCOUNTER, set_path("class.display", " ambulatory "))

    # When / Then it is accepted and kept
    assert validate_resource("Encounter", document)["class"]["display"] == " ambulatory "


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (_drop("status"), "Encounter.status"),
        (_drop("class"), "Encounter.class"),
        (_drop("subject"), "Encounter.subject"),
        (set_path("extension", [{"valueString": "no url"}]), "Encounter.extension[0].url"),
        (set_path("participant", [{"period": {"start": "2024"}}, {}]), "Encounter.participant[1]"),
        (set_path("diagnosis", [{"rank": 1}]), "Encounter.diagnosis[0].condition"),
    ],
)
def test_missing_required_elements_are_refused(
    change: Callable[[dict[str, Any]], None], expression: str
) -> None:
    # When a required element is missing
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, change))

    # Then the issue names it (400: a cardinality breach is structural)
    assert expression in _expressions(caught.value)


def test_a_status_given_only_as_an_extension_is_refused() -> None:
    # Given a status replaced by an extension (FHIR allows it; the lifecycle needs a value)
    document = changed(SEED_ENCOUNTER, _drop("status"))
    document["_status"] = {"extension": [{"url": "http://x.example/reason", "valueCode": "unknown"}]}

    # When / Then it is refused as missing
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", document)
    assert _expressions(caught.value) == ["Encounter.status"]
    assert caught.value.issues[0].code == "required"


def test_missing_elements_are_all_named_at_once() -> None:
    # When status, class and subject are all missing
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", {"resourceType": "Encounter"})

    # Then each is named once
    assert sorted(_expressions(caught.value)) == ["Encounter.class", "Encounter.status", "Encounter.subject"]
    assert {issue.code for issue in caught.value.issues} == {"required"}


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        (
            "extension",
            [{"url": "http://x.example", "valueString": "a", "valueBoolean": True}],
            "Encounter.extension[0].value",
        ),
        ("extension", [{"url": "http://x.example"}], "Encounter.extension[0]"),
        (
            "extension",
            [{"url": "http://x.example", "valueString": "a", "extension": [{"url": "b", "valueCode": "c"}]}],
            "Encounter.extension[0]",
        ),
        ("contained", [{"resourceType": "Spaceship"}], "Encounter.contained[0].resourceType"),
        ("contained", [{"resourceType": "Coding", "code": "x"}], "Encounter.contained[0].resourceType"),
        ("contained", [{"id": "x"}], "Encounter.contained[0].resourceType"),
        ("contained", ["Location"], "Encounter.contained[0]"),
        (
            "contained",
            [{"resourceType": "Location", "contained": [{"resourceType": "Location", "name": "x"}]}],
            "Encounter.contained[0].contained",
        ),
        ("contained", [{"resourceType": "Patient", "gender": "x"}], "Encounter.contained[0].gender"),
        ("contained", [{"resourceType": "Location", "nmae": "x"}], "Encounter.contained[0].nmae"),
        ("text", {"status": "generated", "div": "plain text"}, "Encounter.text.div"),
    ],
)
def test_invariants_and_contained_resources_are_checked(path: str, value: object, expression: str) -> None:
    # When a choice, an extension or a contained resource breaks FHIR's rules
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path(path, value)))

    # Then the issue names the element
    assert _expressions(caught.value) == [expression]


def test_every_fault_is_named() -> None:
    # Given a body with three unrelated faults
    document = changed(SEED_ENCOUNTER, set_path("status", "bogus"))
    document["period"]["start"] = "2024-02-30T09:00:00Z"
    document["colour"] = "blue"

    # When it is validated
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", document)

    # Then every one is named, and the summary counts them
    assert sorted(_expressions(caught.value)) == [
        "Encounter.colour",
        "Encounter.period.start",
        "Encounter.status",
    ]
    assert "(and 2 more)" in caught.value.diagnostics


def test_absurd_nesting_is_refused_without_recursion_error() -> None:
    # Given extensions nested far deeper than any resource needs
    extension: dict[str, Any] = {"url": "http://x.example", "valueString": "bottom"}
    for _ in range(500):
        extension = {"url": "http://x.example", "extension": [extension]}

    # When / Then it is refused as a structure fault
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path("extension", [extension])))
    assert caught.value.issues[0].code == "structure"


# --- 422: business rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expression"),
    [
        ({"reference": "Practitioner/pr-1"}, "Encounter.subject.reference"),
        ({"reference": "Group/g-1"}, "Encounter.subject.reference"),
        ({"reference": "#p1"}, "Encounter.subject.reference"),
        ({"reference": "https://other.example/fhir/Patient/p-1"}, "Encounter.subject.reference"),
        ({"reference": "urn:uuid:0b7c3a2e-5a36-4f3e-8b1e-7f1b2f0f9a11"}, "Encounter.subject.reference"),
        ({"reference": "Patient/p-1/_history/2"}, "Encounter.subject.reference"),
        ({"reference": "Patient/p_1"}, "Encounter.subject.reference"),
        ({"reference": "Patient/" + "a" * 65}, "Encounter.subject.reference"),
        ({"reference": "patient/p-1"}, "Encounter.subject.reference"),
        ({"identifier": {"system": "http://clinic.example/mrn", "value": "12345"}}, "Encounter.subject"),
        ({"display": "Jane Doe"}, "Encounter.subject"),
        ({"reference": "Patient/p-1", "type": "Group"}, "Encounter.subject.type"),
    ],
)
def test_a_subject_that_is_not_a_patient_of_this_server_is_refused(
    subject: dict[str, Any], expression: str
) -> None:
    # Given a structurally valid Encounter whose subject is not Patient/{id}
    document = validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path("subject", subject)))

    # When / Then the rules refuse it with 422
    with pytest.raises(BusinessRuleViolation) as caught:
        check_encounter_rules(document, None)
    assert _expressions(caught.value) == [expression]
    assert "Patient/{id}" in caught.value.issues[0].diagnostics


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/p-1", "p-1"),
        ("Patient/A.b-9", "A.b-9"),
        ("Patient/p-1/_history/1", None),
        ("Group/p-1", None),
        ("#p-1", None),
        (None, None),
        (7, None),
    ],
)
def test_patient_reference_id(reference: object, expected: str | None) -> None:
    # When / Then only a literal Patient/{id} yields an id
    assert reference_id(reference, "Patient") == expected


@pytest.mark.parametrize(
    ("start", "end", "refused"),
    [
        ("2024-03-15T09:00:00Z", "2024-03-15T08:59:59Z", True),
        ("2024-03-15T09:00:00Z", "2024-03-15T09:00:00Z", False),
        ("2024-03-15T09:00:00Z", "2024-03-15T09:30:00Z", False),
        ("2024-03-15T10:00:00Z", "2024-03-15", False),  # the end day contains the start
        ("2024-03-15T10:00:00Z", "2024-03-14", True),
        ("2024-03-15", "2024-03-15T00:00:00Z", False),
        ("2024-03", "2024-02-29", True),
        ("2024", "2024-12-31T23:59:59Z", False),
        ("2024-03-15T10:00:00+02:00", "2024-03-15T09:00:00Z", False),  # 08:00Z then 09:00Z
        ("2024-03-15T10:00:00Z", "2024-03-15T11:00:00+02:00", True),  # 10:00Z then 09:00Z
        ("2024-03-15T09:00:00.500Z", "2024-03-15T09:00:00.499Z", True),
        ("2024-03-15T09:00:00.5Z", "2024-03-15T09:00:00Z", False),  # the end's second contains the start
    ],
)
def test_period_end_is_not_before_start(start: str, end: str, refused: bool) -> None:
    # Given a valid Encounter with the period
    document = validate_resource(
        "Encounter", changed(SEED_ENCOUNTER, set_path("period", {"start": start, "end": end}))
    )

    # When the rules run
    if not refused:
        check_encounter_rules(document, None)
        return
    with pytest.raises(BusinessRuleViolation) as caught:
        check_encounter_rules(document, None)

    # Then a reversed period is refused at period.end
    assert _expressions(caught.value) == ["Encounter.period.end"]


def test_periods_inside_the_encounter_are_checked_too() -> None:
    # Given a status history entry whose period is reversed
    history = [
        {"status": "arrived", "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T08:00:00Z"}}
    ]
    document = validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path("statusHistory", history)))

    # When / Then it is refused
    with pytest.raises(BusinessRuleViolation) as caught:
        check_encounter_rules(document, None)
    assert _expressions(caught.value) == ["Encounter.statusHistory[0].period.end"]


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("class", {"system": V3_ACT_CODE, "code": "XYZ"}, "Encounter.class.code"),
        ("class", {"system": V3_ACT_CODE, "code": "amb"}, "Encounter.class.code"),
        ("class", {"system": V3_ACT_CODE, "code": "_ActEncounterCode"}, "Encounter.class.code"),
        (
            "classHistory",
            [{"class": {"system": V3_ACT_CODE, "code": "INPT"}, "period": {"start": "2024"}}],
            "Encounter.classHistory[0].class.code",
        ),
    ],
)
def test_v3_act_code_classes_must_be_act_encounter_codes(path: str, value: object, expression: str) -> None:
    # Given a class from v3-ActCode with a code outside ActEncounterCode
    document = validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path(path, value)))

    # When / Then it is refused with the allowed codes named
    with pytest.raises(BusinessRuleViolation) as caught:
        check_encounter_rules(document, None)
    assert _expressions(caught.value) == [expression]
    assert "AMB" in caught.value.issues[0].diagnostics


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "finished",
            "in-progress",
            "status cannot move from finished to in-progress; allowed: entered-in-error",
        ),
        ("cancelled", "planned", "status cannot move from cancelled to planned; allowed: entered-in-error"),
        (
            "entered-in-error",
            "finished",
            "status cannot move from entered-in-error to finished; allowed: none (entered-in-error is final)",
        ),
        (
            "in-progress",
            "arrived",
            "status cannot move from in-progress to arrived; allowed: onleave, finished, entered-in-error",
        ),
        (
            "in-progress",
            "cancelled",
            "status cannot move from in-progress to cancelled; allowed: onleave, finished, entered-in-error",
        ),
        ("planned", "unknown", "status cannot move from planned to unknown; allowed: arrived, triaged,"),
    ],
)
def test_a_refused_status_move_names_the_allowed_moves(old: str, new: str, message: str) -> None:
    # Given the stored version and an update changing its status
    previous = changed(SEED_ENCOUNTER, set_path("status", old))
    update = validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path("status", new)))

    # When / Then the move is refused with 422 at Encounter.status
    with pytest.raises(BusinessRuleViolation) as caught:
        check_encounter_rules(update, previous)
    assert _expressions(caught.value) == ["Encounter.status"]
    assert message in caught.value.issues[0].diagnostics


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("planned", "arrived"),
        ("planned", "finished"),
        ("arrived", "cancelled"),
        ("triaged", "in-progress"),
        ("in-progress", "onleave"),
        ("onleave", "in-progress"),
        ("onleave", "finished"),
        ("finished", "entered-in-error"),
        ("unknown", "finished"),
        ("finished", "finished"),
        ("entered-in-error", "entered-in-error"),
    ],
)
def test_allowed_status_moves_pass(old: str, new: str) -> None:
    # Given the stored version and an update making an allowed move
    previous = changed(SEED_ENCOUNTER, set_path("status", old))
    update = validate_resource("Encounter", changed(SEED_ENCOUNTER, set_path("status", new)))

    # When / Then the rules accept it
    check_encounter_rules(update, previous)


def test_check_encounter_rules_refuses_missing_required_elements_as_invalid() -> None:
    # Given an Encounter without subject that skipped validate_resource
    document = changed(SEED_ENCOUNTER, _drop("subject"))

    # When / Then the rules answer 400 "required", not 422
    with pytest.raises(InvalidResource) as caught:
        check_encounter_rules(document, None)
    assert _expressions(caught.value) == ["Encounter.subject"]
    assert caught.value.issues[0].code == "required"


def test_business_rule_faults_are_all_named() -> None:
    # Given an update with a bad subject, a reversed period, a bad class and a refused move
    update = changed(SEED_ENCOUNTER, set_path("subject", {"reference": "Group/g-1"}))
    update["period"] = {"start": "2024-03-15T10:00:00Z", "end": "2024-03-15T09:00:00Z"}
    update["class"] = {"system": V3_ACT_CODE, "code": "XYZ"}
    update["status"] = "planned"
    update = validate_resource("Encounter", update)

    # When / Then all four are named in one 422
    with pytest.raises(BusinessRuleViolation) as caught:
        check_encounter_rules(update, SEED_ENCOUNTER)
    assert sorted(_expressions(caught.value)) == [
        "Encounter.class.code",
        "Encounter.period.end",
        "Encounter.status",
        "Encounter.subject.reference",
    ]
    assert {issue.code for issue in caught.value.issues} == {"business-rule"}


# --- the fhir.resources layer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loc", "expression"),
    [
        (("period", "start"), "Encounter.period.start"),
        (("identifier", 0, "system"), "Encounter.identifier[0].system"),
        (("class_fhir", "code"), "Encounter.class.code"),
        (("class",), "Encounter.class"),
        (("_status",), "Encounter.status"),
        (("status__ext", "extension", 1, "url"), "Encounter.status.extension[1].url"),
        (("resource_type",), "Encounter.resourceType"),
        (
            ("participant", 0, "function-wrap[fhir_model_validator()]", "period"),
            "Encounter.participant[0].period",
        ),
        ((), "Encounter"),
    ],
)
def test_model_error_locations_become_fhirpath(loc: tuple[object, ...], expression: str) -> None:
    # Given an error as pydantic reports it
    error = {"type": "value_error", "loc": loc, "msg": "Value error, bad"}

    # When it becomes an issue
    issue = _model_issue("Encounter", error)

    # Then the expression is FHIRPath, with the JSON names
    assert issue.expression == (expression,)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("extra_forbidden", "structure"),
        ("missing", "required"),
        ("model_field_validation.missing", "required"),
    ],
)
def test_model_error_types_become_issue_codes(kind: str, code: str) -> None:
    # When / Then pydantic's error types map to FHIR issue codes
    assert _model_issue("Encounter", {"type": kind, "loc": ("x",), "msg": "m"}).code == code


def test_the_model_reports_what_it_refuses() -> None:
    # Given a body the Encounter model refuses (no class)
    body = {key: value for key, value in SEED_ENCOUNTER.items() if key != "class"}

    # When the model is asked
    issues = model_issues(resource_model("Encounter"), "Encounter", body)

    # Then its refusal is an issue naming the element
    assert [(issue.code, issue.expression) for issue in issues] == [("required", ("Encounter.class",))]
