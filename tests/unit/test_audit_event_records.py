"""Audit lines as FHIR AuditEvents (BALP conventions), the recorder's deliveries, and the local
pipeline's retries: no database here but moto's and a fake store."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_api import audit
from fhir_api.auditevents import events, recorder
from fhir_api.auditevents.events import audit_event, occurrence
from fhir_api.auditevents.store import AuditEventStore
from local.audit_trail import AuditTrail
from tests._fhir_schema import assert_valid

OBSERVER = "encounter-api-fhir"


def function_line(**changes: Any) -> dict[str, Any]:
    record = {
        "time": "2026-03-15T09:45:00.123Z",
        "request_id": "req-1",
        "sub": "auth0|dr-1",
        "roles": ["practitioner"],
        "action": "read",
        "resource_type": "Encounter",
        "resource_id": "enc-1",
        "version_id": "3",
        "status": 200,
        "outcome": "success",
        "source": "function",
        "client_id": None,
        "scopes": [],
        "interaction": "read",
        "patients": ["pat-1"],
        "query": [],
        "client_address": "203.0.113.7",
        "method": "GET",
    }
    record.update(changes)
    return {"level": "INFO", "message": "audit", "audit": record}


def access_line(**changes: Any) -> dict[str, Any]:
    line = {
        "time": "15/Mar/2026:09:46:00 +0000",
        "time_epoch": "1773567960000",
        "request_id": "gw-1",
        "sub": "-",
        "method": "GET",
        "route": "/api/fhir/Patient/{id}",
        "path": "/Prod/api/fhir/Patient/pat-9",
        "status": "401",
        "error": "UNAUTHORIZED",
        "source_ip": "198.51.100.4",
        "source": "api-gateway",
    }
    line.update(changes)
    return line


def event_of(line: dict[str, Any]) -> dict[str, Any]:
    seen = occurrence(line)
    assert seen is not None
    return audit_event(seen, OBSERVER)


# --- content -------------------------------------------------------------------------------------


def test_a_read_names_the_version_its_patient_the_user_and_the_server() -> None:
    event = event_of(function_line())
    assert_valid(event)
    assert event["type"] == {
        "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
        "code": "rest",
        "display": "RESTful Operation",
    }
    assert event["subtype"][0]["system"] == "http://hl7.org/fhir/restful-interaction"
    assert event["subtype"][0]["code"] == "read"
    assert (event["action"], event["outcome"], event["recorded"]) == ("R", "0", "2026-03-15T09:45:00.123Z")
    user, server = event["agent"]
    assert user["who"] == {"identifier": {"value": "auth0|dr-1"}} and user["altId"] == "auth0|dr-1"
    assert user["requestor"] is True and user["role"] == [{"text": "practitioner"}]
    assert user["network"] == {"address": "203.0.113.7", "type": "2"}
    assert server["who"] == {"display": OBSERVER} and server["requestor"] is False
    assert event["source"]["observer"] == {"display": OBSERVER}
    resource, patient = event["entity"]
    assert resource["what"] == {"reference": "Encounter/enc-1/_history/3"}
    assert resource["role"]["code"] == "4"
    assert patient["what"] == {"reference": "Patient/pat-1"} and patient["role"]["code"] == "1"


@pytest.mark.parametrize(
    ("interaction", "status", "action", "outcome"),
    [
        ("create", 201, "C", "0"),
        ("update", 412, "U", "4"),
        ("vread", 404, "R", "4"),
        ("history-instance", 200, "R", "0"),
        ("search-type", 200, "E", "0"),
        ("read", 403, "R", "4"),
        ("read", 503, "R", "8"),
        ("capabilities", 200, "R", "0"),
        ("patch", 200, "U", "0"),
        ("patch", 422, "U", "4"),
        ("operation", 200, "E", "0"),
    ],
)
def test_action_and_outcome_follow_the_interaction_and_status(
    interaction: str, status: int, action: str, outcome: str
) -> None:
    event = event_of(function_line(interaction=interaction, status=status))
    assert (event["action"], event["outcome"]) == (action, outcome)
    assert event["subtype"][0]["code"] == interaction
    assert event["outcomeDesc"].startswith(f"HTTP {status}")
    assert_valid(event)


def test_a_search_names_every_patient_returned_and_only_the_parameter_names() -> None:
    line = function_line(
        interaction="search-type",
        resource_id=None,
        version_id=None,
        patients=["pat-1", "pat-2"],
        query=["date", "subject"],
    )
    event = event_of(line)
    assert_valid(event)
    assert events.patients(event) == ["pat-1", "pat-2"]
    (query,) = [entity for entity in event["entity"] if entity["role"]["code"] == "24"]
    assert base64.b64decode(query["query"]).decode() == "Encounter?date&subject"
    assert event["action"] == "E"


def test_a_machine_client_is_a_second_agent_with_its_scopes() -> None:
    event = event_of(function_line(client_id="lab-system", scopes=["system/Encounter.rs"], roles=[]))
    assert_valid(event)
    client = event["agent"][1]
    assert client["who"] == {"identifier": {"value": "lab-system"}} and client["requestor"] is False
    assert client["role"] == [{"text": "system/Encounter.rs"}]
    assert events.agents(event)[:2] == ["auth0|dr-1", "lab-system"]


def test_a_patient_read_names_the_patient_once() -> None:
    event = event_of(function_line(resource_type="Patient", resource_id="pat-1", version_id=None))
    assert [entity["what"]["reference"] for entity in event["entity"]] == ["Patient/pat-1"]
    assert event["entity"][0]["role"]["code"] == "1"


def test_a_request_no_route_serves_keeps_its_method() -> None:
    event = event_of(function_line(interaction=None, action="unknown", method="DELETE", status=405))
    assert "subtype" not in event and event["action"] == "D" and event["outcome"] == "4"
    assert_valid(event)


def test_a_gateway_refusal_becomes_an_event_and_a_function_answer_in_the_access_log_does_not() -> None:
    event = event_of(access_line())
    assert_valid(event)
    assert event["recorded"] == "2026-03-15T09:46:00.000Z"
    assert event["outcome"] == "4" and event["outcomeDesc"] == "HTTP 401: unauthorized"
    assert event["subtype"][0]["code"] == "read"
    assert event["entity"][0]["what"] == {"reference": "Patient/pat-9"}
    user = event["agent"][0]
    assert "who" not in user and user["network"]["address"] == "198.51.100.4"
    # A cached policy's denial names the token's principal
    denied = event_of(access_line(sub="nurse-1", status="403", error="ACCESS_DENIED", time_epoch="-"))
    assert denied["agent"][0]["altId"] == "nurse-1" and denied["recorded"] == "2026-03-15T09:46:00.000Z"
    # A request a function answered is its function's to record
    assert occurrence(access_line(error="-", status="200")) is None
    assert occurrence(access_line(error="", status="200")) is None


def test_the_authorizers_own_records_and_other_lines_are_not_events() -> None:
    authorizer = function_line(source="authorizer")
    assert occurrence(authorizer) is None
    assert occurrence({"message": "request failed"}) is None
    assert occurrence(function_line(time="yesterday")) is None


def test_the_same_line_always_gives_the_same_id_and_another_request_another() -> None:
    first, again = occurrence(function_line()), occurrence(function_line(status=500))
    other = occurrence(function_line(request_id="req-2"))
    assert first is not None and again is not None and other is not None
    assert first.event_id == again.event_id != other.event_id
    gateway = occurrence(access_line(request_id="req-1"))
    assert gateway is not None and gateway.event_id != first.event_id


def test_an_audit_record_keeps_ids_and_parameter_names_and_drops_anything_else() -> None:
    record = audit.audit(
        "req-1",
        "dr-1",
        ("practitioner",),
        "search",
        "Encounter",
        None,
        200,
        interaction="search-type",
        patients=["pat-1", "pat-1", "Chalmers Peter", "pat-2"],
        query=["subject", "name=Chalmers", "date"],
        client_address="not an address",
        method="get; drop",
    )
    assert record["patients"] == ["pat-1", "pat-2"]
    assert record["query"] == ["date", "subject"]
    assert record["client_address"] is None and record["method"] is None
    assert record["interaction"] == "search-type"


def test_terms_are_each_entity_patient_agent_and_the_month() -> None:
    event = event_of(function_line())
    assert events.terms(event) == [
        "entity|enc-1",
        "patient|pat-1",
        "agent|auth0|dr-1",
        "month|2026-03",
    ]


# --- the recorder ------------------------------------------------------------------------------------


def delivery(*lines: dict[str, Any], message_type: str = "DATA_MESSAGE") -> dict[str, Any]:
    payload = {
        "messageType": message_type,
        "logGroup": "/aws/lambda/encounter-api/EncounterReadFunction",
        "logEvents": [
            {"id": str(n), "timestamp": 0, "message": json.dumps(line)} for n, line in enumerate(lines)
        ]
        + [{"id": "x", "timestamp": 0, "message": "START RequestId: 1 Version: 7"}],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


def test_a_delivery_is_decoded_and_its_control_message_ignored() -> None:
    assert recorder.subscription_lines(delivery(function_line(), access_line())) == [
        function_line(),
        access_line(),
    ]
    assert recorder.subscription_lines(delivery(function_line(), message_type="CONTROL_MESSAGE")) == []
    with pytest.raises(ValueError, match="awslogs"):
        recorder.subscription_lines({"Records": []})


def test_the_recorder_stores_each_event_once_with_its_retention(moto_tables: dict[str, str]) -> None:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    store = AuditEventStore(client, moto_tables["AuditEventsTable"], retention_days=10)
    lines = [function_line(), function_line(), access_line(), {"message": "other"}]
    assert recorder.record_lines(lines, store, OBSERVER) == recorder.Recorded(2, 0, 2)
    assert recorder.record_lines(lines, store, OBSERVER) == recorder.Recorded(0, 2, 2)
    seen = occurrence(function_line())
    assert seen is not None
    stored = json.loads(store.get(seen.event_id) or "{}")
    assert stored["meta"]["versionId"] == "1" and stored["recorded"] == "2026-03-15T09:45:00.123Z"
    item = client.get_item(TableName=moto_tables["AuditEventsTable"], Key={"id": {"S": seen.event_id}})[
        "Item"
    ]
    recorded = 1773567900  # 2026-03-15T09:45:00Z
    assert int(item["expiresAt"]["N"]) == recorded + 10 * 86400


# --- the local pipeline ------------------------------------------------------------------------------


class FlakyStore:
    """Fails ``failures`` times, then stores."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.stored: list[str] = []

    def record(self, event: dict[str, Any]) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("throttled")
        self.stored.append(event["id"])
        return True


