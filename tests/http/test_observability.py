"""What an operator sees of a request, through the local gateway: its request id in the answer and in
every log line, and the CloudWatch metrics (EMF records) the function prints as Lambda would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests._examples import minimal_encounter
from tests._logs import CapturedLogs, captured_logs

pytestmark = pytest.mark.slow

FHIR_JSON = "application/fhir+json"
EMF_NAMESPACE = "EncounterApi"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[CapturedLogs]:
    """The lines logged during the test."""
    with captured_logs(caplog, capsys) as captured:
        yield captured


def emf_records(stdout: str) -> list[dict[str, Any]]:
    """The Embedded Metric Format records among the lines printed to standard output."""
    records = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            if "CloudWatchMetrics" in record.get("_aws", {}):
                records.append(record)
    return records


def value(record: dict[str, Any], name: str) -> float:
    """A metric's value in a record (EMF allows a list of values)."""
    raw = record[name]
    return float(sum(raw)) if isinstance(raw, list) else float(raw)


def metric_names(record: dict[str, Any]) -> set[str]:
    return {
        metric["Name"] for directive in record["_aws"]["CloudWatchMetrics"] for metric in directive["Metrics"]
    }


def test_a_refused_read_names_its_request_id_in_the_header_the_outcome_and_the_logs(
    api: Any, auth: Callable[..., dict[str, str]], logs: CapturedLogs
) -> None:
    # Given a read of an encounter that does not exist
    # When it is answered
    answer = api.get("Encounter/no-such-encounter", headers=auth("practitioner"))

    # Then the answer, its OperationOutcome and the function's log lines all name the same request id
    assert answer.status_code == 404
    request_id = answer.headers["X-Request-Id"]
    assert request_id
    issues = answer.json()["issue"]
    assert issues[0]["code"] == "not-found"
    quoted = [issue for issue in issues if issue["severity"] == "information"]
    assert quoted and request_id in quoted[0]["diagnostics"]
    lines = [line for line in logs.json_lines() if line.get("correlation_id") == request_id]
    assert any(line.get("message") == "audit" for line in lines), logs.json_lines()


def test_a_successful_answer_carries_its_request_id(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    # Given two searches
    first = api.get("Encounter?status=finished", headers=auth("practitioner"))
    second = api.get("Encounter?status=finished", headers=auth("practitioner"))

    # Then each answer names its own request
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Request-Id"] and second.headers["X-Request-Id"]
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_each_request_prints_its_metrics_by_function_and_status_class(
    api: Any, auth: Callable[..., dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a patient created, an encounter created, and a read of an unknown encounter
    headers = {**auth("practitioner"), "Content-Type": FHIR_JSON}
    capsys.readouterr()
    patient = api.post(
        "Patient", json={"resourceType": "Patient", "name": [{"family": "Metric"}]}, headers=headers
    )
    assert patient.status_code == 201
    encounter = api.post("Encounter", json=minimal_encounter(patient.json()["id"]), headers=headers)
    assert encounter.status_code == 201
    missing = api.get("Encounter/not-there", headers=headers)
    assert missing.status_code == 404

    # Then the output holds one EMF record per request, in the API's namespace, by function and status class
    records = [
        record for record in emf_records(capsys.readouterr().out) if "Requests" in metric_names(record)
    ]
    by_function = {(record["function"], record["status_class"]): record for record in records}
    assert {("patient_create", "2xx"), ("encounter_create", "2xx"), ("encounter_read", "4xx")} <= set(
        by_function
    )
    for record in records:
        directive = record["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == EMF_NAMESPACE
        assert set(directive["Dimensions"][0]) == {"service", "function", "status_class"}
        assert value(record, "Requests") == 1.0
        assert value(record, "Latency") >= 0
    # and a create counts as a create, a failed read does not
    assert value(by_function[("encounter_create", "2xx")], "Creates") == 1.0
    assert "Creates" not in metric_names(by_function[("encounter_read", "4xx")])


def test_a_version_conflict_is_counted(
    api: Any, auth: Callable[..., dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a patient updated with a stale If-Match
    headers = {**auth("practitioner"), "Content-Type": FHIR_JSON}
    patient = api.post(
        "Patient", json={"resourceType": "Patient", "name": [{"family": "Stale"}]}, headers=headers
    )
    document = patient.json()
    capsys.readouterr()
    stale = api.put(f"Patient/{document['id']}", json=document, headers={**headers, "If-Match": 'W/"7"'})

    # Then the 412 is counted among the conflicts
    assert stale.status_code == 412
    records = [
        record for record in emf_records(capsys.readouterr().out) if "Conflicts" in metric_names(record)
    ]
    assert [(record["function"], record["status_class"]) for record in records] == [("patient_update", "4xx")]


def test_a_refused_token_is_counted_by_reason(
    api: Any, auth: Callable[..., dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an expired token and a valid one
    capsys.readouterr()
    expired = api.get("Encounter?status=finished", headers=auth("practitioner", ttl=-600))
    # (a subject of its own, so that no policy cached for an earlier test's token answers for it)
    allowed = api.get(
        "Encounter?status=finished", headers=auth("practitioner", sub=f"metrics-{uuid.uuid4()}")
    )

    # Then the authorizer counts one refusal, by its reason, and one token let through
    assert expired.status_code == 401 and allowed.status_code == 200
    records = [
        record for record in emf_records(capsys.readouterr().out) if record["function"] == "authorizer"
    ]
    refused = [record for record in records if "RefusedTokens" in metric_names(record)]
    assert [record["reason"] for record in refused] == ["token expired"]
    assert any("AuthorizedTokens" in metric_names(record) for record in records)


def test_the_authorizer_logs_under_its_own_invocation_id(
    api: Any, auth: Callable[..., dict[str, str]], logs: CapturedLogs
) -> None:
    # Given an auditor's write, which the authorizer refuses
    refused = api.post(
        "Patient", json={"resourceType": "Patient"}, headers={**auth("auditor"), "Content-Type": FHIR_JSON}
    )

    # Then the authorizer's audit record carries its own invocation id, not the API request's
    assert refused.status_code == 403
    lines = [line for line in logs.json_lines() if line.get("audit", {}).get("source") == "authorizer"]
    assert len(lines) == 1
    record_id = lines[0]["audit"]["request_id"]
    assert record_id and lines[0]["correlation_id"] == record_id
    assert record_id != refused.headers["x-amzn-RequestId"]


def test_a_refusal_by_the_gateway_names_its_request_id(api: Any) -> None:
    # When a request without a token is refused by API Gateway itself
    refused = api.get("Encounter/any-id")

    # Then the OperationOutcome quotes the request id API Gateway answers in x-amzn-RequestId
    assert refused.status_code == 401
    request_id = refused.headers["x-amzn-RequestId"]
    assert refused.json()["issue"][-1]["diagnostics"] == f"Request id: {request_id}"
