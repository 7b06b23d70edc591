"""Chained search, _include/_revinclude, _summary/_elements and POST _search through the local gateway,
with fhirpy and fhirclient as clients send them, and with the roles and scopes of search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle as SmartBundle
from fhirpy import SyncFHIRClient

from local import issuer
from local.stack import LocalStack

MRN = "urn:oid:1.2.36.146.595.217.0.1"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def people(local_stack: LocalStack) -> dict[str, str]:
    """Two patients with MRNs, and three encounters (two of the first, one of the second)."""
    headers = {"Authorization": f"Bearer {issuer.mint('admin')}", "Content-Type": "application/fhir+json"}
    base = local_stack.base_url
    made: dict[str, str] = {}
    for key, family, mrn in (
        ("grace", "Hopper-Search", "HTTP-MRN-1"),
        ("alan", "Turing-Search", "HTTP-MRN-2"),
    ):
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": MRN, "value": mrn}],
            "name": [{"family": family, "given": ["Test"]}],
            "birthDate": "1906-12-09",
        }
        answer = requests.post(f"{base}/Patient", json=patient, headers=headers, timeout=30)
        assert answer.status_code == 201, answer.text
        made[key] = answer.json()["id"]
    for key, patient, start in (
        ("g1", "grace", "2024-01-05T09:00:00Z"),
        ("g2", "grace", "2024-02-05T09:00:00Z"),
        ("a1", "alan", "2024-03-05T09:00:00Z"),
    ):
        encounter = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB"},
            "subject": {"reference": f"Patient/{made[patient]}"},
            "period": {"start": start, "end": start[:11] + "10:00:00Z"},
        }
        answer = requests.post(f"{base}/Encounter", json=encounter, headers=headers, timeout=30)
        assert answer.status_code == 201, answer.text
        made[key] = answer.json()["id"]
    return made


def _ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == mode]


def test_fhirpy_searches_by_a_chain_and_includes_the_patient(
    fhirpy_client: Callable[[str], SyncFHIRClient], people: dict[str, str]
) -> None:
    # Given a practitioner's fhirpy client
    client = fhirpy_client("practitioner")
    # When it looks encounters up by the patient's MRN (patient.identifier), including the patient
    search = (
        client.resources("Encounter")
        .search(patient__identifier=f"{MRN}|HTTP-MRN-1")
        .include("Encounter", "subject")
        .sort("date")
    )
    bundle = search.fetch_raw()
    # Then it gets that patient's encounters and the patient once, as an included resource
    assert _ids(bundle) == [people["g1"], people["g2"]]
    assert _ids(bundle, "include") == [people["grace"]]
    # And fhirpy's fetch gives the encounters, its fetch_all follows the pages to the same answer
    assert [encounter.id for encounter in search.fetch()] == [people["g1"], people["g2"]]
    assert [encounter.id for encounter in search.limit(1).fetch_all()] == [people["g1"], people["g2"]]


def test_fhirpy_chains_by_name_and_birthdate_and_revincludes(
    fhirpy_client: Callable[[str], SyncFHIRClient], people: dict[str, str]
) -> None:
    client = fhirpy_client("auditor")
    by_name = client.resources("Encounter").search(subject__Patient__family="turing-search").fetch()
    assert [encounter.id for encounter in by_name] == [people["a1"]]
    by_birth = client.resources("Encounter").search(patient__birthdate="1906-12-09").fetch_all()
    assert {encounter.id for encounter in by_birth} >= {people["g1"], people["g2"], people["a1"]}
    patients = client.resources("Patient").search(family="hopper-search").revinclude("Encounter", "patient")
    bundle = patients.fetch_raw()
    assert _ids(bundle) == [people["grace"]]
    assert sorted(_ids(bundle, "include")) == sorted([people["g1"], people["g2"]])


def test_fhirpy_elements_and_summary(
    fhirpy_client: Callable[[str], SyncFHIRClient], people: dict[str, str]
) -> None:
    client = fhirpy_client("practitioner")
    [patient] = client.resources("Patient").search(_id=people["grace"]).elements("birthDate").fetch()
    assert patient.get("birthDate") == "1906-12-09" and patient.get("name") is None
    assert {"code": "SUBSETTED"}.items() <= patient["meta"]["tag"][0].items()
    summary = client.resources("Encounter").search(_id=people["g1"], _summary="true").fetch_raw()
    assert "period" not in summary["entry"][0]["resource"]


def test_fhirclient_follows_the_sealed_links_of_a_post_search(
    api: Any,
    auth: Callable[..., dict[str, str]],
    smart: Callable[[str], smart_client.FHIRClient],
    people: dict[str, str],
) -> None:
    # Given a search posted as a form, one encounter per page
    form = {"patient.identifier": f"{MRN}|HTTP-MRN-1", "_count": "1"}
    answer = api.post("Encounter/_search", data=form, headers={**auth("practitioner"), **FORM})
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert _ids(bundle) == [people["g1"]]
    # Then no link carries the MRN, and the gateway's URL was only the _search path
    for link in bundle["link"]:
        assert "HTTP-MRN-1" not in link["url"] and "identifier" not in link["url"]
    # And fhirclient follows the next link (a GET) to the next page, parsed into its strict models
    client = smart("practitioner")
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    page = SmartBundle(client.server.request_json(next_url[len(client.server.base_uri) :]))
    assert [entry.resource.id for entry in page.entry] == [people["g2"]]
    assert all(link.relation != "next" for link in page.link)


@pytest.mark.parametrize("role", ["admin", "practitioner", "auditor"])
def test_every_role_may_post_a_search(
    api: Any, auth: Callable[..., dict[str, str]], people: dict[str, str], role: str
) -> None:
    answer = api.post("Patient/_search", data={"family": "turing-search"}, headers={**auth(role), **FORM})
    assert answer.status_code == 200, answer.text
    assert _ids(answer.json()) == [people["alan"]]


def test_post_search_needs_a_token_and_a_search_scope(api: Any, people: dict[str, str]) -> None:
    assert api.post("Encounter/_search", data={"status": "finished"}, headers=FORM).status_code == 401
    scoped = {"Authorization": f"Bearer {issuer.mint_access_token('system/Encounter.r', audience=None)}"}
    assert api.post("Encounter/_search", data={}, headers={**scoped, **FORM}).status_code == 403
    searching = {"Authorization": f"Bearer {issuer.mint_access_token('system/Encounter.s', audience=None)}"}
    assert api.post("Encounter/_search", data={}, headers={**searching, **FORM}).status_code == 200


def test_read_takes_summary_over_http(
    api: Any, auth: Callable[..., dict[str, str]], people: dict[str, str]
) -> None:
    answer = api.get(f"Encounter/{people['a1']}", params={"_summary": "true"}, headers=auth("auditor"))
    assert answer.status_code == 200
    assert "period" not in answer.json() and answer.json()["status"] == "finished"
    chained = requests.get(
        f"{api.base_url}/Encounter",
        params={"subject:Patient.identifier": f"{MRN}|HTTP-MRN-2", "_elements": "status"},
        headers=auth("auditor"),
        timeout=30,
    ).json()
    assert _ids(chained) == [people["a1"]]
    assert set(chained["entry"][0]["resource"]) == {"resourceType", "id", "meta", "status", "class"}


def test_a_reference_copied_from_a_full_url_finds_the_same_encounters(
    api: Any, auth: Callable[..., dict[str, str]], people: dict[str, str]
) -> None:
    # Given the fullUrl of a patient as a search answer gives it
    found = api.get("Patient", params={"_id": people["grace"]}, headers=auth("practitioner")).json()
    full_url = found["entry"][0]["fullUrl"]
    assert full_url.startswith(("http://", "https://"))

    # When encounters are searched by that absolute URL, and by the relative reference
    by_url = api.get("Encounter", params={"subject": full_url}, headers=auth("practitioner"))
    by_reference = api.get(
        "Encounter", params={"subject": f"Patient/{people['grace']}"}, headers=auth("practitioner")
    )

    # Then both find the patient's two encounters
    assert by_url.status_code == 200, by_url.text
    assert (
        sorted(_ids(by_url.json()))
        == sorted(_ids(by_reference.json()))
        == sorted([people["g1"], people["g2"]])
    )
    # And another server's URL for the same id finds nothing here: it is refused
    elsewhere = api.get(
        "Encounter",
        params={"subject": f"https://elsewhere.example/fhir/Patient/{people['grace']}"},
        headers=auth("practitioner"),
    )
    assert elsewhere.status_code == 400, elsewhere.text
