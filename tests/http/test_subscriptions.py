"""rest-hook Subscriptions end to end through the local gateway: an admin registers one on a local HTTP
receiver, the change stream of DynamoDB Local feeds the same matcher and deliverer as in AWS, and the
receiver sees exactly the matching writes, with the channel's header, and nothing once it is off.
The change events of the same writes are checked against their published schema."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
import pytest

from tests._change_events import EVENT_SCHEMA
from tests.http.conftest import ApiSession
from tests.http.route_calls import FHIR_JSON, encounter_body, patient_body, subscription_body

ARRIVAL_TIMEOUT_SECONDS = 30


@dataclass
class Arrival:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A local rest-hook endpoint: records every POST, answers 200."""

    def __init__(self) -> None:
        self.arrivals: queue.Queue[Arrival] = queue.Queue()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                arrivals.put(Arrival(self.path, dict(self.headers.items()), body, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def next(self) -> Arrival:
        return self.arrivals.get(timeout=ARRIVAL_TIMEOUT_SECONDS)

    def until(self, path: str) -> list[Arrival]:
        """Every arrival up to and including the first on ``path``."""
        seen = []
        while True:
            arrival = self.next()
            seen.append(arrival)
            if arrival.path == path:
                return seen


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def admin(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return {**auth("admin"), "Content-Type": FHIR_JSON}


def _create(api: ApiSession, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(body["resourceType"], json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _update(api: ApiSession, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = api.put(f"{body['resourceType']}/{body['id']}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _finished(patient_id: str) -> dict[str, Any]:
    return {**encounter_body(patient_id), "status": "finished"}


def test_a_rest_hook_gets_exactly_the_matching_writes_with_its_header_until_it_is_off(
    api: ApiSession, admin: dict[str, str], receiver: Receiver, local_stack: Any
) -> None:
    # Given two patients, and a Subscription on the finished encounters of the first
    patient = _create(api, admin, patient_body("Hook"))["id"]
    other = _create(api, admin, patient_body("Elsewhere"))["id"]
    sent = subscription_body(f"Encounter?status=finished&subject=Patient/{patient}", receiver.url("/hook"))
    sent["channel"]["header"] = ["Authorization: Bearer hook-secret-1"]
    subscription = _create(api, admin, sent)
    # Then the server accepted it (requested -> active) and never shows the header's value
    assert subscription["status"] == "active"
    assert subscription["channel"]["header"] == ["Authorization: ******"]
    assert "hook-secret-1" not in api.get(f"Subscription/{subscription['id']}", headers=admin).text
    assert "hook-secret-1" not in api.get("Subscription?status=active", headers=admin).text
    # And a sentinel Subscription on the other patient marks when earlier writes have been handled
    sentinel = _create(
        api, admin, subscription_body(f"Encounter?subject=Patient/{other}", receiver.url("/sentinel"))
    )

    # When encounters are written: some match, some do not
    started: dict[str, float] = {}
    planned = _create(api, admin, encounter_body(patient))  # planned: no match
    _create(api, admin, _finished(other))  # another patient: sentinel only
    finished = _update(api, admin, {**planned, "status": "finished"})  # now finished: match
    started[f"{finished['id']}/2"] = time.monotonic()
    second = _create(api, admin, _finished(patient))  # match
    started[f"{second['id']}/1"] = time.monotonic()
    arrivals = receiver.until("/hook") + receiver.until("/hook")

    # Then the receiver got the two matching versions, in order, each with the header and the resource
    hooks = [arrival for arrival in arrivals if arrival.path == "/hook"]
    bodies = [json.loads(arrival.body) for arrival in hooks]
    assert [(body["id"], body["meta"]["versionId"], body["status"]) for body in bodies] == [
        (finished["id"], "2", "finished"),
        (second["id"], "1", "finished"),
    ]
    for arrival in hooks:
        assert arrival.headers["Authorization"] == "Bearer hook-secret-1"
        assert arrival.headers["Content-Type"].startswith("application/fhir+json")
    latencies = [
        arrival.at - started[f"{body['id']}/{body['meta']['versionId']}"]
        for arrival, body in zip(hooks, bodies, strict=True)
    ]

    # When the Subscription is read, set off (sending the masked header back) and a matching write follows
    current = api.get(f"Subscription/{subscription['id']}", headers=admin).json()
    stopped = _update(api, admin, {**current, "status": "off"})
    assert stopped["status"] == "off"
    _create(api, admin, _finished(patient))
    _create(api, admin, _finished(other))  # the sentinel's
    # Then only the sentinel's notifications arrive
    later = receiver.until("/sentinel")
    while not receiver.arrivals.empty():
        later.append(receiver.next())
    assert [arrival.path for arrival in later if arrival.path != "/sentinel"] == []

    # And set back to requested, it is active again with the header it had
    reactivated = _update(api, admin, {**stopped, "status": "requested"})
    assert reactivated["status"] == "active"
    third = _create(api, admin, _finished(patient))
    started[f"{third['id']}/1"] = time.monotonic()
    arrival = next(a for a in receiver.until("/hook") if a.path == "/hook")
    assert json.loads(arrival.body)["id"] == third["id"]
    assert arrival.headers["Authorization"] == "Bearer hook-secret-1"
    latencies.append(arrival.at - started[f"{third['id']}/1"])
    shown = ", ".join(f"{seconds * 1000:.0f} ms" for seconds in latencies)
    logging.getLogger(__name__).warning("rest-hook delivery after the write's answer: %s", shown)
    assert sentinel["status"] == "active"

    # And the change events of these writes match their schema, one per accepted version
    events = [
        event
        for event in local_stack.notifications.events.events()
        if event["detail"]["id"] in {planned["id"], second["id"], third["id"]}
    ]
    for event in events:
        jsonschema.validate(event, EVENT_SCHEMA)
    assert [
        (e["detail-type"], e["detail"]["versionId"], e["detail"]["statusBefore"], e["detail"]["statusAfter"])
        for e in events
        if e["detail"]["id"] == planned["id"]
    ] == [
        ("Encounter.created", "1", None, "planned"),
        ("Encounter.updated", "2", "planned", "finished"),
    ]
    assert all(event["detail"]["subject"] == f"Patient/{patient}" for event in events)
    # ids and codes only: nothing of the patient's name reaches the bus
    assert "Hook" not in json.dumps(local_stack.notifications.events.events())


def test_a_subscription_without_payload_is_told_with_an_empty_body(
    api: ApiSession, admin: dict[str, str], receiver: Receiver
) -> None:
    patient = _create(api, admin, patient_body("Emptybody"))["id"]
    sent = subscription_body(f"Encounter?subject=Patient/{patient}&class=EMER", receiver.url("/empty"))
    del sent["channel"]["payload"]
    _create(api, admin, sent)
    # When an emergency encounter of that patient is written
    emergency = encounter_body(patient)
    emergency["class"] = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"}
    _create(api, admin, encounter_body(patient))  # ambulatory: no match
    _create(api, admin, emergency)
    # Then one POST arrives, without a body
    arrival = receiver.next()
    assert (arrival.path, arrival.body) == ("/empty", b"")
    assert receiver.arrivals.empty()


def test_patient_criteria_are_matched_too(api: ApiSession, admin: dict[str, str], receiver: Receiver) -> None:
    system = "urn:oid:1.2.36.146.595.217.0.1"
    _create(
        api, admin, subscription_body(f"Patient?identifier={system}|MRN-HOOK-1", receiver.url("/patients"))
    )
    _create(api, admin, patient_body("Unrelated"))
    wanted = {**patient_body("Wanted"), "identifier": [{"system": system, "value": "MRN-HOOK-1"}]}
    created = _create(api, admin, wanted)
    arrival = receiver.next()
    assert arrival.path == "/patients" and json.loads(arrival.body)["id"] == created["id"]


@pytest.mark.parametrize("role", ["practitioner", "auditor"])
def test_only_an_admin_may_touch_subscriptions(
    api: ApiSession, auth: Callable[..., dict[str, str]], role: str, records: dict[str, str]
) -> None:
    headers = {**auth(role), "Content-Type": FHIR_JSON}
    body = subscription_body("Encounter?status=finished", "http://127.0.0.1:9/hook")
    assert api.post("Subscription", json=body, headers=headers).status_code == 403
    assert api.get("Subscription", headers=headers).status_code == 403
    assert api.get(f"Subscription/{records['Subscription']}", headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("criteria", "named"),
    [
        ("Observation?code=1234", "Observation"),
        ("Encounter?reason-code=1234", "reason-code"),
        ("Encounter?status:text=finished", "status:text"),
        ("Encounter?patient.name=Smith", "patient.name"),
        ("Encounter?status=finished&_count=5", "_count"),
        ("Encounter?status=made-up", "made-up"),
    ],
)
def test_unsupported_criteria_are_refused_naming_what(
    api: ApiSession, admin: dict[str, str], criteria: str, named: str
) -> None:
    response = api.post(
        "Subscription", json=subscription_body(criteria, "http://127.0.0.1:9/hook"), headers=admin
    )
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(named in issue.get("diagnostics", "") for issue in outcome["issue"])
    assert outcome["issue"][0]["expression"] == ["Subscription.criteria"]


@pytest.mark.parametrize(
    ("channel", "element"),
    [
        ({"type": "websocket"}, "Subscription.channel.type"),
        ({"endpoint": "http://example.org/hook"}, "Subscription.channel.endpoint"),
        ({"endpoint": "https://10.1.2.3/hook"}, "Subscription.channel.endpoint"),
        ({"endpoint": "https://169.254.169.254/latest/meta-data"}, "Subscription.channel.endpoint"),
        ({"payload": "application/xml"}, "Subscription.channel.payload"),
        ({"header": ["no colon here"]}, "Subscription.channel.header[0]"),
    ],
)
def test_channels_the_server_cannot_deliver_on_are_refused(
    api: ApiSession, admin: dict[str, str], channel: dict[str, Any], element: str
) -> None:
    body = subscription_body("Encounter?status=finished", "http://127.0.0.1:9/hook")
    body["channel"].update(channel)
    response = api.post("Subscription", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == [element]


def test_a_client_cannot_set_error(api: ApiSession, admin: dict[str, str]) -> None:
    body = {**subscription_body("Encounter?status=finished", "http://127.0.0.1:9/hook"), "status": "error"}
    response = api.post("Subscription", json=body, headers=admin)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Subscription.status"]


def test_search_by_status(api: ApiSession, admin: dict[str, str]) -> None:
    created = _create(api, admin, subscription_body("Encounter?status=cancelled", "http://127.0.0.1:9/a"))
    off = _create(
        api,
        admin,
        {**subscription_body("Encounter?status=cancelled", "http://127.0.0.1:9/b"), "status": "off"},
    )
    active = api.get("Subscription?status=active", headers=admin).json()
    stopped = api.get("Subscription?status=off", headers=admin).json()
    assert created["id"] in {entry["resource"]["id"] for entry in active.get("entry", [])}
    assert off["id"] not in {entry["resource"]["id"] for entry in active.get("entry", [])}
    assert {entry["resource"]["id"] for entry in stopped.get("entry", [])} >= {off["id"]}
