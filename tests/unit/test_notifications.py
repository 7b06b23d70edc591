"""Change notifications without a network: criteria, stream records to changes and events, the
endpoint policy, the masking of channel headers, and the two AWS handlers on moto (DynamoDB, SQS,
EventBridge) with their event files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from moto.sqs import models as sqs_models

from fhir_api import errors
from fhir_api.fhir import fhirjson
from fhir_api.notifications import aws, delivery
from fhir_api.notifications.changes import change_from_record
from fhir_api.notifications.endpoints import check_endpoint
from fhir_api.notifications.matching import Notification
from fhir_api.resources.subscription import SubscriptionDefinition, masked, parse_criteria
from fhir_api.settings import Settings, get_settings, reset_settings
from fhir_api.store.dynamo import Store, reset_client
from fhir_api.store.types import StoredResource, Write
from local.lambda_runtime import LambdaContext
from local.notifications import LocalDeliveryWorker
from tests._change_events import EVENT_SCHEMA, as_delivered
from tests._rest_hooks import Receiver

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
AMB = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
PUBLIC_ADDRESS = "93.184.215.14"


def stored(resource_type: str, resource_id: str, version: int, **elements: Any) -> StoredResource:
    document = {
        "resourceType": resource_type,
        "id": resource_id,
        "meta": {"versionId": str(version), "lastUpdated": "2026-01-02T03:04:05.000000Z"},
        **elements,
    }
    return StoredResource(
        resource_type, resource_id, version, "2026-01-02T03:04:05.000000Z", json.dumps(document)
    )


def encounter(resource_id: str = "e1", version: int = 1, **elements: Any) -> StoredResource:
    values = {"status": "finished", "class": AMB, "subject": {"reference": "Patient/p1"}, **elements}
    return stored("Encounter", resource_id, version, **values)


def image(item: StoredResource, **attributes: str) -> dict[str, Any]:
    """The stream image of a current item (what store/dynamo.py writes)."""
    return {
        "id": {"S": item.id},
        "resource": {"S": item.text},
        "versionId": {"N": str(item.version_id)},
        "lastUpdated": {"S": item.last_updated},
        **{name: {"S": value} for name, value in attributes.items()},
    }


def record(name: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"Keys": {"id": (new or old or {}).get("id")}}
    if new is not None:
        data["NewImage"] = new
    if old is not None:
        data["OldImage"] = old
    return {"eventName": name, "dynamodb": data}


# -- criteria --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "matching", "other"),
    [
        ("Encounter?status=finished", encounter(), encounter(status="in-progress")),
        (
            "Encounter?subject=Patient/p1&class=EMER",
            encounter(**{"class": {**AMB, "code": "EMER"}}),
            encounter(),
        ),
        ("Encounter", encounter(), stored("Patient", "p1", 1)),
        ("Patient?gender=female", stored("Patient", "p1", 1, gender="female"), stored("Patient", "p2", 1)),
    ],
)
def test_criteria_match_as_the_search_would(
    criteria: str, matching: StoredResource, other: StoredResource
) -> None:
    parsed = parse_criteria(criteria)
    assert parsed.matches(matching)
    assert not parsed.matches(other)


@pytest.mark.parametrize(
    ("criteria", "named"),
    [
        ("Observation?code=1", "'Observation'"),
        ("Encounter?location=Location/1", "'location'"),
        ("Encounter?_sort=date", "'_sort'"),
        ("Encounter?_include=Encounter:subject", "'_include'"),
        ("Encounter?status=", "'status'"),
        ("", "Encounter?status=finished"),
    ],
)
def test_unsupported_criteria_are_400_naming_what(criteria: str, named: str) -> None:
    with pytest.raises(errors.InvalidResource) as raised:
        parse_criteria(criteria)
    assert named in raised.value.diagnostics
    assert raised.value.expression == ("Subscription.criteria",)


# -- stream records to changes and events ----------------------------------------------------------


def test_an_update_becomes_one_event_with_both_statuses_and_ids_only() -> None:
    before = encounter(
        version=1, status="in-progress", text={"status": "generated", "div": "<div>Jane</div>"}
    )
    after = encounter(version=2, status="finished", text={"status": "generated", "div": "<div>Jane</div>"})
    change = change_from_record(
        record("MODIFY", image(after, status="finished"), image(before, status="in-progress"))
    )
    assert change is not None
    entry = change.event_entry("bus")
    event = as_delivered(entry)
    jsonschema.validate(event, EVENT_SCHEMA)
    assert event["detail-type"] == "Encounter.updated"
    assert event["detail"] == {
        "version": "1",
        "resourceType": "Encounter",
        "id": "e1",
        "versionId": "2",
        "interaction": "update",
        "statusBefore": "in-progress",
        "statusAfter": "finished",
        "subject": "Patient/p1",
        "lastUpdated": "2026-01-02T03:04:05.000000Z",
    }
    assert "Jane" not in json.dumps(entry)


def test_a_created_patient_is_its_own_subject() -> None:
    change = change_from_record(record("INSERT", image(stored("Patient", "p9", 1, active=True))))
    assert change is not None
    assert (change.detail_type, change.status_before, change.status_after, change.subject) == (
        "Patient.created",
        None,
        "active",
        "Patient/p9",
    )
    jsonschema.validate(
        {"source": "encounter-api", "detail-type": change.detail_type, "detail": change.detail()},
        EVENT_SCHEMA,
    )


def test_search_terms_removals_and_repeats_are_no_change() -> None:
    term = {
        "id": {"S": "name|abc"},
        "term": {"S": "family"},
        "termValue": {"S": "smith"},
        "owner": {"S": "p1"},
    }
    assert change_from_record(record("INSERT", term)) is None
    assert change_from_record(record("REMOVE", None, image(encounter()))) is None
    same = image(encounter(version=3), status="finished")
    assert change_from_record(record("MODIFY", same, same)) is None


def test_the_events_of_the_stream_event_file_match_the_schema() -> None:
    event = json.loads((EVENTS / "change_stream.json").read_text(encoding="utf-8"))
    for item in event["Records"]:
        change = change_from_record(item)
        assert change is not None
        jsonschema.validate(
            {"source": "encounter-api", "detail-type": change.detail_type, "detail": change.detail()},
            EVENT_SCHEMA,
        )


# -- endpoints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "loopback_allowed", "refused_because"),
    [
        (f"https://{PUBLIC_ADDRESS}/hook", 0, None),
        (f"http://{PUBLIC_ADDRESS}/hook", 0, "https"),
        (f"http://{PUBLIC_ADDRESS}/hook", 1, "https"),
        ("https://10.0.0.8/hook", 0, "non-public"),
        ("https://192.168.1.1/hook", 1, "non-public"),
        ("https://169.254.169.254/latest/meta-data/", 0, "non-public"),
        ("https://[fd00::1]/hook", 0, "non-public"),
        ("https://127.0.0.1:9001/2018-06-01/runtime/invocation/next", 0, "non-public"),
        ("http://127.0.0.1:8080/hook", 1, None),
        ("https://user:secret@93.184.215.14/hook", 0, "credentials"),
        ("ftp://93.184.215.14/hook", 0, "https"),
        ("not a url", 0, "https"),
    ],
)
def test_the_endpoint_policy(endpoint: str, loopback_allowed: int, refused_because: str | None) -> None:
    problem = check_endpoint(endpoint, Settings(allow_http_loopback_endpoints=loopback_allowed))
    if refused_because is None:
        assert problem is None
    else:
        assert problem is not None and refused_because in problem


def test_a_name_is_judged_by_every_address_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [(2, 1, 6, "", (PUBLIC_ADDRESS, 443)), (2, 1, 6, "", ("10.1.2.3", 443))]
    monkeypatch.setattr("fhir_api.notifications.endpoints.socket.getaddrinfo", lambda *a, **k: answers)
    problem = check_endpoint("https://hooks.example.org/x", Settings())
    assert problem is not None and "10.1.2.3" in problem


# -- channel headers -------------------------------------------------------------------------------


def test_header_values_are_masked_and_kept_when_sent_back_masked() -> None:
    channel = {
        "type": "rest-hook",
        "endpoint": "https://x",
        "header": ["Authorization: Bearer s3cret", "X-A: 1"],
    }
    subscription = stored("Subscription", "s1", 1, status="active", criteria="Encounter", channel=channel)
    shown = masked(subscription).document["channel"]["header"]
    assert shown == ["Authorization: ******", "X-A: ******"]
    sent_back = {**subscription.document, "channel": {**channel, "header": [*shown[:1], "X-A: 2"]}}
    kept = SubscriptionDefinition().carry_over(sent_back, subscription.document)
    assert kept["channel"]["header"] == ["Authorization: Bearer s3cret", "X-A: 2"]


# -- the AWS handlers on moto ----------------------------------------------------------------------


@pytest.fixture
def aws_stack(moto_tables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's DynamoDB (the template's tables), an event bus and the delivery queue."""
    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="changes")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(
        QueueName="deliveries.fifo",
        Attributes={
            "FifoQueue": "true",
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )["QueueUrl"]
    monkeypatch.setenv("EVENT_BUS_NAME", "changes")
    monkeypatch.setenv("DELIVERY_QUEUE_URL", queue_url)
    monkeypatch.setenv("ALLOW_HTTP_LOOPBACK_ENDPOINTS", "1")
    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "3")
    monkeypatch.setattr(aws, "_clients", {})
    reset_settings()
    reset_client()
    yield {"sqs": sqs, "queue_url": queue_url}
    reset_settings()
    reset_client()


