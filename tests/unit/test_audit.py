"""The audit trail: one JSON record per request through the functions' logger, and no PHI in any log
line, neither from the functions nor from the authorizer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_api import audit
from fhir_api.auth import authorizer
from fhir_api.auth.tokens import InvalidToken, Principal
from fhir_api.settings import reset_settings
from local.lambda_runtime import LambdaContext
from tests._logs import CapturedLogs, captured_logs

EVENTS = Path(__file__).resolve().parents[2] / "events"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/Prod"
TOKEN = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ"
AUDIT_FIELDS = {
    "time",
    "request_id",
    "sub",
    "roles",
    "action",
    "resource_type",
    "resource_id",
    "version_id",
    "status",
    "outcome",
    "source",
}

# What the sample events carry about the patient: none of it may reach a log line.
PHI = ("Chalmers", "Peter", "James", "1974-12-25", "MRN-0042", "hospital.example.org/mrn", "male")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[CapturedLogs]:
    """The lines logged during the test."""
    with captured_logs(caplog, capsys) as captured:
        yield captured


def assert_no_phi(text: str) -> None:
    leaked = [value for value in PHI if value in text]
    assert not leaked, f"PHI in the logs: {leaked}"


# --- the record --------------------------------------------------------------------------------------


def test_a_request_leaves_one_structured_record(logs: CapturedLogs) -> None:
    # Given / When a read is audited
    audit.audit("req-1", "user-1", ("practitioner",), "read", "Encounter", "enc-1", 200)

    # Then one JSON line holds every field of the record
    records = logs.audit_records()
    assert len(records) == 1
    record = records[0]
    assert AUDIT_FIELDS <= record.keys()
    assert record["request_id"] == "req-1"
    assert record["sub"] == "user-1"
    assert record["roles"] == ["practitioner"]
    assert record["action"] == "read"
    assert (record["resource_type"], record["resource_id"]) == ("Encounter", "enc-1")
    assert (record["status"], record["outcome"], record["source"]) == (200, "success", "function")
    assert record["time"].endswith("Z")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "success"),
        (201, "success"),
        (304, "success"),
        (401, "denied"),
        (403, "denied"),
        (404, "failure"),
        (412, "failure"),
        (422, "failure"),
        (500, "error"),
        (503, "error"),
    ],
)
def test_the_outcome_follows_the_status(status: int, outcome: str) -> None:
    # Given / When / Then
    assert audit.outcome(status) == outcome


def test_values_that_are_not_ids_are_not_logged(logs: CapturedLogs) -> None:
    # Given a path "id" that is really a name, a made-up action and role, a non-numeric version
    audit.audit(
        "req-2",
        "user-2",
        ["admin", "Peter Chalmers", 7],
        "purge",
        "Person",
        "Peter Chalmers",
        404,
        version_id="1974-12-25",
    )

    # When / Then only what is an id or a known code is kept
    record = logs.audit_records()[0]
    assert record["resource_id"] is None
    assert record["version_id"] is None
    assert record["action"] == "unknown"
    assert record["resource_type"] is None
    assert record["roles"] == ["admin"]
    assert_no_phi(logs.everything())


def test_every_routes_action_is_an_audit_action() -> None:
    # Given / When / Then the actions of the route table are the ones the issues name (and history)
    assert audit.ACTIONS == {
        "create",
        "read",
        "vread",
        "search",
        "update",
        "patch",
        "delete",
        "history",
        "operation",
        "transaction",
        "batch",
    }


def test_a_machine_clients_record_names_the_client_and_its_scopes(logs: CapturedLogs) -> None:
    # Given / When a search by a client-credentials token is audited
    audit.audit(
        "req-5",
        "integration-1",
        (),
        "search",
        "Encounter",
        None,
        200,
        client_id="integration-1",
        scopes=("system/Encounter.rs", "system/Patient.rs?name=Peter Chalmers", "x" * 200),
    )

    # Then the record names the client and the scopes as written, dropping what no scope looks like
    (record,) = logs.audit_records()
    assert record["client_id"] == "integration-1"
    assert record["scopes"] == ["system/Encounter.rs"]


# --- the authorizer's refusals -----------------------------------------------------------------------


LAMBDA_CONTEXT = LambdaContext("AuthorizerFunction", "inv-9")


def authorizer_event(method: str, path: str) -> dict[str, Any]:
    return {"type": "TOKEN", "authorizationToken": TOKEN, "methodArn": f"{METHOD_ARN}/{method}{path}"}


def test_a_refused_token_leaves_a_401_record_without_the_token(
    logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a token refused as expired (its verified subject known)
    def refuse(_header: str | None) -> Principal:
        raise InvalidToken("token expired", sub="user-3")

    monkeypatch.setattr(authorizer, "verify", refuse)

    # When the authorizer runs for a vread
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event("GET", "/api/fhir/Patient/p-7/_history/2"), LAMBDA_CONTEXT)

    # Then one audit record says who, what and 401, and no line holds any part of the token
    [record] = logs.audit_records()
    assert record["sub"] == "user-3"
    assert (record["action"], record["resource_type"], record["resource_id"]) == ("vread", "Patient", "p-7")
    assert (record["version_id"], record["status"], record["outcome"]) == ("2", 401, "denied")
    assert (record["source"], record["request_id"]) == ("authorizer", "inv-9")
    assert record["reason"] == "token expired"
    text = logs.everything()
    assert not any(part in text for part in TOKEN.removeprefix("Bearer ").split("."))


def test_an_unexpected_failure_leaves_a_record_without_its_message(
    logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given verification that fails with a message quoting the patient
    def explode(_header: str | None) -> Principal:
        raise RuntimeError("Peter Chalmers 1974-12-25")

    monkeypatch.setattr(authorizer, "verify", explode)

    # When the authorizer runs
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event("POST", "/api/fhir/Patient"), LAMBDA_CONTEXT)

    # Then the refusal is audited and the message is nowhere
    [record] = logs.audit_records()
    assert (record["status"], record["action"], record["sub"]) == (401, "create", None)
    assert_no_phi(logs.everything())


def test_a_role_refusal_leaves_a_403_record(logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an auditor's valid token on an update
    monkeypatch.setattr(authorizer, "verify", lambda _header: Principal("user-4", ("auditor",)))

    # When the authorizer runs
    answer = authorizer.lambda_handler(authorizer_event("PUT", "/api/fhir/Encounter/e-1"), LAMBDA_CONTEXT)

    # Then the policy refuses it and the refusal is audited with the caller's identity
    assert answer["principalId"] == "user-4"
    [record] = logs.audit_records()
    assert (record["sub"], record["roles"], record["status"]) == ("user-4", ["auditor"], 403)
    assert record["action"] == "update"
    assert (record["resource_type"], record["resource_id"]) == ("Encounter", "e-1")


def test_an_allowed_request_is_left_to_the_function_to_audit(
    logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a practitioner's valid token on a read
    monkeypatch.setattr(authorizer, "verify", lambda _header: Principal("user-5", ("practitioner",)))

    # When the authorizer allows it
    authorizer.lambda_handler(authorizer_event("GET", "/api/fhir/Encounter/e-1"), LAMBDA_CONTEXT)

    # Then it writes no record (the function does, with the status it answers)
    assert logs.audit_records() == []


def test_claims_of_a_verified_token_are_not_logged(
    logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a token whose claims carry a name and a birth date
    principal = Principal("user-6", ("receptionist",), {"name": "Peter Chalmers", "birthdate": "1974-12-25"})
    monkeypatch.setattr(authorizer, "verify", lambda _header: principal)

    # When the authorizer refuses its role
    authorizer.lambda_handler(authorizer_event("GET", "/api/fhir/Patient"), LAMBDA_CONTEXT)

    # Then the record names the subject only
    assert logs.audit_records()[0]["sub"] == "user-6"
    assert_no_phi(logs.everything())


# --- the functions: PHI in, none in the logs ---------------------------------------------------------


def lambda_context(function: str) -> LambdaContext:
    return LambdaContext(function, f"{function}-invocation")


def sample_event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / f"{name}.json").read_text()))


@pytest.fixture
def api_functions(
    moto_tables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., dict[str, Any]]:
    """Call a function's handler (``fhir_api.api.handler.make_handler``) on moto tables."""
    from fhir_api.api.handler import make_handler

    monkeypatch.setenv("PAGE_TOKEN_SECRET", "audit-test-secret")
    reset_settings()

    def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        return make_handler(function)(event, lambda_context(function))

    return invoke


