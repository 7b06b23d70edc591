"""The audit trail through the local gateway: what a practitioner read and searched, and what an auditor
was refused, are found by an auditor by entity, by patient and by date within 60 seconds; only
auditors and admins read it, and nobody writes it through the API."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.stack import LocalStack
from tests._fhir_schema import assert_valid
from tests.http.conftest import ApiSession

VISIBLE_WITHIN_SECONDS = 60
PRACTITIONER = "dr-audit-watched"
AUDITOR = "auditor-on-duty"


def _events(api: ApiSession, headers: dict[str, str], query: str) -> list[dict[str, Any]]:
    answer = api.get(f"AuditEvent?{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return [entry["resource"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"]


def _eventually(
    find: Callable[[], list[dict[str, Any]]], wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first event ``find`` returns that is ``wanted``, looking again until 60 s have passed."""
    deadline = time.monotonic() + VISIBLE_WITHIN_SECONDS
    while True:
        found = [event for event in find() if wanted(event)]
        if found or time.monotonic() > deadline:
            assert found, "no such AuditEvent within 60 s"
            return found[0]
        time.sleep(0.2)


def _agent_subs(event: dict[str, Any]) -> set[str]:
    return {agent.get("altId") for agent in event["agent"] if agent.get("altId")}


def _subtype(event: dict[str, Any]) -> str | None:
    return next((coding["code"] for coding in event.get("subtype", [])), None)


def _references(event: dict[str, Any]) -> set[str]:
    return {entity["what"]["reference"] for entity in event.get("entity", []) if "what" in entity}