def _subscription(
    store: Store, subscription_id: str, endpoint: str, criteria: str = "Encounter?status=finished"
) -> None:
    channel = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "header": ["X-Key: k1"],
    }
    item = stored(
        "Subscription", subscription_id, 1, status="active", reason="t", criteria=criteria, channel=channel
    )
    store.write(Write(item, {"status": "active"}, superseded=None))


def _store_encounter(store: Store, item: StoredResource) -> None:
    store.write(Write(item, {"status": item.document["status"]}, superseded=None))


def test_the_stream_function_puts_events_and_queues_matching_deliveries(aws_stack: dict[str, Any]) -> None:
    store = Store(get_settings())
    _subscription(store, "65fabc0123456789abcdef01", "http://127.0.0.1:9/hook")
    _subscription(store, "other", "http://127.0.0.1:9/hook", criteria="Encounter?status=cancelled")
    event = json.loads((EVENTS / "change_stream.json").read_text(encoding="utf-8"))
    assert aws.change_stream_handler(event, LambdaContext("change_stream")) == {}
    messages = aws_stack["sqs"].receive_message(QueueUrl=aws_stack["queue_url"], MaxNumberOfMessages=10)
    bodies = [json.loads(message["Body"]) for message in messages.get("Messages", [])]
    assert bodies == [
        {
            "subscription": "65fabc0123456789abcdef01",
            "resourceType": "Encounter",
            "id": "65f6789012345abcdef67890",
            "versionId": 2,
        }
    ]


