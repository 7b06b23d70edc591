"""``make seed`` (python -m local.seed) against the local stack: run twice, the second run changes
nothing, and the sample has every Encounter class and every status of the lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from fhir_api.resources.lifecycle import STATUS_ORDER
from local import seed
from local.dynamodb import free_port
from local.stack import LocalStack
from tests._examples import V3_ACT_CODE
from tests.http.conftest import ApiSession

# The classes and statuses a clinic's sample must show (the API page's classes; the whole lifecycle).
CLASSES = ("AMB", "EMER", "IMP", "VR")


def _counts(api: requests.Session, headers: dict[str, str]) -> dict[str, Any]:
    """How many seed patients and encounters the API holds, and the version of each encounter."""
    patients = 0
    for patient in seed.PATIENTS:
        found = api.get("Patient", headers=headers, params={"identifier": f"{seed.MRN_SYSTEM}|{patient.mrn}"})
        assert found.status_code == 200, found.text
        patients += found.json()["total"]
    encounters = api.get("Encounter", headers=headers, params={"_summary": "count"})
    assert encounters.status_code == 200, encounters.text
    versions = {}
    for patient in seed.PATIENTS:
        (patient_id,) = _patient_ids(api, headers, patient.mrn)
        bundle = api.get(
            "Encounter", headers=headers, params={"subject": f"Patient/{patient_id}", "_count": 100}
        )
        for entry in bundle.json().get("entry") or []:
            resource = entry["resource"]
            versions[seed.visit_number(resource)] = resource["meta"]["versionId"]
    return {"patients": patients, "encounters": encounters.json()["total"], "versions": versions}


def _patient_ids(api: requests.Session, headers: dict[str, str], mrn: str) -> list[str]:
    bundle = api.get("Patient", headers=headers, params={"identifier": f"{seed.MRN_SYSTEM}|{mrn}"}).json()
    return [entry["resource"]["id"] for entry in bundle.get("entry") or []]


@pytest.fixture(scope="module")
def seeded_twice(local_stack: LocalStack) -> dict[str, Any]:
    """The reports of two runs, and what the API held after each."""
    headers = {"Authorization": f"Bearer {local_stack.token('auditor')}"}
    with ApiSession(local_stack.base_url) as api:
        first = seed.seed(local_stack.base_url)
        after_first = _counts(api, headers)
        # One encounter per page: the second run must page through a patient's encounters to find them
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(seed, "PAGE_SIZE", 1)
            second = seed.seed(local_stack.base_url)
        after_second = _counts(api, headers)
    return {"first": first, "second": second, "after_first": after_first, "after_second": after_second}


def test_the_first_run_loads_the_whole_sample(seeded_twice: dict[str, Any]) -> None:
    first = seeded_twice["first"]
    # Then every patient and encounter is created, and each encounter walked through its history
    assert (first.patients_created, first.patients_found) == (len(seed.PATIENTS), 0)
    assert (first.encounters_created, first.encounters_found) == (len(seed.ENCOUNTERS), 0)
    assert first.updates == sum(len(sample.steps) - 1 for sample in seed.ENCOUNTERS)
    counts = seeded_twice["after_first"]
    assert counts["patients"] == len(seed.PATIENTS)
    assert counts["encounters"] == len(seed.ENCOUNTERS)
    # And each encounter's version is one per status it went through
    assert counts["versions"] == {sample.visit: str(len(sample.steps)) for sample in seed.ENCOUNTERS}


def test_the_second_run_changes_nothing(seeded_twice: dict[str, Any]) -> None:
    second = seeded_twice["second"]
    # Then it finds everything and creates or updates nothing
    assert (second.patients_created, second.patients_found) == (0, len(seed.PATIENTS))
    assert (second.encounters_created, second.encounters_found) == (0, len(seed.ENCOUNTERS))
    assert second.updates == 0
    # And the API holds exactly what it held after the first run
    assert seeded_twice["after_second"] == seeded_twice["after_first"]


@pytest.mark.parametrize("code", CLASSES)
def test_every_class_is_in_the_sample(
    seeded_twice: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]], code: str
) -> None:
    response = api.get("Encounter", headers=auth("auditor"), params={"class": f"{V3_ACT_CODE}|{code}"})
    assert response.status_code == 200, response.text
    assert response.json()["total"] >= 1


@pytest.mark.parametrize("status", STATUS_ORDER)
def test_every_status_of_the_lifecycle_is_in_the_sample(
    seeded_twice: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]], status: str
) -> None:
    response = api.get("Encounter", headers=auth("auditor"), params={"status": status, "_total": "accurate"})
    assert response.status_code == 200, response.text
    assert response.json()["total"] >= 1


def test_an_encounter_keeps_its_history_from_planned_to_finished(
    seeded_twice: dict[str, Any], api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # Given the sample's first encounter, booked, then seen through to the end
    (sample,) = [e for e in seed.ENCOUNTERS if e.visit == "V-24-0001"]
    (patient_id,) = _patient_ids(api, auth("auditor"), sample.mrn)
    bundle = api.get("Encounter", headers=auth("auditor"), params={"subject": f"Patient/{patient_id}"}).json()
    (current,) = [e["resource"] for e in bundle["entry"] if seed.visit_number(e["resource"]) == sample.visit]
    # When its history is read
    history = api.get(f"Encounter/{current['id']}/_history", headers=auth("auditor")).json()
    # Then it went planned, arrived, in-progress, finished (newest first), and ends with a period end
    statuses = [entry["resource"]["status"] for entry in history["entry"]]
    assert statuses == ["finished", "in-progress", "arrived", "planned"]
    assert current["period"]["end"] == sample.end
    assert [h["status"] for h in current["statusHistory"]] == ["planned", "arrived", "in-progress"]


def test_the_command_prints_one_line_and_names_make_run_when_nothing_answers(
    seeded_twice: dict[str, Any], local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the command runs against the stack, and against a port where nothing listens
    assert seed.main(["--port", str(local_stack.port)]) == 0
    answered = capsys.readouterr()
    assert seed.main(["--port", str(free_port())]) == 1
    refused = capsys.readouterr()
    # Then it reports what it did on one line, and otherwise says how to start the API
    # (the stack serves in this process: its functions' metric records are on the same output)
    printed = [line for line in answered.out.splitlines() if not line.startswith('{"_aws"')]
    assert len(printed) == 1 and "0 created" in printed[0]
    assert refused.err.count("\n") == 1 and "make run" in refused.err
