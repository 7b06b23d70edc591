"""The local change stream and deliverer on DynamoDB Local's real streams: a failing endpoint is tried
DELIVERY_MAX_ATTEMPTS times with backoff, then the Subscription is set to error and the notification
kept as a dead letter; the write that caused it was never held up. A resource's versions reach an
endpoint in order, even when an earlier one has to be retried."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fhir_api.resources import service_for
from fhir_api.settings import get_settings, reset_settings
from fhir_api.store.dynamo import reset_client
from local.notifications import LocalNotifications
from tests._rest_hooks import Receiver
from tests.integration.conftest import LocalTables

WAIT_SECONDS = 30


@pytest.fixture
def notifications(ddb_tables: LocalTables, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalNotifications]:
    monkeypatch.setenv("ALLOW_HTTP_LOOPBACK_ENDPOINTS", "1")
    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "3")
    reset_settings()
    reset_client()
    running = LocalNotifications(ddb_tables.endpoint, get_settings(), backoff=lambda attempt: 0.05 * attempt)
    running.start()
    yield running
    running.stop()
    reset_client()


def test_a_failing_endpoint_is_retried_then_its_subscription_is_set_to_error(
    notifications: LocalNotifications,
) -> None:
    # Given a Subscription on finished encounters whose endpoint always answers 503
    endpoint = Receiver(503)
    settings = get_settings()
    subscription = service_for("Subscription", settings).create(
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "Retries",
            "criteria": "Encounter?status=finished",
            "channel": {"type": "rest-hook", "endpoint": endpoint.url},
        }
    )
    patient = service_for("Patient", settings).create({"resourceType": "Patient"})
    # When a matching encounter is written
    encounter = service_for("Encounter", settings).create(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient.id}"},
        }
    )
    assert encounter.version_id == 1
    # Then, after its attempts, the Subscription is in error and says why
    deadline = time.monotonic() + WAIT_SECONDS
    current = service_for("Subscription", settings).read(subscription.id)
    while current.document["status"] != "error" and time.monotonic() < deadline:
        time.sleep(0.1)
        current = service_for("Subscription", settings).read(subscription.id)
    assert current.document["status"] == "error"
    assert current.document["error"] == "Delivery failed 3 times; last: the endpoint answered HTTP 503."
    assert current.version_id == 2
    assert len(endpoint.got) == 3
    # And the notification is kept as a dead letter, while the change went on the event log
    [(notification, reason)] = notifications.worker.dead_letters
    assert (notification.resource_id, notification.version_id, reason) == (
        encounter.id,
        1,
        "the endpoint answered HTTP 503",
    )
    # (ordered per resource: the two tables' streams are read one after the other)
    assert sorted(event["detail"]["id"] for event in notifications.events.events()) == sorted(
        [patient.id, encounter.id]
    )
    # And an encounter written after that is not sent any more
    service_for("Encounter", settings).create(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient.id}"},
        }
    )
    while len(notifications.events.events()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(notifications.events.events()) == 3
    assert len(endpoint.got) == 3
    endpoint.server.shutdown()


def test_versions_of_an_encounter_arrive_in_order_when_the_first_is_retried(
    notifications: LocalNotifications,
) -> None:
    # Given a Subscription with payload whose endpoint fails its first POST
    endpoint = Receiver(204, first=(503,))
    settings = get_settings()
    service_for("Subscription", settings).create(
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "Ordering",
            "criteria": "Encounter?status=finished",
            "channel": {"type": "rest-hook", "endpoint": endpoint.url, "payload": "application/fhir+json"},
        }
    )
    patient = service_for("Patient", settings).create({"resourceType": "Patient"})
    # When one encounter is written three times, quickly
    document = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient.id}"},
    }
    encounters = service_for("Encounter", settings)
    created = encounters.create(document)
    for version in (1, 2):
        encounters.update(created.id, {**document, "id": created.id}, if_match=version)
    # Then every version arrives, version 1 twice (its retry), and none before an earlier one
    deadline = time.monotonic() + WAIT_SECONDS
    while len(endpoint.versions()) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert endpoint.versions() == [(created.id, "1"), (created.id, "1"), (created.id, "2"), (created.id, "3")]
    assert notifications.worker.dead_letters == []
    # And the events went on the event log in version order too (consumers order by versionId)
    versions = [
        event["detail"]["versionId"]
        for event in notifications.events.events()
        if event["detail"]["id"] == created.id
    ]
    assert versions == ["1", "2", "3"]
    endpoint.server.shutdown()