def test_a_refused_event_fails_the_batch_so_the_stream_retries_it(aws_stack: dict[str, Any]) -> None:
    class Refusing:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 (boto3's name)
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}

    aws._clients["events"] = Refusing()
    event = json.loads((EVENTS / "change_stream.json").read_text(encoding="utf-8"))
    with pytest.raises(RuntimeError, match="InternalFailure"):
        aws.change_stream_handler(event, LambdaContext("change_stream"))


def _delivery_event(attempt: int) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "subscription_delivery.json").read_text(encoding="utf-8"))
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(attempt)
    return event


def test_the_delivery_function_posts_the_version_with_the_header(aws_stack: dict[str, Any]) -> None:
    receiver = Receiver(204)
    store = Store(get_settings())
    _subscription(store, "65fabc0123456789abcdef01", receiver.url)
    _store_encounter(store, encounter("65f6789012345abcdef67890", 2))
    answer = aws.delivery_handler(_delivery_event(1), LambdaContext("subscription_delivery"))
    assert answer == {"batchItemFailures": []}
    [(path, headers, body)] = receiver.got
    assert headers["X-Key"] == "k1" and headers["Content-Type"].startswith("application/fhir+json")
    assert fhirjson.loads(body)["meta"]["versionId"] == "2"
    receiver.server.shutdown()