def test_function_logs_hold_no_phi(api_functions: Callable[..., dict[str, Any]], logs: CapturedLogs) -> None:
    # Given a patient full of PHI created, searched by identifier, read, updated and read at a version
    created = api_functions("patient_create", sample_event("patient_create"))
    assert created["statusCode"] == 201, created["body"]
    patient = json.loads(created["body"])
    search = api_functions("patient_search", sample_event("patient_search"))
    read = sample_event("patient_read")
    read["pathParameters"] = {"id": patient["id"]}
    read["path"] = f"/api/fhir/Patient/{patient['id']}"
    update = sample_event("patient_update")
    update["pathParameters"] = {"id": patient["id"]}
    update["path"] = read["path"]
    changed = copy.deepcopy(patient)
    changed.pop("meta", None)
    changed["telecom"] = [{"system": "phone", "value": "555-0100"}]
    update["body"] = json.dumps(changed)
    update["headers"] = {key: value for key, value in update["headers"].items() if key.lower() != "if-match"}
    update["multiValueHeaders"] = {key: [value] for key, value in update["headers"].items()}

    # When the functions answer
    answers = [search, api_functions("patient_read", read), api_functions("patient_update", update)]

    # Then each request left one audit record, with ids only, and no log line holds the patient's data
    assert [answer["statusCode"] for answer in answers] == [200, 200, 200], [a["body"] for a in answers]
    records = logs.audit_records()
    assert [record["action"] for record in records] == ["create", "search", "read", "update"]
    assert all(record["sub"] == "clinic-admin" for record in records)
    assert records[0]["resource_id"] == patient["id"]
    assert records[2]["resource_id"] == patient["id"]
    text = logs.everything()
    assert_no_phi(text)
    assert "555-0100" not in text


