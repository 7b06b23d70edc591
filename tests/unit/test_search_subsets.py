"""Chains, _include/_revinclude and _elements/_summary as the parser reads them, the subsets of a
resource (fhir.subsetting) and the sealed links of a POST search (search.sealed)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fhir_api.errors import InvalidRequest, SearchTooCostly
from fhir_api.fhir import subsetting
from fhir_api.resources import DEFINITIONS
from fhir_api.search import sealed
from fhir_api.search.paging import PageTokenConfigurationError
from fhir_api.search.parameters import MAX_AND_GROUPS, SearchQuery, parse_query
from fhir_api.search.tokens import TokenValue

SECRET = "unit-test-page-token-secret"


def search(resource_type: str, query: dict[str, list[str]], strict: bool = True) -> SearchQuery:
    definition = DEFINITIONS[resource_type]
    return parse_query(query, definition.search_parameters, strict, options=definition.search_options())


# -- chains ----------------------------------------------------------------------------------------


def test_chains_on_the_subject_are_parsed_with_the_patient_table() -> None:
    query = search(
        "Encounter",
        {
            "patient.identifier": ["urn:mrn|42"],
            "subject:Patient.family:exact": ["Chalmers"],
            "subject.birthdate": ["ge1970"],
        },
    )
    chains = {(reference, group.key): group for reference, group in query.chains}
    assert chains[("patient", "identifier")].values == (TokenValue("urn:mrn", "42"),)
    assert chains[("subject:Patient", "family:exact")].values[0].raw == "Chalmers"
    # The chains are criteria of one Patient search, and stay in the self link
    assert set(query.chained_query().groups) == {"identifier", "family", "birthdate"}
    canonical = query.canonical()
    assert "patient.identifier=urn:mrn|42" in canonical
    assert "subject:Patient.family:exact=Chalmers" in canonical
    assert not query.groups  # nothing of the Encounter's own parameters


@pytest.mark.parametrize(
    "key",
    [
        "patient.gender",
        "patient._id",
        "patient.name.text",
        "subject:Group.name",
        "status.code",
        "patient.family:contains",
    ],
)
def test_other_chains_are_refused_or_left_out_with_a_warning(key: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        search("Encounter", {key: ["x"]})
    assert raised.value.issues[0].expression == (key,)
    lenient = search("Encounter", {key: ["x"]}, strict=False)
    assert not lenient.chains and [issue.expression for issue in lenient.warnings] == [(key,)]
    assert key not in lenient.canonical()


def test_chains_repeat_at_most_as_often_as_any_parameter() -> None:
    with pytest.raises(SearchTooCostly):
        search("Encounter", {"patient.family": ["a"] * (MAX_AND_GROUPS + 1)})


def test_patient_searches_take_no_chain() -> None:
    with pytest.raises(InvalidRequest):
        search("Patient", {"general-practitioner.name": ["x"]})


def test_the_page_token_binding_names_the_patients_a_chain_resolved_to() -> None:
    first, second = (search("Encounter", {"patient.family": ["chalmers"]}) for _ in range(2))
    first.chain_matches, second.chain_matches = ("p1", "p2"), ("p2", "p1")
    assert first.query_key("Encounter") == second.query_key("Encounter")
    second.chain_matches = ("p1", "p2", "p3")
    assert first.query_key("Encounter") != second.query_key("Encounter")


# -- _include / _revinclude ------------------------------------------------------------------------


def test_includes_are_kept_once_each_in_the_self_link() -> None:
    query = search("Encounter", {"_include": ["Encounter:subject", "Encounter:patient", "Encounter:subject"]})
    assert query.include == ("Encounter:subject", "Encounter:patient")
    assert "_include=Encounter:patient&_include=Encounter:subject" in query.canonical()
    revinclude = search("Patient", {"_revinclude": ["Encounter:patient:Patient"]})
    assert revinclude.revinclude_sources(DEFINITIONS["Patient"].revincludes) == [("Encounter", "subject")]


def test_unknown_includes_are_refused_and_left_out_under_lenient_handling() -> None:
    with pytest.raises(InvalidRequest, match="_include takes Encounter:subject"):
        search("Encounter", {"_include": ["*"]})
    lenient = search("Encounter", {"_include": ["Encounter:subject", "Encounter:location"]}, strict=False)
    assert lenient.include == ("Encounter:subject",)
    assert len(lenient.warnings) == 1


# -- _summary / _elements --------------------------------------------------------------------------


def test_summary_modes_and_elements_are_parsed() -> None:
    assert search("Encounter", {"_summary": ["text"]}).summary == "text"
    assert search("Encounter", {"_summary": ["false"]}).summary is None
    elements = search("Patient", {"_elements": ["birthDate,name,deceased,resourceType"]})
    assert elements.elements == ("birthDate", "name", "deceased", "resourceType")
    assert "_elements=birthDate,name,deceased,resourceType" in elements.canonical()


def test_bad_elements_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="'_elements'"):
        search("Patient", {"_elements": ["birthDate,shoeSize"]})
    with pytest.raises(InvalidRequest, match="_summary=true"):
        search("Patient", {"_elements": ["name"], "_summary": ["true"]})
    assert search("Patient", {"_elements": ["shoeSize,name"]}, strict=False).elements == ("name",)


def test_resources_without_subsets_still_refuse_them() -> None:
    subscription = DEFINITIONS["Subscription"]
    for query in ({"_summary": ["true"]}, {"_elements": ["status"]}):
        with pytest.raises(InvalidRequest):
            parse_query(query, subscription.search_parameters, True, options=subscription.search_options())


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "2", "lastUpdated": "2024-01-01T00:00:00Z"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Peter</div>'},
    "identifier": [{"system": "urn:mrn", "value": "42"}],
    "name": [{"family": "Chalmers"}],
    "birthDate": "1974-12-25",
    "_birthDate": {"extension": [{"url": "http://example.org/exact", "valueBoolean": True}]},
    "contact": [{"name": {"family": "Next-of-kin"}}],
    "maritalStatus": {"text": "M"},
}


def test_summary_true_keeps_the_summary_elements_of_the_model() -> None:
    shown = subsetting.subset(PATIENT, "Patient", "true")
    assert shown is not None
    # identifier, name and birthDate are FHIR summary elements; contact, maritalStatus and text are not
    assert set(shown) == {"resourceType", "id", "meta", "identifier", "name", "birthDate", "_birthDate"}
    assert shown["meta"]["tag"] == [subsetting.SUBSETTED_TAG]
    assert shown["meta"]["versionId"] == "2"
    assert "tag" not in PATIENT["meta"]  # the stored document is left alone


def test_text_data_and_elements_subsets() -> None:
    text = subsetting.subset(PATIENT, "Patient", "text")
    assert text is not None and set(text) == {"resourceType", "id", "meta", "text"}
    data = subsetting.subset(PATIENT, "Patient", "data")
    assert data is not None and set(data) == set(PATIENT) - {"text"}
    chosen = subsetting.subset(PATIENT, "Patient", None, ("birthDate", "maritalStatus"))
    assert chosen is not None and set(chosen) == {
        "resourceType",
        "id",
        "meta",
        "birthDate",
        "_birthDate",
        "maritalStatus",
    }
    assert subsetting.subset(PATIENT, "Patient", None) is None


def test_mandatory_elements_are_always_kept_and_the_tag_once() -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "meta": {"tag": [dict(subsetting.SUBSETTED_TAG)]},
        "status": "finished",
        "class": {"code": "AMB"},
        "period": {"start": "2024"},
    }
    shown = subsetting.subset(encounter, "Encounter", None, ("period",))
    assert shown is not None and set(shown) == {"resourceType", "id", "meta", "status", "class", "period"}
    assert shown["meta"]["tag"] == [subsetting.SUBSETTED_TAG]


# -- sealed links ------------------------------------------------------------------------------------


def test_a_sealed_token_carries_the_query_and_page_and_hides_them() -> None:
    carried = sealed.SealedSearch("patient.identifier=urn:mrn|MRN-12345&_count=20", "1.abc.def")
    token = sealed.seal(carried, SECRET, "Encounter", ttl=60)
    assert sealed.is_sealed(token)
    assert "MRN" not in token and "identifier" not in token
    assert sealed.unseal(token, SECRET, "Encounter") == carried
    # Two seals of one search differ (a fresh nonce), so equal queries cannot be told apart by token
    assert sealed.seal(carried, SECRET, "Encounter", ttl=60) != token


def test_a_sealed_token_is_refused_when_altered_foreign_or_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    token = sealed.seal(sealed.SealedSearch("status=finished", None), SECRET, "Encounter", ttl=60)
    for bad, secret, resource_type in (
        (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), SECRET, "Encounter"),
        (token, SECRET, "Patient"),
        (token, "another-secret", "Encounter"),
        ("s1.%%%", SECRET, "Encounter"),
        ("s1." + "A" * (sealed.MAX_SEALED_LENGTH), SECRET, "Encounter"),
    ):
        with pytest.raises(InvalidRequest, match="invalid page token"):
            sealed.unseal(bad, secret, resource_type)
    later = time.time() + 61
    monkeypatch.setattr(sealed.time, "time", lambda: later)
    with pytest.raises(InvalidRequest, match="expired"):
        sealed.unseal(token, SECRET, "Encounter")


def test_sealing_needs_a_secret() -> None:
    with pytest.raises(PageTokenConfigurationError):
        sealed.seal(sealed.SealedSearch("", None), "", "Encounter", ttl=60)