@pytest.fixture(scope="module")
def watched(local_stack: LocalStack, records: dict[str, str]) -> dict[str, Any]:
    """A practitioner's read and search, and an auditor's refused write, made once for the module."""
    import requests

    base = local_stack.base_url
    started = datetime.now(UTC) - timedelta(seconds=1)
    practitioner = {"Authorization": f"Bearer {local_stack.token('practitioner', sub=PRACTITIONER)}"}
    auditor = {"Authorization": f"Bearer {local_stack.token('auditor', sub=AUDITOR)}"}
    read = requests.get(f"{base}/Encounter/{records['Encounter']}", headers=practitioner, timeout=30)
    assert read.status_code == 200
    search = requests.get(
        f"{base}/Encounter?subject=Patient/{records['Patient']}&status=planned",
        headers=practitioner,
        timeout=30,
    )
    assert search.status_code == 200 and search.json()["entry"]
    refused = requests.post(
        f"{base}/Encounter",
        json={"resourceType": "Encounter"},
        headers={**auditor, "Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert refused.status_code == 403
    return {"since": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "auditor": auditor, "practitioner": practitioner}


def test_a_practitioners_read_is_found_by_entity_and_by_patient(
    api: ApiSession, records: dict[str, str], watched: dict[str, Any]
) -> None:
    auditor = watched["auditor"]
    encounter = f"Encounter/{records['Encounter']}"

    # When an auditor searches by the encounter the practitioner read
    event = _eventually(
        lambda: _events(api, auditor, f"entity={encounter}"),
        lambda e: _subtype(e) == "read" and PRACTITIONER in _agent_subs(e),
    )

    # Then the AuditEvent says who read which version of what, of whose data, with which outcome
    assert event["action"] == "R" and event["outcome"] == "0"
    assert event["type"]["code"] == "rest"
    assert f"{encounter}/_history/1" in _references(event)
    assert f"Patient/{records['Patient']}" in _references(event)
    user = next(agent for agent in event["agent"] if agent["requestor"])
    assert user["who"]["identifier"]["value"] == PRACTITIONER
    assert [role["text"] for role in user["role"]] == ["practitioner"]
    assert user["network"]["address"] == "127.0.0.1"
    assert event["source"]["observer"]["display"]
    assert_valid(event)

    # And the same event is found by the patient, and read by its id
    by_patient = _events(api, auditor, f"patient=Patient/{records['Patient']}&subtype=read")
    assert event["id"] in {e["id"] for e in by_patient}
    read = api.get(f"AuditEvent/{event['id']}", headers=auditor)
    assert read.status_code == 200 and read.json() == event
    assert read.headers["ETag"] == 'W/"1"' and read.headers["Last-Modified"]


def test_a_practitioners_search_names_each_patient_returned_and_no_search_value(
    api: ApiSession, records: dict[str, str], watched: dict[str, Any]
) -> None:
    # When an auditor looks for the searches that returned the patient's data
    event = _eventually(
        lambda: _events(api, watched["auditor"], f"patient={records['Patient']}&action=E"),
        lambda e: PRACTITIONER in _agent_subs(e),
    )

    # Then it is the practitioner's search, naming the patient; its query holds parameter names only
    assert _subtype(event) == "search-type"
    assert f"Patient/{records['Patient']}" in _references(event)
    (query,) = [entity for entity in event["entity"] if entity["role"]["code"] == "24"]
    text = base64.b64decode(query["query"]).decode()
    assert text == "Encounter?status&subject"
    assert records["Patient"] not in text and "planned" not in text
    assert_valid(event)


def test_an_auditors_refused_write_is_found_by_date(api: ApiSession, watched: dict[str, Any]) -> None:
    # When an auditor searches the refusals since the module began
    event = _eventually(
        lambda: _events(api, watched["auditor"], f"date=ge{watched['since']}&outcome=4&action=C"),
        lambda e: AUDITOR in _agent_subs(e),
    )

    # Then API Gateway's refusal of the auditor's create is there, though no function ever saw it
    assert event["outcome"] == "4" and "403" in event["outcomeDesc"]
    assert _subtype(event) == "create"
    assert "Encounter" not in " ".join(_references(event))  # a create names no resource yet
    assert_valid(event)

    # And a date range that ends before it leaves it out
    before = _events(api, watched["auditor"], f"date=lt{watched['since']}&outcome=4&action=C")
    assert event["id"] not in {e["id"] for e in before}


def test_searches_page_newest_first_with_signed_next_links(
    api: ApiSession, records: dict[str, str], watched: dict[str, Any]
) -> None:
    auditor = watched["auditor"]
    _eventually(
        lambda: _events(api, auditor, f"agent={PRACTITIONER}"), lambda e: _subtype(e) == "search-type"
    )
    first = api.get(f"AuditEvent?agent={PRACTITIONER}&_count=1", headers=auditor).json()
    (next_link,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = api.get(next_link, headers=auditor).json()
    newer, older = first["entry"][0]["resource"], second["entry"][0]["resource"]
    assert newer["id"] != older["id"] and newer["recorded"] >= older["recorded"]
    # A page token of another query is refused
    tampered = api.get(next_link.replace(f"agent={PRACTITIONER}", "agent=someone-else"), headers=auditor)
    assert tampered.status_code == 400


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_search_the_trail(
    api: ApiSession, auth: Callable[..., dict[str, str]], role: str
) -> None:
    assert api.get("AuditEvent?_count=1", headers=auth(role)).status_code == 200


def test_practitioners_may_not_read_the_trail(
    api: ApiSession, auth: Callable[..., dict[str, str]], records: dict[str, str]
) -> None:
    for path in ("AuditEvent", "AuditEvent?patient=" + records["Patient"], "AuditEvent/any-id"):
        answer = api.get(path, headers=auth("practitioner"))
        assert answer.status_code == 403, path
        assert answer.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "AuditEvent"),
        ("PUT", "AuditEvent/x1"),
        ("DELETE", "AuditEvent/x1"),
        ("PATCH", "AuditEvent/x1"),
    ],
)
@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_nobody_writes_the_trail_through_the_api(
    api: ApiSession, auth: Callable[..., dict[str, str]], method: str, path: str, role: str
) -> None:
    answer = api.request(
        method,
        path,
        json={"resourceType": "AuditEvent"},
        headers={**auth(role), "Content-Type": "application/fhir+json"},
    )
    assert answer.status_code == 405, answer.text
    assert "GET" in answer.headers["Allow"]


def test_an_unknown_search_parameter_is_refused_and_an_unknown_id_is_404(
    api: ApiSession, auth: Callable[..., dict[str, str]]
) -> None:
    refused = api.get("AuditEvent?name=Chalmers", headers=auth("auditor"))
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["expression"] == ["name"]
    assert api.get("AuditEvent/0000000000", headers=auth("auditor")).status_code == 404
