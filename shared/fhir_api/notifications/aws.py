"""The AWS side of change notifications: EventBridge and SQS as the sinks of the stream consumer, and
the two Lambda handlers (functions/change_stream, functions/subscription_delivery).

- ``change_stream_handler``: a batch of DynamoDB stream records (Encounters, Patients). Any failure
  fails the batch; the event source mapping retries it, halves it, and after its last attempt sends
  the batch's description to the stream's dead-letter queue.
- ``delivery_handler``: a batch of messages from the FIFO delivery queue, one notification each, in
  order within each message group (a subscription and a resource). A failed attempt makes its message
  visible again after ``backoff_seconds`` (and is reported as a batch item failure); while it waits,
  SQS hands out nothing else of its group, and the later messages of that group in the same batch are
  not attempted but reported as failures too, so no version overtakes an earlier one. The queue's
  redrive policy moves a message to the delivery dead-letter queue after ``DELIVERY_MAX_ATTEMPTS``
  receives, by which time the Subscription is set to ``error``.
"""

from __future__ import annotations

import json
from typing import Any

from fhir_api import aws_clients
from fhir_api.logs import get_logger
from fhir_api.notifications import delivery
from fhir_api.notifications.changes import Change
from fhir_api.notifications.matching import Notification
from fhir_api.notifications.stream import process_records
from fhir_api.settings import Settings, get_settings
from fhir_api.store.dynamo import Store

PUT_EVENTS_LIMIT = 10  # entries per PutEvents call
SEND_MESSAGE_BATCH_LIMIT = 10
MAX_VISIBILITY_SECONDS = 43_200

_clients: dict[str, Any] = {}


def _client(service: str, settings: Settings) -> Any:
    """One client per service and process (short timeouts, standard retries)."""
    if service not in _clients:
        _clients[service] = aws_clients.client(service, settings.aws_region)
    return _clients[service]


class EventBridgeSink:
    """Puts one event per change on the bus; raises when any entry was not accepted."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def publish(self, changes: list[Change]) -> None:
        """PutEvents in chunks, in order."""
        entries = [change.event_entry(self.bus_name) for change in changes]
        for start in range(0, len(entries), PUT_EVENTS_LIMIT):
            answer = self.client.put_events(Entries=entries[start : start + PUT_EVENTS_LIMIT])
            if answer.get("FailedEntryCount"):
                codes = sorted(
                    {
                        entry.get("ErrorCode", "")
                        for entry in answer.get("Entries", [])
                        if entry.get("ErrorCode")
                    }
                )
                raise RuntimeError(
                    f"EventBridge refused {answer['FailedEntryCount']} events ({', '.join(codes)})"
                )


class SqsQueue:
    """Sends each notification to the delivery queue; raises when any message was not accepted."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def enqueue(self, notifications: list[Notification]) -> None:
        """SendMessageBatch in chunks, in order (SQS keeps a batch's order within a message group)."""
        for start in range(0, len(notifications), SEND_MESSAGE_BATCH_LIMIT):
            chunk = notifications[start : start + SEND_MESSAGE_BATCH_LIMIT]
            answer = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(index),
                        "MessageBody": json.dumps(item.to_message()),
                        "MessageGroupId": item.group,
                        "MessageDeduplicationId": item.deduplication_id,
                    }
                    for index, item in enumerate(chunk)
                ],
            )
            if answer.get("Failed"):
                raise RuntimeError(f"SQS refused {len(answer['Failed'])} notifications")


def change_stream_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The ChangeStreamFunction: stream records -> events and queued deliveries."""
    settings = get_settings()
    result = process_records(
        event.get("Records") or [],
        Store(settings),
        EventBridgeSink(_client("events", settings), settings.event_bus_name),
        SqsQueue(_client("sqs", settings), settings.delivery_queue_url),
    )
    get_logger().info(
        "changes published",
        extra={"changes": len(result.changes), "notifications": len(result.notifications)},
    )
    return {}


def delivery_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The SubscriptionDeliveryFunction: one attempt per message; failures retried with backoff, and
    nothing of a failed message's group attempted after it."""
    settings = get_settings()
    store = Store(settings)
    failures = []
    waiting: dict[str, int] = {}  # message group -> seconds until its failed message is tried again
    for record in event.get("Records") or []:
        notification = Notification.from_message(json.loads(record["body"]))
        attempts = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        if notification.group in waiting:
            _retry_after(record, waiting[notification.group], settings)
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        attempt = delivery.deliver(notification, store, settings)
        get_logger().info(
            "rest-hook attempt",
            extra={
                "subscription": notification.subscription_id,
                "resource": f"{notification.resource_type}/{notification.resource_id}",
                "version": notification.version_id,
                "attempt": attempts,
                "outcome": attempt.outcome,
                "reason": attempt.reason,
            },
        )
        if not attempt.failed:
            continue
        if attempts >= settings.delivery_max_attempts:
            delivery.give_up(notification, attempt.reason, attempts, store)
            waiting[notification.group] = 0
        else:
            waiting[notification.group] = min(delivery.backoff_seconds(attempts), MAX_VISIBILITY_SECONDS)
            _retry_after(record, waiting[notification.group], settings)
        failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _retry_after(record: dict[str, Any], seconds: int, settings: Settings) -> None:
    """Make a message visible again after ``seconds`` (its group waits as long)."""
    _client("sqs", settings).change_message_visibility(
        QueueUrl=settings.delivery_queue_url,
        ReceiptHandle=record["receiptHandle"],
        VisibilityTimeout=seconds,
    )