def test_failed_deliveries_back_off_then_set_the_subscription_to_error(aws_stack: dict[str, Any]) -> None:
    receiver = Receiver(503)
    sqs = aws_stack["sqs"]
    sqs.send_message(
        QueueUrl=aws_stack["queue_url"], MessageBody="{}", MessageGroupId="g", MessageDeduplicationId="d"
    )
    handle = sqs.receive_message(QueueUrl=aws_stack["queue_url"])["Messages"][0]["ReceiptHandle"]
    store = Store(get_settings())
    _subscription(store, "65fabc0123456789abcdef01", receiver.url)
    _store_encounter(store, encounter("65f6789012345abcdef67890", 2))
    event = _delivery_event(1)
    event["Records"][0]["receiptHandle"] = handle
    # A failed attempt before the last: reported, made visible again later, the subscription still active
    failed = aws.delivery_handler(event, LambdaContext("subscription_delivery"))
    assert failed == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    current = store.current("Subscription", "65fabc0123456789abcdef01")
    assert current is not None and current.document["status"] == "active"
    # The last attempt: the subscription is set to error, saying why, as a new version
    last = aws.delivery_handler(_delivery_event(3), LambdaContext("subscription_delivery"))
    assert last["batchItemFailures"]
    current = store.current("Subscription", "65fabc0123456789abcdef01")
    assert current is not None and current.version_id == 2
    assert current.document["status"] == "error"
    assert "HTTP 503" in current.document["error"] and "3 times" in current.document["error"]
    assert len(receiver.got) == 2
    # And nothing more is sent for it
    assert (
        delivery.deliver(
            Notification.from_message(json.loads(event["Records"][0]["body"])), store, get_settings()
        ).outcome
        == "dropped"
    )
    receiver.server.shutdown()


