"""Every events/<function>.json, handed to its function's handler, gets the documented answer.

The events are the ones `sam local invoke <LogicalId> -e events/<function>.json` uses. They name the
seed's example ids; here a patient and an encounter are created first (through the create events
themselves, on moto tables made from template.yaml) and the events are rewritten to their ids.
The authorizer's event is checked with a token signed by a key this test serves as a JWKS on loopback.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fhir_api.auth.policy import is_allowed
from fhir_api.auth.tokens import reset_jwks_client
from fhir_api.routes import ROUTES, routes_for_roles
from fhir_api.settings import reset_settings
from local import issuer
from local.lambda_runtime import LambdaContext

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
FUNCTIONS = ROOT / "functions"
# The seed's example ids, which the events carry until a test rewrites them.
EVENT_PATIENT_ID = "65f1234567890abcdef12345"
EVENT_ENCOUNTER_ID = "65f6789012345abcdef67890"
EVENT_SUBSCRIPTION_ID = "65fabc0123456789abcdef01"
# Functions fed by a stream or a queue, not by API Gateway: tests/unit/test_notifications.py runs
# them on their events.
EVENT_DRIVEN = frozenset({"change_stream", "subscription_delivery"})
FHIR_JSON = "application/fhir+json"
TOKEN_ENDPOINT = "https://auth.example.org/oauth2/token"

# The documented answer of each function to its event: status and resourceType of the body.
EXPECTED: dict[str, tuple[int, str]] = {
    "metadata": (200, "CapabilityStatement"),
    "smart_configuration": (200, "SMART configuration"),
    "encounter_create": (201, "Encounter"),
    "encounter_search": (200, "Bundle"),
    "encounter_search_post": (200, "Bundle"),
    "encounter_read": (200, "Encounter"),
    "encounter_update": (200, "Encounter"),
    "encounter_patch": (200, "Encounter"),
    "encounter_validate": (200, "OperationOutcome"),
    "encounter_history": (200, "Bundle"),
    "encounter_vread": (200, "Encounter"),
    "patient_create": (201, "Patient"),
    "patient_search": (200, "Bundle"),
    "patient_search_post": (200, "Bundle"),
    "patient_read": (200, "Patient"),
    "patient_update": (200, "Patient"),
    "patient_patch": (200, "Patient"),
    "patient_validate": (200, "OperationOutcome"),
    "patient_history": (200, "Bundle"),
    "patient_vread": (200, "Patient"),
    # The conditional updates: the visit number matches nothing (created), the MRN the seeded patient
    "encounter_conditional_update": (201, "Encounter"),
    "patient_conditional_update": (200, "Patient"),
    # The admin deletes the encounter; the patient it references cannot be deleted (409 naming it)
    "encounter_delete": (200, "OperationOutcome"),
    "patient_delete": (409, "OperationOutcome"),
    "subscription_create": (201, "Subscription"),
    "subscription_search": (200, "Bundle"),
    "subscription_read": (200, "Subscription"),
    "subscription_update": (200, "Subscription"),
    "fallback": (405, "OperationOutcome"),
    # An auditor's search and read of the audit trail (empty here: nothing was recorded on moto)
    "audit_event_search": (200, "Bundle"),
    "audit_event_read": (404, "OperationOutcome"),
    # A transaction: the create event's patient (found by ifNoneExist) and a new encounter of it
    "bundle": (200, "Bundle"),
}
# Not an API function: the recorder answers CloudWatch Logs deliveries (see its own test below).
RECORDER = "audit_recorder"


@dataclass(frozen=True)
class Seeded:
    """The ids the create events were answered with."""

    patient_id: str
    encounter_id: str
    subscription_id: str = EVENT_SUBSCRIPTION_ID


def load_handler(folder: str) -> Callable[[dict[str, Any], Any], Any]:
    """``handler`` of functions/<folder>/app.py (every function's module is called app)."""
    spec = importlib.util.spec_from_file_location(f"functions_{folder}_app", FUNCTIONS / folder / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], Any] = module.handler
    return handler