def test_an_encounters_create_and_update_name_its_patient(
    api_functions: Callable[..., dict[str, Any]], logs: CapturedLogs
) -> None:
    # Given a patient, and an encounter of theirs created through the function
    patient = json.loads(api_functions("patient_create", sample_event("patient_create"))["body"])
    create = sample_event("encounter_create")
    encounter = json.loads(create["body"])
    encounter["subject"] = {"reference": f"Patient/{patient['id']}"}
    create["body"] = json.dumps(encounter)
    created = api_functions("encounter_create", create)
    assert created["statusCode"] == 201, created["body"]
    stored = json.loads(created["body"])

    # When it is updated
    update = sample_event("encounter_update")
    update["pathParameters"] = {"id": stored["id"]}
    update["path"] = f"/api/fhir/Encounter/{stored['id']}"
    update["body"] = json.dumps({**stored, "status": "finished"})
    updated = api_functions("encounter_update", update)
    assert updated["statusCode"] == 200, updated["body"]

    # Then the audit records of both name the encounter and its patient
    records = [record for record in logs.audit_records() if record["resource_type"] == "Encounter"]
    assert [(record["action"], record["resource_id"]) for record in records] == [
        ("create", stored["id"]),
        ("update", stored["id"]),
    ]
    assert [record["patients"] for record in records] == [[patient["id"]], [patient["id"]]]


def test_a_function_audits_the_machine_client_it_served(
    api_functions: Callable[..., dict[str, Any]], logs: CapturedLogs
) -> None:
    # Given a patient search by a client-credentials token: no role, a SMART scope, a client id
    event = sample_event("patient_search")
    context = event["requestContext"]["authorizer"]
    context.update(principalId="lab-1", sub="lab-1", roles="", scopes="system/Patient.rs", client_id="lab-1")

    # When the function answers it
    answer = api_functions("patient_search", event)

    # Then the scope allowed it, and the audit record names the client and the scope
    assert answer["statusCode"] == 200, answer["body"]
    (record,) = logs.audit_records()
    assert (record["sub"], record["roles"], record["client_id"]) == ("lab-1", [], "lab-1")
    assert record["scopes"] == ["system/Patient.rs"]