class SqsClock:
    """moto's SQS clock, moved on by hand (a backoff passes without waiting for it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = sqs_models.unix_time_millis()
        monkeypatch.setattr(sqs_models, "unix_time_millis", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds * 1000


def _lambda_poll(sqs: Any, queue_url: str, batch_size: int) -> int:
    """What Lambda's SQS event source does once: receive, invoke the delivery function, delete what it
    did not report as failed. Returns how many messages it handed over."""
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=batch_size, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])
    if not received:
        return 0
    records = [
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message["Attributes"],
        }
        for message in received
    ]
    answer = aws.delivery_handler({"Records": records}, LambdaContext("subscription_delivery"))
    failed = {failure["itemIdentifier"] for failure in answer["batchItemFailures"]}
    for message in received:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(received)


def _store_versions(store: Store, resource_id: str, count: int) -> None:
    """Versions 1..count of a finished encounter, the earlier ones kept as version copies."""
    previous = None
    for version in range(1, count + 1):
        item = encounter(resource_id, version)
        store.write(Write(item, {"status": "finished"}, superseded=previous))
        previous = item


def test_versions_reach_an_endpoint_in_order_when_an_earlier_one_is_retried(
    aws_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SqsClock(monkeypatch)
    sqs, queue_url = aws_stack["sqs"], aws_stack["queue_url"]
    # Given an endpoint that fails its first POST, and three versions of one encounter and one of another
    receiver = Receiver(204, first=(503,))
    store = Store(get_settings())
    _subscription(store, "s1", receiver.url)
    _store_versions(store, "e1", 3)
    _store_versions(store, "e2", 1)
    # When the stream function queues them (the stream hands the batch twice: nothing is queued twice)
    queued = [Notification("s1", "Encounter", "e1", v) for v in (1, 2, 3)]
    queued.append(Notification("s1", "Encounter", "e2", 1))
    aws.SqsQueue(sqs, queue_url).enqueue(queued)
    aws.SqsQueue(sqs, queue_url).enqueue(queued)
    # and the delivery function reads them, one message per invocation as the template says
    while _lambda_poll(sqs, queue_url, batch_size=1):
        pass
    # Then the first attempt at e1 version 1 failed, and e1 waits for its retry while e2 goes on
    assert receiver.versions() == [("e1", "1"), ("e2", "1")]
    # And once the backoff has passed, e1's versions follow in order
    clock.advance(delivery.backoff_seconds(1) + 1)
    while _lambda_poll(sqs, queue_url, batch_size=1):
        pass
    assert receiver.versions() == [("e1", "1"), ("e2", "1"), ("e1", "1"), ("e1", "2"), ("e1", "3")]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    receiver.server.shutdown()


def test_a_failed_message_holds_back_the_rest_of_its_group_in_the_same_batch(
    aws_stack: dict[str, Any],
) -> None:
    sqs, queue_url = aws_stack["sqs"], aws_stack["queue_url"]
    receiver = Receiver(204, first=(503,))
    store = Store(get_settings())
    _subscription(store, "s1", receiver.url)
    _store_versions(store, "e1", 3)
    _store_versions(store, "e2", 1)
    queued = [Notification("s1", "Encounter", "e1", v) for v in (1, 2, 3)]
    queued.append(Notification("s1", "Encounter", "e2", 1))
    aws.SqsQueue(sqs, queue_url).enqueue(queued)
    # When a batch of all four is handled and e1 version 1 fails
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 4
    records = [
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
        }
        for message in received
    ]
    answer = aws.delivery_handler({"Records": records}, LambdaContext("subscription_delivery"))
    # Then e1's later versions are not attempted but handed back with it; e2 is delivered
    assert receiver.versions() == [("e1", "1"), ("e2", "1")]
    assert answer == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records[:3]]}
    receiver.server.shutdown()


def test_the_local_worker_keeps_a_group_in_order_and_drops_repeats(aws_stack: dict[str, Any]) -> None:
    receiver = Receiver(204, first=(503,))
    store = Store(get_settings())
    _subscription(store, "s1", receiver.url)
    _store_versions(store, "e1", 2)
    worker = LocalDeliveryWorker(store, get_settings(), backoff=lambda attempt: 0.05).start()
    # When version 1 is queued twice (a stream batch handed again), then version 2
    worker.enqueue([Notification("s1", "Encounter", "e1", 1)])
    worker.enqueue([Notification("s1", "Encounter", "e1", 1), Notification("s1", "Encounter", "e1", 2)])
    deadline = time.monotonic() + 10
    while len(receiver.got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    # Then version 1 is retried before version 2 is sent, and the repeat was never queued
    assert receiver.versions() == [("e1", "1"), ("e1", "1"), ("e1", "2")]
    receiver.server.shutdown()


def test_message_groups_and_deduplication_ids_fit_sqs() -> None:
    longest = Notification("s" * 64, "Encounter", "e" * 64, 7)
    assert len(longest.group) <= 128 and len(longest.deduplication_id) <= 128
    assert Notification("s1", "Encounter", "e1", 1).group == "s1/Encounter/e1"
    # One group per subscription and resource; one deduplication id per version
    assert Notification("s1", "Encounter", "e1", 1).group == Notification("s1", "Encounter", "e1", 2).group
    assert Notification("s2", "Encounter", "e1", 1).group != Notification("s1", "Encounter", "e1", 1).group
    assert (
        Notification("s1", "Encounter", "e1", 1).deduplication_id
        != Notification("s1", "Encounter", "e1", 2).deduplication_id
    )


def test_backoff_grows_and_is_capped() -> None:
    assert [delivery.backoff_seconds(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert delivery.backoff_seconds(20) == delivery.MAX_BACKOFF_SECONDS
