"""Real FHIR client libraries against the local API over HTTP: fhirpy (SyncFHIRClient) and fhirclient
(the SMART on FHIR Python client). Whatever these clients send, the API must understand.

What they send: fhirpy posts and puts with ``Content-Type: application/json`` and ``Accept:
application/fhir+json``, follows ``next`` links for ``fetch_all()``, counts with
``_count=0&_totalMethod=count`` and refreshes with ``If-None-Match: <versionId>``. fhirclient sends
``application/fhir+json`` both ways plus ``Accept-Charset: UTF-8``, puts the resource with the
server's ``meta``, parses every answer into its strict R4 models and follows ``next`` links.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle as SmartBundle
from fhirclient.models.capabilitystatement import CapabilityStatement as SmartCapabilityStatement
from fhirclient.models.encounter import Encounter as SmartEncounter
from fhirclient.models.operationoutcome import OperationOutcome as SmartOperationOutcome
from fhirclient.models.patient import Patient as SmartPatient
from fhirclient.server import FHIRPermissionDeniedException, FHIRUnauthorizedException
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, OperationOutcome, ResourceNotFound

from local.stack import LocalStack

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
AMBULATORY = {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"}
REQUEST_TIMEOUT_SECONDS = 30


def encounter_body(patient_id: str, start: str, status: str = "planned") -> dict[str, Any]:
    """An Encounter as a client would write it."""
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": dict(AMBULATORY),
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start},
    }


# -- fhirpy ---------------------------------------------------------------------------------------


def test_fhirpy_creates_a_patient_and_encounters_and_pages_through_them(
    fhirpy_client: Callable[[str], SyncFHIRClient],
) -> None:
    # Given a practitioner's fhirpy client, a patient and five of their encounters
    client = fhirpy_client("practitioner")
    patient = client.resource("Patient", name=[{"family": "Fhirpy", "given": ["Paging"]}], gender="female")
    patient.save()
    assert patient.id
    created = []
    for day in range(10, 15):
        encounter = client.resource("Encounter", **encounter_body(patient.id, f"2024-03-{day}T09:00:00Z"))
        encounter.save()
        created.append(encounter)

    # When it fetches every match two at a time (fetch_all follows the next links)
    found = client.resources("Encounter").search(subject=f"Patient/{patient.id}").limit(2).fetch_all()

    # Then it gets each encounter once, as the server stored it
    assert sorted(resource.id for resource in found) == sorted(encounter.id for encounter in created)
    assert all(resource["meta"]["versionId"] == "1" for resource in found)
    assert all(resource["subject"]["reference"] == f"Patient/{patient.id}" for resource in found)


def test_fhirpy_count_matches_the_number_of_matches(fhirpy_client: Callable[[str], SyncFHIRClient]) -> None:
    # Given a patient with three encounters
    client = fhirpy_client("admin")
    patient = client.resource("Patient", name=[{"family": "Counted"}])
    patient.save()
    for day in range(1, 4):
        client.resource("Encounter", **encounter_body(patient.id, f"2024-05-0{day}T08:00:00Z")).save()

    # When fhirpy counts them (it sends _count=0&_totalMethod=count)
    total = client.resources("Encounter").search(subject=f"Patient/{patient.id}").count()
    by_status = client.resources("Encounter").search(subject=patient.id, status="planned").count()
    none = client.resources("Encounter").search(subject=patient.id, status="finished").count()

    # Then the totals are right
    assert (total, by_status, none) == (3, 3, 0)


def test_fhirpy_pages_through_a_lenient_search_and_is_refused_a_strict_one(
    local_stack: LocalStack, token: Callable[..., str]
) -> None:
    # Given a patient with three encounters, and fhirpy clients with and without Prefer: handling=lenient
    if local_stack.gateway is not None:
        local_stack.gateway.activate()
    strict = SyncFHIRClient(
        local_stack.base_url,
        authorization=f"Bearer {token('practitioner')}",
        requests_config={"timeout": REQUEST_TIMEOUT_SECONDS},
    )
    lenient = SyncFHIRClient(
        local_stack.base_url,
        authorization=f"Bearer {token('practitioner')}",
        extra_headers={"Prefer": "handling=lenient"},
        requests_config={"timeout": REQUEST_TIMEOUT_SECONDS},
    )
    patient = strict.resource("Patient", name=[{"family": "Lenient"}])
    patient.save()
    created = []
    for day in range(1, 4):
        encounter = strict.resource("Encounter", **encounter_body(patient.id, f"2024-06-0{day}T08:00:00Z"))
        encounter.save()
        created.append(encounter.id)

    # When each searches them with a chain the server does not support, two per page
    def search(client: SyncFHIRClient) -> list[Any]:
        query = client.resources("Encounter").search(
            subject=patient.id, **{"subject:Patient.gender": "unknown"}
        )
        return query.limit(2).fetch_all()

    # Then the strict search raises the server's OperationOutcome naming the chain
    with pytest.raises(OperationOutcome) as raised:
        search(strict)
    assert raised.value.resource["issue"][0]["expression"] == ["subject:Patient.gender"]
    # And the lenient one follows the next links to every encounter, leaving the outcome entry aside
    assert sorted(resource.id for resource in search(lenient)) == sorted(created)


def test_fhirpy_updates_and_reads_a_version_back(fhirpy_client: Callable[[str], SyncFHIRClient]) -> None:
    # Given an encounter created through fhirpy
    client = fhirpy_client("practitioner")
    patient = client.resource("Patient", name=[{"family": "Versioned"}])
    patient.save()
    encounter = client.resource("Encounter", **encounter_body(patient.id, "2024-03-15T09:00:00Z"))
    encounter.save()
    assert encounter["meta"]["versionId"] == "1"

    # When it moves the encounter forward and saves it (a PUT of the whole resource)
    encounter["status"] = "arrived"
    encounter.save()

    # Then the answer is version 2, a read gives version 2, and version 1 is still readable as it was
    assert encounter["meta"]["versionId"] == "2"
    current = client.reference("Encounter", encounter.id).to_resource()
    assert (current["status"], current["meta"]["versionId"]) == ("arrived", "2")
    first = client.execute(f"Encounter/{encounter.id}/_history/1", method="get")
    assert (first["status"], first["meta"]["versionId"]) == ("planned", "1")
    history = client.execute(f"Encounter/{encounter.id}/_history", method="get")
    assert [entry["resource"]["meta"]["versionId"] for entry in history["entry"]] == ["2", "1"]
    encounter.refresh()  # fhirpy sends If-None-Match with the bare version id
    assert encounter["meta"]["versionId"] == "2"


def test_fhirpy_raises_the_servers_operation_outcome(fhirpy_client: Callable[[str], SyncFHIRClient]) -> None:
    # Given an encounter whose subject does not exist
    client = fhirpy_client("practitioner")
    orphan = client.resource("Encounter", **encounter_body("no-such-patient", "2024-03-15T09:00:00Z"))

    # When fhirpy saves it
    with pytest.raises(OperationOutcome) as raised:
        orphan.save()

    # Then the error carries the server's OperationOutcome, naming the subject
    outcome = raised.value.resource
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("Encounter.subject" in issue.get("expression", []) for issue in outcome["issue"])


def test_fhirpy_sees_not_found_and_forbidden(fhirpy_client: Callable[[str], SyncFHIRClient]) -> None:
    # Given an auditor's client (reads only) and an id nobody created
    auditor = fhirpy_client("auditor")

    # When it reads the unknown id and tries to create a patient
    # Then fhirpy reports 404 and 403 as its own exceptions
    with pytest.raises(ResourceNotFound):
        auditor.reference("Patient", "does-not-exist").to_resource()
    with pytest.raises(ForbiddenError):
        auditor.resource("Patient", name=[{"family": "Refused"}]).save()


# -- fhirclient (SMART on FHIR) --------------------------------------------------------------------


def test_fhirclient_parses_the_capability_statement(smart: Callable[[str], smart_client.FHIRClient]) -> None:
    # Given a fhirclient client
    client = smart("auditor")

    # When it reads the CapabilityStatement into its strict R4 model
    statement = SmartCapabilityStatement.read_from("metadata", client.server)

    # Then it parses and lists both resource types
    assert statement.fhirVersion.startswith("4.0")
    assert {resource.type for resource in statement.rest[0].resource} >= {"Encounter", "Patient"}


def test_fhirclient_creates_searches_updates_and_reads_a_version(
    smart: Callable[[str], smart_client.FHIRClient],
) -> None:
    # Given a practitioner's fhirclient client holding a bearer token
    client = smart("practitioner")
    assert client.ready
    created = SmartPatient({"name": [{"family": "Smart", "given": ["Client"]}], "gender": "male"}).create(
        client.server
    )
    assert created is not None
    patient_id = created["id"]
    encounter_ids = set()
    for day in range(20, 25):
        answer = SmartEncounter(encounter_body(patient_id, f"2024-04-{day}T10:00:00Z")).create(client.server)
        assert answer is not None
        encounter_ids.add(answer["id"])

    # When it searches two per page with Encounter.where(...) and perform_resources (next links followed)
    search = SmartEncounter.where(struct={"subject": f"Patient/{patient_id}", "_count": "2"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found = search.perform_resources(client.server)
    pages = list(search.perform_iter(client.server))

    # Then every encounter comes back once, parsed into R4 models, over three pages
    assert sorted(resource.id for resource in found) == sorted(encounter_ids)
    assert all(isinstance(resource, SmartEncounter) for resource in found)
    assert len(pages) == 3 and all(isinstance(page, SmartBundle) for page in pages)

    # When it reads one, moves it forward and updates it
    encounter = SmartEncounter.read(found[0].id, client.server)
    encounter.status = "arrived"
    updated = encounter.update(client.server)

    # Then the update is version 2, and version 1 reads back as it was
    assert updated is not None and updated["meta"]["versionId"] == "2"
    first = SmartEncounter.read_from(f"Encounter/{encounter.id}/_history/1", client.server)
    assert (first.meta.versionId, first.status) == ("1", "planned")
    current = SmartEncounter.read(encounter.id, client.server)
    assert (current.meta.versionId, current.status) == ("2", "arrived")


def test_fhirclient_parses_the_outcome_entry_of_a_lenient_search(
    smart: Callable[[str], smart_client.FHIRClient],
) -> None:
    # Given a fhirclient client that prefers lenient handling, and a patient with three encounters
    client = smart("practitioner")
    client.server.session.headers["Prefer"] = "handling=lenient"
    created = SmartPatient({"name": [{"family": "Lenient"}]}).create(client.server)
    assert created is not None
    patient_id = created["id"]
    for day in range(10, 13):
        answer = SmartEncounter(encounter_body(patient_id, f"2024-06-{day}T10:00:00Z")).create(client.server)
        assert answer is not None

    # When it searches with a modifier the server does not support, two per page
    search = SmartEncounter.where(struct={"subject": patient_id, "status:text": "planned", "_count": "2"})
    pages = list(search.perform_iter(client.server))

    # Then every page parses into its strict R4 models: three encounters, and the outcome of the first page
    resources = [entry.resource for page in pages for entry in page.entry or []]
    assert len(pages) == 2
    assert sum(isinstance(resource, SmartEncounter) for resource in resources) == 3
    [outcome] = [resource for resource in resources if isinstance(resource, SmartOperationOutcome)]
    assert outcome.issue[0].severity == "warning"
    assert outcome.issue[0].expression == ["status:text"]


def test_fhirclient_without_a_valid_token_is_refused(
    smart: Callable[[str], smart_client.FHIRClient], local_stack: LocalStack
) -> None:
    # Given a fhirclient client with an auditor's token and one with a token that is not a JWT
    auditor = smart("auditor")
    stranger = smart_client.FHIRClient(
        state={
            "app_id": "encounter-api-tests",
            "server": {
                "base_uri": f"{local_stack.base_url}/",
                "auth_type": "oauth2",
                "auth": {"access_token": "not-a-token"},
            },
        }
    )

    # When they create a patient / search
    # Then the server's 403 and 401 surface as fhirclient's exceptions
    with pytest.raises(FHIRPermissionDeniedException):
        SmartPatient({"name": [{"family": "Refused"}]}).create(auditor.server)
    with pytest.raises(FHIRUnauthorizedException):
        SmartPatient.where(struct={"family": "Refused"}).perform_iter(stranger.server).__next__()
