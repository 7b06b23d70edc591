"""Search handling over HTTP: by default a search the server cannot run exactly as asked is refused with a
400 naming what it cannot use (it never silently widens); ``Prefer: handling=lenient`` runs the rest of
the search and says what it left out in an OperationOutcome entry of the Bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from local import issuer
from local.stack import LocalStack
from tests._examples import minimal_encounter
from tests._fhir_schema import assert_valid

FHIR_JSON = "application/fhir+json"
TIMEOUT_SECONDS = 30
LENIENT = {"Prefer": "handling=lenient"}


@pytest.fixture(scope="module")
def clinic(local_stack: LocalStack) -> dict[str, Any]:
    """Two patients, Muller and Okafor, with two encounters each (once per module)."""
    if local_stack.gateway is not None:
        local_stack.gateway.activate()
    headers = {"Authorization": f"Bearer {issuer.mint('practitioner')}", "Content-Type": FHIR_JSON}
    made: dict[str, Any] = {"encounters": {}}
    base = local_stack.base_url
    for family in ("Muller", "Okafor"):
        patient = {"resourceType": "Patient", "name": [{"family": family}], "gender": "female"}
        answer = requests.post(
            f"{base}/Patient", headers=headers, data=json.dumps(patient), timeout=TIMEOUT_SECONDS
        )
        assert answer.status_code == 201, answer.text
        patient_id = answer.json()["id"]
        made[family] = patient_id
        for day in ("01", "02"):
            body = minimal_encounter(patient_id, period={"start": f"2024-09-{day}T09:00:00Z"})
            created = requests.post(
                f"{base}/Encounter", headers=headers, data=json.dumps(body), timeout=TIMEOUT_SECONDS
            )
            assert created.status_code == 201, created.text
            made["encounters"][created.json()["id"]] = family
    return made


def refusal(response: requests.Response) -> dict[str, Any]:
    """The 400 OperationOutcome of a refused search (valid FHIR R4), without its last issue, which
    quotes the request id."""
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert_valid(outcome)
    *issues, quoted = outcome["issue"]
    assert quoted["severity"] == "information" and response.headers["X-Request-Id"] in quoted["diagnostics"]
    return {**outcome, "issue": issues}


def matches(bundle: dict[str, Any]) -> set[str]:
    return {
        entry["resource"]["id"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"
    }


@pytest.mark.parametrize("chain", ["patient.gender", "subject:Patient.gender", "subject.organization.name"])
@pytest.mark.parametrize("prefer", [None, "handling=strict"])
def test_a_chained_search_is_refused_and_names_the_chain(
    api: requests.Session,
    auth: Callable[..., dict[str, str]],
    clinic: dict[str, Any],
    chain: str,
    prefer: str | None,
) -> None:
    # When a search asks for encounters through a chain the server does not support (its chains are
    # tested in test_search_more.py)
    headers = {**auth("practitioner"), **({"Prefer": prefer} if prefer else {})}
    response = api.get("Encounter", headers=headers, params={chain: "Muller"})

    # Then it is a 400 whose issue names the chain and lists what Encounter supports
    [issue] = refusal(response)["issue"]
    assert issue["severity"] == "error" and issue["code"] == "not-supported"
    assert issue["expression"] == [chain]
    assert f"'{chain}'" in issue["diagnostics"]
    assert "subject, subject:Patient, patient, patient:Patient, status, date" in issue["diagnostics"]


@pytest.mark.parametrize(
    "params",
    [
        {"_include": "*"},
        {"_revinclude": "Observation:encounter"},
        {"_elements": "colour"},
        {"_contained": "true"},
        {"_summary": "everything"},
        {"_has:Observation:encounter:code": "1234-5"},
        {"status:text": "finished"},
        {"date:missing": "true"},
        {"colour": "blue"},
        {"patient": ""},
    ],
    ids=lambda params: next(iter(params)),
)
def test_what_encounter_search_does_not_support_is_refused(
    api: requests.Session, auth: Callable[..., dict[str, str]], clinic: dict[str, Any], params: dict[str, str]
) -> None:
    response = api.get("Encounter", headers=auth("auditor"), params=params)

    assert refusal(response)["issue"][0]["expression"] == [next(iter(params))]


def test_lenient_handling_returns_the_unfiltered_search_with_an_outcome_entry(
    api: requests.Session, auth: Callable[..., dict[str, str]], clinic: dict[str, Any]
) -> None:
    # When the chained search is sent with Prefer: handling=lenient
    headers = {**auth("practitioner"), **LENIENT}
    response = api.get("Encounter", headers=headers, params={"patient.gender": "male", "_count": "100"})

    # Then the answer is every patient's encounters: the search without the chain
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert matches(bundle) == set(clinic["encounters"])
    assert bundle["total"] == len(clinic["encounters"])  # the outcome entry is not a match
    # And the self link leaves the chain out
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert parse_qs(urlsplit(self_link).query) == {"_count": ["100"]}
    # And an OperationOutcome entry says the chain was ignored
    outcome_entries = [entry for entry in bundle["entry"] if entry["search"]["mode"] == "outcome"]
    assert len(outcome_entries) == 1
    [issue] = outcome_entries[0]["resource"]["issue"]
    assert (issue["severity"], issue["code"], issue["expression"]) == (
        "warning",
        "not-supported",
        ["patient.gender"],
    )
    assert "ignored" in issue["diagnostics"]
    # And the Bundle and every resource in it are valid FHIR R4
    assert_valid(bundle)
    for entry in bundle["entry"]:
        assert_valid(entry["resource"])


def test_lenient_handling_keeps_the_criteria_it_understands(
    api: requests.Session, auth: Callable[..., dict[str, str]], clinic: dict[str, Any]
) -> None:
    # When a supported criterion comes with an unknown parameter and a made-up status code
    params = {"subject": f"Patient/{clinic['Okafor']}", "status": "planned,made-up", "colour": "blue"}
    response = api.get("Encounter", headers={**auth("auditor"), **LENIENT}, params=params)

    # Then the subject and the real status still filter, and both left-outs are reported
    assert response.status_code == 200, response.text
    bundle = response.json()
    okafor = {ident for ident, family in clinic["encounters"].items() if family == "Okafor"}
    assert matches(bundle) == okafor
    [outcome] = [entry["resource"] for entry in bundle["entry"] if entry["search"]["mode"] == "outcome"]
    assert sorted(issue["expression"][0] for issue in outcome["issue"]) == ["colour", "status"]
    assert_valid(bundle)


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("Encounter", {"status": "made-up"}, "status"),
        ("Encounter", {"status": ",".join(f"made-up-{n}" for n in range(20))}, "status"),
        ("Encounter", {"status": "http://hl7.org/fhir/encounter-status|made-up"}, "status"),
        ("Patient", {"gender": "x"}, "gender"),
    ],
    ids=["one code", "twenty codes", "code of the status system", "gender"],
)
def test_a_code_outside_the_required_value_set_is_refused(
    api: requests.Session,
    auth: Callable[..., dict[str, str]],
    clinic: dict[str, Any],
    path: str,
    params: dict[str, str],
    name: str,
) -> None:
    response = api.get(path, headers=auth("auditor"), params=params)

    issue = refusal(response)["issue"][0]
    assert (issue["code"], issue["expression"]) == ("code-invalid", [name])
    assert "'made-up" in issue["diagnostics"] or "'x'" in issue["diagnostics"]


def test_made_up_codes_under_lenient_handling_match_nothing(
    api: requests.Session, auth: Callable[..., dict[str, str]], clinic: dict[str, Any]
) -> None:
    # When every status code is made up, leniently
    response = api.get(
        "Encounter", headers={**auth("auditor"), **LENIENT}, params={"status": "made-up,other"}
    )

    # Then nothing matches (the criterion is not dropped to match everything) and the codes are reported
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["total"] == 0 and matches(bundle) == set()
    [issue] = bundle["entry"][0]["resource"]["issue"]
    assert "'made-up', 'other' are not status codes" in issue["diagnostics"]
    assert_valid(bundle)


def test_a_status_of_another_code_system_is_valid_and_matches_nothing(
    api: requests.Session, auth: Callable[..., dict[str, str]], clinic: dict[str, Any]
) -> None:
    response = api.get(
        "Encounter", headers=auth("auditor"), params={"status": "http://example.org/other|planned"}
    )

    assert response.status_code == 200, response.text
    assert "entry" not in response.json()


def test_more_than_twenty_values_of_one_parameter_are_refused(
    api: requests.Session, auth: Callable[..., dict[str, str]], clinic: dict[str, Any]
) -> None:
    ids = ",".join(f"id-{n}" for n in range(21))

    issue = refusal(api.get("Encounter", headers=auth("auditor"), params={"_id": ids}))["issue"][0]

    assert (issue["code"], issue["expression"]) == ("too-costly", ["_id"])