def load_event(name: str, seeded: Seeded | None = None) -> dict[str, Any]:
    """events/<name>.json, with the example ids replaced by the seeded ones."""
    text = (EVENTS / f"{name}.json").read_text(encoding="utf-8")
    if seeded is not None:
        text = (
            text.replace(EVENT_PATIENT_ID, seeded.patient_id)
            .replace(EVENT_ENCOUNTER_ID, seeded.encounter_id)
            .replace(EVENT_SUBSCRIPTION_ID, seeded.subscription_id)
        )
    event: dict[str, Any] = json.loads(text)
    return event


def invoke(name: str, seeded: Seeded | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Run the function of events/<name>.json on its event: status, headers and the JSON body."""
    answer = load_handler(name)(load_event(name, seeded), LambdaContext(name))
    assert answer["isBase64Encoded"] is False
    body = json.loads(answer["body"]) if answer["body"] else {}
    return answer["statusCode"], answer["headers"], body


def _created_id(name: str, seeded: Seeded | None = None) -> str:
    status, headers, body = invoke(name, seeded)
    assert status == 201, body
    return str(body["id"])


@pytest.fixture
def seeded(moto_tables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """The template's tables on moto, holding the patient and the encounter of the create events."""
    monkeypatch.setenv("PAGE_TOKEN_SECRET", "unit-test-page-token-secret")
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("TOKEN_ENDPOINT", TOKEN_ENDPOINT)
    reset_settings()
    tables = ["AuditEvents", "Encounters", "Idempotency", "Patients", "Subscriptions", "Versions"]
    assert sorted(moto_tables.values()) == tables
    # The Subscription event's endpoint resolves to a public address (no DNS in unit tests).
    monkeypatch.setattr(
        "fhir_api.notifications.endpoints.socket.getaddrinfo",
        lambda *args, **kwargs: [(2, 1, 6, "", ("93.184.215.14", 443))],
    )
    # The encounter's subject must exist: the patient is created first, then the encounter's
    # event is rewritten to name it.
    patient_id = _created_id("patient_create")
    encounter_id = _created_id("encounter_create", Seeded(patient_id, EVENT_ENCOUNTER_ID))
    subscription_id = _created_id("subscription_create")
    return Seeded(patient_id, encounter_id, subscription_id)


def test_every_function_has_an_event_and_an_expected_answer() -> None:
    # Given the event files and the function folders
    events = {path.stem for path in EVENTS.glob("*.json")}
    folders = {path.parent.name for path in FUNCTIONS.glob("*/app.py")}
    # Then each function has its event, and each event an answer this module checks
    assert events == folders
    assert set(EXPECTED) == folders - {"authorizer", RECORDER} - EVENT_DRIVEN
    assert {route.function for route in ROUTES} <= set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_function_answers_its_event(name: str, seeded: Seeded) -> None:
    # Given the stored patient and encounter, and the function's event naming them
    expected_status, expected_type = EXPECTED[name]
    # When the function's handler gets its event
    status, headers, body = invoke(name, seeded)
    # Then it answers with the documented status and a FHIR body (the SMART configuration is plain JSON)
    assert status == expected_status, body
    if name == "smart_configuration":
        assert headers["Content-Type"].startswith("application/json")
        assert body["token_endpoint"] == TOKEN_ENDPOINT
        return
    assert headers["Content-Type"].startswith(FHIR_JSON)
    assert body["resourceType"] == expected_type
    # And no cache may keep it (it may hold PHI), nor a browser sniff another type
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    _check_details(name, headers, body, seeded)


def _check_details(name: str, headers: dict[str, str], body: dict[str, Any], seeded: Seeded) -> None:
    resource_type = name.split("_")[0].capitalize()
    resource_id = {
        "Encounter": seeded.encounter_id,
        "Patient": seeded.patient_id,
        "Subscription": seeded.subscription_id,
    }.get(resource_type)
    interaction = name.split("_", 1)[-1]
    if name == "metadata":
        assert body["fhirVersion"].startswith("4.0")
    elif name == "fallback":
        # POST on a known path: 405 naming the methods the path takes
        assert {method.strip() for method in headers["Allow"].split(",")} == {"GET", "PUT", "PATCH", "DELETE"}
        assert body["issue"][0]["severity"] == "error"
    elif interaction == "create":
        # The create event was sent once by the fixture with the same Idempotency-Key: the same answer
        assert body["id"] == resource_id
        assert headers["Location"].endswith(f"/api/fhir/{resource_type}/{resource_id}/_history/1")
        assert headers["ETag"] == 'W/"1"'
        assert body["meta"]["versionId"] == "1"
    elif interaction in ("read", "vread"):
        assert body["id"] == resource_id
        assert body["meta"]["versionId"] == "1"
        assert headers["ETag"] == 'W/"1"'
    elif interaction in ("update", "patch"):
        assert body["id"] == resource_id
        assert body["meta"]["versionId"] == "2"
        assert headers["ETag"] == 'W/"2"'
    elif interaction == "validate":
        # The auditor's $validate of the create event's resource: valid, and nothing stored
        assert [issue["severity"] for issue in body["issue"]] == ["information", "information"]
    elif interaction == "conditional_update":
        assert headers["Location"].endswith(f"/_history/{body['meta']['versionId']}")
        if resource_type == "Patient":
            assert (body["id"], body["meta"]["versionId"]) == (resource_id, "2")
    elif interaction == "delete" and resource_type == "Encounter":
        assert headers["ETag"] == 'W/"2"'
        assert body["issue"][0]["severity"] == "information"
    elif interaction == "delete":
        assert f"Encounter/{seeded.encounter_id}" in body["issue"][0]["diagnostics"]
    elif interaction == "history":
        assert body["type"] == "history"
        assert [entry["resource"]["id"] for entry in body["entry"]] == [resource_id]
    elif name == "bundle":
        assert body["type"] == "transaction-response"
        patient, encounter = body["entry"]
        assert patient["response"]["status"] == "200 OK" and patient["resource"]["id"] == seeded.patient_id
        assert encounter["response"]["status"] == "201 Created"
        assert encounter["resource"]["subject"]["reference"] == f"Patient/{seeded.patient_id}"
    elif interaction == "search":
        assert body["type"] == "searchset"
        assert body["total"] == 1
        assert [entry["resource"]["id"] for entry in body["entry"]] == [resource_id]
        assert any(link["relation"] == "self" for link in body["link"])
    if body["resourceType"] == "Encounter":
        assert body["subject"]["reference"] == f"Patient/{seeded.patient_id}"
    if body["resourceType"] == "Subscription":
        # The channel's header value is a secret: never shown
        assert body["channel"]["header"] == ["Authorization: ******"]


def test_the_recorder_stores_its_delivery_once_and_an_auditor_reads_it(seeded: Seeded) -> None:
    # Given the recorder's event: a CloudWatch Logs delivery of a function's audit line and an access-log
    # line of a request API Gateway refused itself
    event = load_event(RECORDER)
    # When the recorder gets it twice (CloudWatch Logs delivers at least once)
    first = load_handler(RECORDER)(event, LambdaContext(RECORDER))
    again = load_handler(RECORDER)(event, LambdaContext(RECORDER))
    # Then both lines became AuditEvents, once
    assert first == {"stored": 2, "duplicates": 0, "skipped": 0}
    assert again == {"stored": 0, "duplicates": 2, "skipped": 0}
    # And an auditor finds the practitioner's read by the encounter it read
    search = load_event("audit_event_search")
    search["multiValueQueryStringParameters"] = {"entity": [f"Encounter/{EVENT_ENCOUNTER_ID}"]}
    answer = load_handler("audit_event_search")(search, LambdaContext("audit_event_search"))
    bundle = json.loads(answer["body"])
    assert answer["statusCode"] == 200, bundle
    (entry,) = bundle["entry"]
    assert entry["resource"]["subtype"][0]["code"] == "read"
    assert entry["resource"]["agent"][0]["altId"] == "clinic-practitioner-1"
    # And reads it by its id
    read = load_event("audit_event_read")
    read["pathParameters"] = {"id": entry["resource"]["id"]}
    answer = load_handler("audit_event_read")(read, LambdaContext("audit_event_read"))
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == entry["resource"]


def test_the_encounter_create_event_is_the_seed_example(seeded: Seeded) -> None:
    # Given the create event as sam local invoke sends it
    event = load_event("encounter_create")
    document = json.loads(event["body"])
    # Then it carries the seed's example Encounter, its subject being the example patient
    assert document["subject"] == {"reference": f"Patient/{EVENT_PATIENT_ID}"}
    assert document["class"]["code"] == "AMB" and document["status"] == "finished"
    # And with the subject rewritten to a stored patient it was accepted as is
    status, _, body = invoke("encounter_read", seeded)
    assert status == 200
    assert body["period"] == document["period"] and body["type"] == document["type"]


class _JwksHandler(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature of the base
        """Keep the test output quiet."""


@pytest.fixture
def jwks_issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A signing key whose JWKS is served on 127.0.0.1, and the authorizer configured to trust it."""
    key = issuer.generate_key()
    handler = type("Jwks", (_JwksHandler,), {"body": json.dumps({"keys": [issuer.public_jwk(key)]}).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TOKEN_ISSUER", issuer.ISSUER)
    monkeypatch.setenv("TOKEN_AUDIENCE", issuer.AUDIENCE)
    monkeypatch.setenv("JWKS_URL", f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json")
    monkeypatch.setenv("ROLES_CLAIM", "roles")
    monkeypatch.setenv("TOKEN_ALGORITHMS", "RS256")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "encounter-api")
    reset_settings()
    reset_jwks_client()
    try:
        yield key
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        reset_settings()
        reset_jwks_client()


def test_the_authorizer_refuses_the_placeholder_token_of_its_event(jwks_issuer: Any) -> None:
    # Given the authorizer event as it is stored (a placeholder, not a token)
    event = load_event("authorizer")
    # When the authorizer gets it
    with pytest.raises(Exception, match="^Unauthorized$"):
        load_handler("authorizer")(event, LambdaContext("authorizer"))
    # Then API Gateway is told "Unauthorized", its 401


def test_the_authorizer_allows_every_route_of_the_tokens_role(jwks_issuer: Any) -> None:
    # Given the authorizer event carrying a valid admin token of the trusted issuer
    event = load_event("authorizer")
    event["authorizationToken"] = "Bearer " + issuer.mint("admin", sub="clinic-admin", key=jwks_issuer)
    # When the authorizer gets it
    answer = load_handler("authorizer")(event, LambdaContext("authorizer"))
    # Then the policy allows every route an admin may call, so a cached answer fits any of them
    assert answer["principalId"] == "clinic-admin"
    assert {key: answer["context"][key] for key in ("sub", "roles", "scopes")} == {
        "sub": "clinic-admin",
        "roles": "admin",
        "scopes": "",
    }
    assert answer["context"]["exp"] > time.time()
    prefix = event["methodArn"].split("/", 1)[0] + "/" + event["methodArn"].split("/")[1]
    for route in routes_for_roles(["admin"]):
        concrete = route.path.replace("{id}", "x1").replace("{vid}", "1")
        assert is_allowed(answer["policyDocument"], f"{prefix}/{route.method}{concrete}"), route.function
