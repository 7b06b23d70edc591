"""AuditEvent search on DynamoDB Local: every criterion, dates over months, the newest first, pages
that return each event once, and the read budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fhir_api.auditevents.events import audit_event, occurrence
from fhir_api.auditevents.store import AuditEventStore
from tests.integration.conftest import LocalTables
from tests.integration.handler_calls import Answer, call, ids_of, next_link

NOW = datetime.now(UTC).replace(microsecond=0)


def _line(n: int, recorded: datetime, **changes: Any) -> dict[str, Any]:
    record = {
        "time": recorded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": f"req-{n}",
        "sub": "dr-1",
        "roles": ["practitioner"],
        "action": "read",
        "resource_type": "Encounter",
        "resource_id": "enc-1",
        "version_id": "1",
        "status": 200,
        "source": "function",
        "interaction": "read",
        "patients": ["pat-1"],
        "client_address": "203.0.113.7",
        "method": "GET",
    }
    record.update(changes)
    return {"message": "audit", "audit": record}


@pytest.fixture
def trail(ddb_tables: LocalTables) -> dict[str, str]:
    """Seven AuditEvents over three months: request number -> AuditEvent id."""
    store = AuditEventStore(ddb_tables.client, ddb_tables.names["AuditEventsTable"])
    lines = {
        1: _line(1, NOW - timedelta(days=70)),
        2: _line(2, NOW - timedelta(days=40), version_id="2", resource_id="enc-1"),
        3: _line(3, NOW - timedelta(days=35), sub="dr-2", resource_id="enc-2", patients=["pat-2"]),
        4: _line(4, NOW - timedelta(days=3), interaction="update", status=412),
        5: _line(
            5,
            NOW - timedelta(days=2),
            interaction="search-type",
            resource_id=None,
            patients=["pat-1", "pat-2"],
        ),
        6: _line(
            6, NOW - timedelta(hours=5), resource_type="Patient", resource_id="pat-1", patients=["pat-1"]
        ),
        7: _line(7, NOW - timedelta(minutes=1), sub="auth0|nurse", status=403, patients=[]),
    }
    ids = {}
    for n, line in lines.items():
        seen = occurrence(line)
        assert seen is not None
        assert store.record(audit_event(seen, "encounter-api-fhir"))
        ids[str(n)] = seen.event_id
    return ids


def _search(roles: str = "auditor", **params: str | list[str]) -> Answer:
    query = {name: value if isinstance(value, list) else [value] for name, value in params.items()}
    return call("audit_event_search", "GET", "/api/fhir/AuditEvent", query=query, roles=roles)


def _found(trail: dict[str, str], **params: str | list[str]) -> list[str]:
    """The request numbers of every match, following next links."""
    answer = _search(**params)
    assert answer.status == 200, answer.text
    found = ids_of(answer.body)
    while link := next_link(answer.body):
        answer = call(
            "audit_event_search",
            "GET",
            "/api/fhir/AuditEvent",
            query=parse_qs(urlsplit(link).query),
            roles="auditor",
        )
        assert answer.status == 200, answer.text
        found += ids_of(answer.body)
    by_id = {event_id: n for n, event_id in trail.items()}
    return [by_id[event_id] for event_id in found]


def test_without_criteria_every_event_newest_first(trail: dict[str, str]) -> None:
    assert _found(trail) == ["7", "6", "5", "4", "3", "2", "1"]
    assert _found(trail, _sort="date") == ["1", "2", "3", "4", "5", "6", "7"]
    assert _found(trail, _count="2") == ["7", "6", "5", "4", "3", "2", "1"]


def test_entity_finds_every_version_of_a_resource_and_only_its_type(trail: dict[str, str]) -> None:
    assert _found(trail, entity="Encounter/enc-1") == ["7", "4", "2", "1"]
    assert _found(trail, entity="enc-2") == ["3"]
    assert _found(trail, entity="Patient/enc-1") == []
    assert _found(trail, entity="Patient/pat-1") == ["6", "5", "4", "2", "1"]


def test_patient_agent_altid_action_outcome_and_subtype(trail: dict[str, str]) -> None:
    assert _found(trail, patient="Patient/pat-2") == ["5", "3"]
    assert _found(trail, patient="pat-1,pat-2", subtype="search-type") == ["5"]
    assert _found(trail, agent="dr-2") == ["3"]
    assert _found(trail, altid="auth0\\|nurse") == ["7"]
    assert _found(trail, agent="auth0|nurse") == ["7"]  # an unescaped '|' still finds it
    assert _found(trail, action="U") == ["4"]
    assert _found(trail, outcome="4") == ["7", "4"]
    assert _found(trail, outcome="http://hl7.org/fhir/audit-event-outcome|0", action="E") == ["5"]
    assert _found(trail, subtype="http://hl7.org/fhir/restful-interaction|read", entity="enc-1") == [
        "7",
        "2",
        "1",
    ]


def test_dates_with_prefixes_over_several_months(trail: dict[str, str]) -> None:
    def day(days: int) -> str:
        return (NOW - timedelta(days=days)).strftime("%Y-%m-%d")

    assert _found(trail, date=f"ge{day(3)}") == ["7", "6", "5", "4"]
    assert _found(trail, date=f"lt{day(35)}") == ["2", "1"]
    assert _found(trail, date=[f"gt{day(41)}", f"le{day(3)}"]) == ["4", "3", "2"]
    assert _found(trail, date=day(40)) == ["2"]
    assert _found(trail, date=f"ge{day(50)}", entity="Encounter/enc-1") == ["7", "4", "2"]
    six_hours_ago = (NOW - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _found(trail, date=f"sa{six_hours_ago}") == ["7", "6"]


def test_a_small_read_budget_ends_pages_early_and_paging_still_returns_each_once(
    trail: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhir_api.settings import reset_settings

    monkeypatch.setenv("SEARCH_READ_BUDGET", "10")
    reset_settings()
    first = _search()
    assert first.status == 200 and next_link(first.body) and "total" not in first.body
    assert len(ids_of(first.body)) < 7
    assert _found(trail) == ["7", "6", "5", "4", "3", "2", "1"]
    refused = _search(_summary="count")
    assert refused.status == 400 and refused.body["issue"][0]["code"] == "too-costly"


def test_totals_the_practitioners_refusal_and_bad_values(trail: dict[str, str]) -> None:
    counted = _search(_summary="count", entity="enc-1").body
    assert counted["total"] == 4 and "entry" not in counted
    accurate = _search(_total="accurate", _count="2").body
    assert accurate["total"] == 7 and len(accurate["entry"]) == 2 and next_link(accurate)
    assert _found(trail, _total="accurate", _count="2") == ["7", "6", "5", "4", "3", "2", "1"]
    assert _search(entity="enc-2").body["total"] == 1
    assert _search(roles="practitioner").status == 403
    for params in ({"action": "X"}, {"date": "yesterday"}, {"entity": "Observation/1"}, {"_sort": "agent"}):
        answer = _search(**params)
        assert answer.status == 400, params
        assert answer.body["resourceType"] == "OperationOutcome"
    lenient = call(
        "audit_event_search",
        "GET",
        "/api/fhir/AuditEvent",
        query={"name": ["x"], "entity": ["enc-2"]},
        roles="auditor",
        headers={"Prefer": "handling=lenient"},
    )
    assert lenient.status == 200
    assert [entry["search"]["mode"] for entry in lenient.body["entry"]] == ["match", "outcome"]
