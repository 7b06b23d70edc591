"""Patient validation: FHIR R4 structure (400) and this server's rules (422)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from fhir_api.errors import BusinessRuleViolation, InvalidResource
from fhir_api.fhir.validation import validate_resource
from fhir_api.resources.patient_rules import check_patient_rules
from tests._examples import changed, set_path

TODAY = dt.date(2025, 6, 1)

# Every element of the R4 Patient, each backbone element with all of its own elements.
FULL_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "implicitRules": "http://clinic.example/fhir/rules",
    "language": "en-AU",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Peter James Chalmers</p></div>',
    },
    "contained": [{"resourceType": "Organization", "id": "org1", "name": "Gastroenterology clinic"}],
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
            "valueAddress": {"city": "Melbourne"},
        }
    ],
    "modifierExtension": [
        {"url": "http://clinic.example/fhir/StructureDefinition/test-patient", "valueBoolean": False}
    ],
    "identifier": [
        {
            "use": "usual",
            "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}],
                "text": "Medical record number",
            },
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345",
            "period": {"start": "2001-05-06"},
            "assigner": {"display": "Acme Healthcare"},
        },
        {
            "use": "official",
            "system": "http://ns.electronichealth.net.au/id/hi/ihi/1.0",
            "value": "8003608166690503",
        },
    ],
    "active": True,
    "name": [
        {
            "use": "official",
            "text": "Peter James Chalmers",
            "family": "Chalmers",
            "given": ["Peter", "James"],
            "prefix": ["Mr"],
            "suffix": ["Jr"],
            "period": {"start": "1974-12-25"},
        },
        {"use": "usual", "given": ["Jim"]},
        {"use": "maiden", "family": "Windsor", "given": ["Peter", "James"], "period": {"end": "2002"}},
    ],
    "telecom": [
        {"use": "home"},
        {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
        {"system": "phone", "value": "+61 3 5555 8834 ext 12", "use": "mobile", "rank": 2},
        {"system": "email", "value": "peter.chalmers@example.org", "use": "home"},
        {"system": "url", "value": "https://peter.example.org/", "use": "old", "period": {"end": "2014"}},
        {"system": "fax", "value": "+61-3-5555-0000"},
        {"system": "other", "value": "@peterc on the clinic app"},
    ],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ]
    },
    "deceasedBoolean": False,
    "address": [
        {
            "use": "home",
            "type": "both",
            "text": "534 Erewhon St, PeasantVille, Rainbow, Vic 3999",
            "line": ["534 Erewhon St"],
            "city": "PleasantVille",
            "district": "Rainbow",
            "state": "Vic",
            "postalCode": "3999",
            "country": "AU",
            "period": {"start": "1974-12-25"},
        }
    ],
    "maritalStatus": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]
    },
    "multipleBirthInteger": 2,
    "photo": [
        {
            "contentType": "image/png",
            "language": "en",
            "data": "iVBORw0KGgo=",
            "url": "https://clinic.example/photos/p1.png",
            "size": 8,
            "hash": "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
            "title": "Portrait",
            "creation": "2020-01-01T10:00:00+10:00",
        }
    ],
    "contact": [
        {
            "relationship": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}
            ],
            "name": {
                "family": "du Marché",
                "_family": {"extension": [{"url": "http://x.example/prefix", "valueString": "VV"}]},
                "given": ["Bénédicte"],
            },
            "telecom": [{"system": "phone", "value": "+33 (237) 998327"}],
            "address": {"use": "home", "type": "both", "line": ["534 Erewhon St"], "city": "PleasantVille"},
            "gender": "female",
            "organization": {"reference": "#org1", "display": "Gastroenterology clinic"},
            "period": {"start": "2012"},
        }
    ],
    "communication": [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-AU"}]}, "preferred": True}
    ],
    "generalPractitioner": [{"reference": "#org1"}],
    "managingOrganization": {"reference": "Organization/1"},
    "link": [{"other": {"reference": "Patient/pat2"}, "type": "seealso"}],
}

MINIMAL_PATIENT: dict[str, Any] = {"resourceType": "Patient", "gender": "female", "birthDate": "1990-04-01"}


def _expressions(error: InvalidResource | BusinessRuleViolation) -> list[str]:
    return [expression for issue in error.issues for expression in issue.expression]


# --- accepted -------------------------------------------------------------------------------------


def test_full_r4_patient_is_accepted_unchanged() -> None:
    # Given a Patient using every element of the R4 specification
    document = copy.deepcopy(FULL_PATIENT)

    # When it is validated and checked
    accepted = validate_resource("Patient", document)
    check_patient_rules(accepted, None, today=TODAY)

    # Then what comes back is what was sent, in the same order
    assert json.dumps(accepted) == json.dumps(FULL_PATIENT)


def test_client_id_and_meta_are_dropped() -> None:
    # Given a body with the client's id and meta
    document = {**MINIMAL_PATIENT, "id": "mine", "meta": {"versionId": "3"}}

    # When / Then they are dropped
    assert validate_resource("Patient", document) == MINIMAL_PATIENT


def test_a_patient_with_no_elements_is_accepted() -> None:
    # Given a Patient with nothing but its type (FHIR requires no element of a Patient)
    document = {"resourceType": "Patient"}

    # When / Then it passes
    check_patient_rules(validate_resource("Patient", document), None, today=TODAY)


def test_repeating_primitive_nulls_lined_up_with_extensions_are_accepted() -> None:
    # Given a given name known only through an extension, its value a null placeholder
    name = {
        "given": ["Peter", None],
        "_given": [None, {"extension": [{"url": "http://x.example/absent", "valueCode": "masked"}]}],
    }
    document = changed(MINIMAL_PATIENT, set_path("name", [name]))

    # When / Then it is accepted as sent
    assert validate_resource("Patient", document) == document


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("birthDate", "1990"),
        ("birthDate", "1990-04"),
        ("birthDate", "2025-06-01"),  # today
        ("birthDate", "2025"),  # this year
        ("birthDate", "2024-02-29"),
        ("deceasedDateTime", "2024-01-01T10:00:00Z"),
        ("multipleBirthBoolean", True),
        ("extension", [{"url": "http://x.example/weight", "valueDecimal": 71.25}]),
        ("extension", [{"url": "http://x.example/count", "valueUnsignedInt": 0}]),
        ("telecom", [{"system": "email", "value": "a.b+c@mail.example.co.uk"}]),
        ("telecom", [{"system": "sms", "value": "+44 7700 900123"}]),
        ("telecom", [{"system": "pager", "value": "555.0199"}]),
        ("identifier", [{"system": "urn:uuid:0b7c3a2e-5a36-4f3e-8b1e-7f1b2f0f9a11", "value": "x"}]),
    ],
)
def test_valid_variants_are_accepted(path: str, value: object) -> None:
    # Given a minimal Patient with one valid variation
    document = changed(MINIMAL_PATIENT, set_path(path, value))

    # When / Then it passes and is kept as sent
    accepted = validate_resource("Patient", document)
    check_patient_rules(accepted, None, today=TODAY)
    assert accepted == document


# --- 400 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expression", "code"),
    [
        ("gender", "M", "Patient.gender", "code-invalid"),
        ("gender", "Male", "Patient.gender", "code-invalid"),
        ("gender", "", "Patient.gender", "value"),
        ("gender", None, "Patient.gender", "value"),
        ("gender", ["male"], "Patient.gender", "structure"),
        ("contact", [{"gender": "woman"}], "Patient.contact[0].gender", "code-invalid"),
        (
            "telecom",
            [{"system": "mail", "value": "a@b.example"}],
            "Patient.telecom[0].system",
            "code-invalid",
        ),
        (
            "telecom",
            [{"system": "phone", "value": "1", "use": "cell"}],
            "Patient.telecom[0].use",
            "code-invalid",
        ),
        ("name", [{"use": "nick", "text": "Pete"}], "Patient.name[0].use", "code-invalid"),
        ("identifier", [{"use": "primary", "value": "1"}], "Patient.identifier[0].use", "code-invalid"),
        ("address", [{"type": "home"}], "Patient.address[0].type", "code-invalid"),
        ("address", [{"use": "holiday"}], "Patient.address[0].use", "code-invalid"),
        (
            "link",
            [{"other": {"reference": "Patient/2"}, "type": "same"}],
            "Patient.link[0].type",
            "code-invalid",
        ),
        ("photo", [{"contentType": "png"}], "Patient.photo[0].contentType", "code-invalid"),
    ],
)
def test_bad_codes_are_refused(path: str, value: object, expression: str, code: str) -> None:
    # When a coded element holds something outside its required value set
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Patient", changed(MINIMAL_PATIENT, set_path(path, value)))

    # Then the issue names the element
    assert _expressions(caught.value) == [expression]
    assert caught.value.issues[0].code == code


@pytest.mark.parametrize(
    "value",
    ["1990-02-30", "1990-1-1", "90", "19900401", "1990-04-01T00:00:00Z", "1990-04-01Z", "0000", 1990, ""],
)
def test_malformed_birth_dates_are_refused(value: object) -> None:
    # When birthDate is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD, a real day)
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Patient", changed(MINIMAL_PATIENT, set_path("birthDate", value)))

    # Then the issue names it
    assert _expressions(caught.value) == ["Patient.birthDate"]


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("active", "true", "Patient.active"),
        ("active", 1, "Patient.active"),
        ("multipleBirthInteger", "2", "Patient.multipleBirthInteger"),
        ("multipleBirthInteger", 2.0, "Patient.multipleBirthInteger"),
        ("multipleBirthInteger", True, "Patient.multipleBirthInteger"),
        ("deceasedDateTime", "2020-01-01", None),  # with deceasedBoolean below
        ("identifier", {"system": "http://x.example", "value": "1"}, "Patient.identifier"),
        ("identifier", [{"sytem": "http://x.example", "value": "1"}], "Patient.identifier[0].sytem"),
        ("identifier", [{"system": " http://x.example", "value": "1"}], "Patient.identifier[0].system"),
        ("identifier", [{"system": "http://x.example", "value": ""}], "Patient.identifier[0].value"),
        ("identifier", [{}], "Patient.identifier[0]"),
        ("name", [{"given": []}], "Patient.name[0].given"),
        ("name", [{"given": ["Peter", ""]}], "Patient.name[0].given[1]"),
        ("name", [{"given": ["Peter", None]}], "Patient.name[0].given[1]"),
        ("name", [{"given": ["Peter", 7]}], "Patient.name[0].given[1]"),
        ("name", [{"given": "Peter"}], "Patient.name[0].given"),
        ("name", [{"family": ["Chalmers"]}], "Patient.name[0].family"),
        ("photo", [{"data": "not base64!"}], "Patient.photo[0].data"),
        ("photo", [{"size": -1}], "Patient.photo[0].size"),
        ("telecom", [{"system": "phone", "value": "1", "rank": 0}], "Patient.telecom[0].rank"),
        ("communication", [{"preferred": True}], "Patient.communication[0].language"),
        ("link", [{"type": "seealso"}], "Patient.link[0].other"),
        ("contact", [{}], "Patient.contact[0]"),
        ("_gender", "male", "Patient.gender"),
        (
            "extension",
            [{"url": "http://x.example/a", "valueDecimal": "1.5"}],
            "Patient.extension[0].valueDecimal",
        ),
        (
            "extension",
            [{"url": "http://x.example/a", "valueBoolean": "true"}],
            "Patient.extension[0].valueBoolean",
        ),
    ],
)
def test_malformed_elements_are_refused(path: str, value: object, expression: str | None) -> None:
    # Given a Patient with one malformed element (deceased[x] given twice for the choice case)
    document = changed(MINIMAL_PATIENT, set_path(path, value))
    if expression is None:
        document["deceasedBoolean"] = True
        expression = "Patient.deceased"

    # When / Then it is refused naming the element
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Patient", document)
    assert _expressions(caught.value) == [expression]


@pytest.mark.parametrize(
    "given_extensions",
    [
        [None, None],  # a null value with no extension to stand for it
        [None],  # not one entry per value
    ],
)
def test_misaligned_primitive_extensions_are_refused(given_extensions: list[object]) -> None:
    # Given a repeating primitive whose _ sibling does not line up with its values
    name = {"given": ["Peter", None], "_given": given_extensions}

    # When / Then it is refused
    with pytest.raises(InvalidResource) as caught:
        validate_resource("Patient", changed(MINIMAL_PATIENT, set_path("name", [name])))
    assert all(expression.startswith("Patient.name[0].given") for expression in _expressions(caught.value))


def test_check_patient_rules_refuses_a_malformed_birth_date_as_invalid() -> None:
    # Given a birthDate that skipped validate_resource
    document = changed(MINIMAL_PATIENT, set_path("birthDate", "1990-02-30"))

    # When / Then the rules answer 400, not 422
    with pytest.raises(InvalidResource) as caught:
        check_patient_rules(document, None, today=TODAY)
    assert _expressions(caught.value) == ["Patient.birthDate"]


# --- 422 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2025-06-02", "2025-07", "2026", "2999-01-01"])
def test_a_birth_date_in_the_future_is_refused(value: str) -> None:
    # Given a well-formed birthDate after today
    document = validate_resource("Patient", changed(MINIMAL_PATIENT, set_path("birthDate", value)))

    # When / Then the rules refuse it
    with pytest.raises(BusinessRuleViolation) as caught:
        check_patient_rules(document, None, today=TODAY)
    assert _expressions(caught.value) == ["Patient.birthDate"]
    assert "future" in caught.value.issues[0].diagnostics


def test_today_defaults_to_the_date_in_the_earliest_time_zone() -> None:
    # Given a birth today in UTC, and one two days from now
    now = dt.datetime.now(dt.UTC).date()
    born_today = changed(MINIMAL_PATIENT, set_path("birthDate", now.isoformat()))
    born_later = changed(MINIMAL_PATIENT, set_path("birthDate", (now + dt.timedelta(days=2)).isoformat()))

    # When / Then today passes, two days ahead does not
    check_patient_rules(born_today, None)
    with pytest.raises(BusinessRuleViolation):
        check_patient_rules(born_later, None)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # The spec's own example Patients carry identifiers without a value; a system may be relative.
        ("identifier", [{"system": "mrn", "value": "12345"}]),
        ("identifier", [{"system": "/ids/mrn", "value": "12345"}]),
        ("identifier", [{"system": "http://clinic.example/mrn"}]),
        ("identifier", [{"value": "12345"}]),
        ("identifier", [{"type": {"text": "MRN"}}]),
        ("identifier", [{"use": "old", "system": "urn:oid:1.2.36.146.595", "period": {"end": "2001"}}]),
        # A telecom value is what the patient gave: FHIR sets no format, neither does this server.
        ("telecom", [{"system": "email", "value": "peter.example.org"}]),
        ("telecom", [{"system": "email", "value": "peter@"}]),
        ("telecom", [{"system": "phone", "value": "0800-DOCTORS"}]),
        ("telecom", [{"system": "phone", "value": "ask reception"}]),
        ("telecom", [{"system": "fax", "value": "+61 3 5555 o000"}]),
        ("telecom", [{"system": "url", "value": "www.example.org"}]),
        ("telecom", [{"system": "phone"}]),
        ("telecom", [{"system": "phone", "use": "old"}]),
        ("contact", [{"name": {"family": "Doe"}, "telecom": [{"system": "email", "value": "no-at-sign"}]}]),
    ],
)
def test_valid_identifiers_and_telecoms_of_any_form_are_accepted(path: str, value: object) -> None:
    # Given a Patient whose identifier or telecom is valid R4 but incomplete or unusual in form
    document = changed(MINIMAL_PATIENT, set_path(path, value))

    # When it is validated and its rules checked
    accepted = validate_resource("Patient", document)
    check_patient_rules(accepted, None, today=TODAY)

    # Then it is kept exactly as sent
    assert accepted[path] == value


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        ("telecom", [{"value": "(03) 5555 6473"}], "Patient.telecom[0].system"),
        ("telecom", [{"value": "peter@example.org", "use": "home"}], "Patient.telecom[0].system"),
        (
            "contact",
            [{"name": {"family": "Doe"}, "telecom": [{"value": "555 0199"}]}],
            "Patient.contact[0].telecom[0].system",
        ),
    ],
)
def test_a_telecom_value_without_its_system_is_refused(path: str, value: object, expression: str) -> None:
    # Given a Patient with a telecom value whose kind is not said (FHIR's cpt-2)
    document = validate_resource("Patient", changed(MINIMAL_PATIENT, set_path(path, value)))

    # When / Then the rules refuse it with 422 naming the element
    with pytest.raises(BusinessRuleViolation) as caught:
        check_patient_rules(document, None, today=TODAY)
    assert _expressions(caught.value) == [expression]
    assert caught.value.issues[0].code == "business-rule"


def test_patient_rule_faults_are_all_named() -> None:
    # Given a Patient with a future birth and two telecom values without a system
    document = changed(MINIMAL_PATIENT, set_path("birthDate", "2030"))
    document["identifier"] = [{"system": "http://clinic.example/mrn"}]
    document["telecom"] = [{"system": "phone", "value": "1"}, {"value": "x"}]
    document["contact"] = [{"telecom": [{"value": "y"}]}]

    # When / Then each is named in one 422, and the value-less identifier is not among them
    with pytest.raises(BusinessRuleViolation) as caught:
        check_patient_rules(validate_resource("Patient", document), None, today=TODAY)
    assert _expressions(caught.value) == [
        "Patient.birthDate",
        "Patient.telecom[1].system",
        "Patient.contact[0].telecom[0].system",
    ]