def test_the_local_pipeline_retries_a_failed_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("local.audit_trail.RETRY_SECONDS", 0.01)
    store = FlakyStore(failures=1)
    trail = AuditTrail(store, OBSERVER, tmp_path / "dead.jsonl")  # type: ignore[arg-type]
    trail.add(function_line())
    trail.flush()
    trail.close()
    assert len(store.stored) == 1
    assert not (tmp_path / "dead.jsonl").exists()


def test_the_local_pipeline_keeps_what_it_cannot_store_as_dead_letters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("local.audit_trail.RETRY_SECONDS", 0.01)
    store = FlakyStore(failures=10)
    trail = AuditTrail(store, OBSERVER, tmp_path / "dead.jsonl")  # type: ignore[arg-type]
    trail.add(function_line())
    trail.flush()
    trail.close()
    assert store.stored == []
    (kept,) = (tmp_path / "dead.jsonl").read_text().splitlines()
    assert json.loads(kept) == function_line()


# --- the CapabilityStatement -------------------------------------------------------------------------


def test_the_capability_statement_lists_audit_event_read_and_search_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fhir_api.api.http import Request
    from fhir_api.api.interactions import capabilities
    from fhir_api.auditevents.search import PARAMETERS
    from fhir_api.settings import Settings

    request = Request(
        "GET", "/api/fhir/metadata", {}, {}, {}, None, "r-1", "", (), "https://api.example.org/api/fhir"
    )
    statement = capabilities(request, Settings()).body
    assert isinstance(statement, dict)
    assert_valid(statement)
    (entry,) = [item for item in statement["rest"][0]["resource"] if item["type"] == "AuditEvent"]
    assert [interaction["code"] for interaction in entry["interaction"]] == ["read", "search-type"]
    assert [parameter["name"] for parameter in entry["searchParam"]] == list(PARAMETERS)
