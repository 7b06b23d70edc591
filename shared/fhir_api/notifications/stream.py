"""The change stream's consumer: a batch of stream records in, events on the bus and rest-hook
deliveries on the queue out. AWS runs it as the ChangeStreamFunction (one invocation per batch of a
DynamoDB stream shard), the local stack from its stream poller: the same function, other sinks.

Order and retries: a shard holds one resource's versions in order, and a batch is handled in order;
when publishing fails the whole batch fails and the stream hands it again (at least once: a consumer
keys on ``id`` and ``versionId``). Delivery is queued, never done here, so a slow endpoint holds up
neither the stream nor, ever, the write that caused the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhir_api.notifications.changes import Change, change_from_record
from fhir_api.notifications.matching import Notification, active_subscriptions, notifications
from fhir_api.store.dynamo import Store


class EventSink(Protocol):
    """Where change events go: EventBridge in AWS, the local stack's event log."""

    def publish(self, changes: list[Change]) -> None: ...


class DeliveryQueue(Protocol):
    """Where notifications wait for delivery: SQS in AWS, the local stack's worker."""

    def enqueue(self, notifications: list[Notification]) -> None: ...


@dataclass
class BatchResult:
    """What one batch produced."""

    changes: list[Change] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


def process_records(
    records: Iterable[dict[str, Any]], store: Store, events: EventSink, queue: DeliveryQueue
) -> BatchResult:
    """Publish one event per accepted version and queue one delivery per matching Subscription."""
    changes = [change for record in records if (change := change_from_record(record)) is not None]
    if not changes:
        return BatchResult()
    events.publish(changes)
    wanted = notifications(changes, active_subscriptions(store))
    if wanted:
        queue.enqueue(wanted)
    return BatchResult(changes, wanted)
