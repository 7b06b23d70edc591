"""Which active rest-hook Subscriptions a change matches: the same code in AWS and on the local stack.

The active subscriptions are read once per batch of changes from the Subscriptions table's
``status-index`` (partition ``active``); each one's criteria are parsed by the search parameter parser
and tested with the resource definition's ``matches``, as a search would test them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_api import errors
from fhir_api.fhir import fhirtime
from fhir_api.notifications.changes import Change
from fhir_api.resources.subscription import Criteria, parse_criteria
from fhir_api.store.dynamo import Store
from fhir_api.store.indexes import index_query
from fhir_api.store.types import Listing, StoredResource

logger = logging.getLogger(__name__)

# The active Subscriptions, as the store lists them (one partition: Subscriptions are not sharded).
ACTIVE = index_query(Listing("Subscription", "status", ("active",)), shards=1)

SQS_ID_LIMIT = 128  # characters of a FIFO message group or deduplication id


@dataclass(frozen=True)
class ActiveSubscription:
    """An active Subscription and its parsed criteria."""

    id: str
    criteria: Criteria
    end: str | None  # Subscription.end as an instant, after which nothing is sent

    def wants(self, change: Change) -> bool:
        """Whether the change's version matches the criteria before the subscription's end. A deletion
        matches nothing: R4 rest-hook criteria select resources, and a deleted one is none."""
        if change.resource.deleted:
            return False
        if self.end is not None and change.resource.last_updated >= self.end:
            return False
        return self.criteria.matches(change.resource)


@dataclass(frozen=True)
class Notification:
    """One delivery to make: a subscription and the version it is told about (the queue's message)."""

    subscription_id: str
    resource_type: str
    resource_id: str
    version_id: int

    def to_message(self) -> dict[str, Any]:
        """The message body (ids only: the deliverer reads the rest when it sends)."""
        return {
            "subscription": self.subscription_id,
            "resourceType": self.resource_type,
            "id": self.resource_id,
            "versionId": self.version_id,
        }

    @property
    def group(self) -> str:
        """The FIFO message group: one per subscription and resource, so that one resource's versions
        reach one endpoint in order while other subscriptions and resources go on."""
        return _sqs_id(f"{self.subscription_id}/{self.resource_type}/{self.resource_id}")

    @property
    def deduplication_id(self) -> str:
        """The same for every time the stream hands the same version again (a retried batch)."""
        return hashlib.sha256(
            f"{self.subscription_id}/{self.resource_type}/{self.resource_id}/_history/{self.version_id}".encode()
        ).hexdigest()

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Notification:
        """The notification a queue message carries."""
        return cls(
            str(message["subscription"]),
            str(message["resourceType"]),
            str(message["id"]),
            int(message["versionId"]),
        )


def _sqs_id(text: str) -> str:
    """``text`` as an SQS FIFO id: itself while short enough (readable in the console), else its hash."""
    return text if len(text) <= SQS_ID_LIMIT else hashlib.sha256(text.encode()).hexdigest()


def active_subscriptions(store: Store) -> list[ActiveSubscription]:
    """Every active Subscription whose criteria still parse (one logged and skipped otherwise)."""
    ids: list[str] = []
    start: dict[str, Any] | None = None
    while True:
        entries, start = store.query_partition(ACTIVE, 0, start, 100)
        ids.extend(entry.owner for entry in entries)
        if not start:
            break
    found = store.many("Subscription", ids)
    return [parsed for stored in found.values() if (parsed := _parsed(stored)) is not None]


def _parsed(stored: StoredResource) -> ActiveSubscription | None:
    document = stored.document
    if document.get("status") != "active":
        return None  # the index entry lagged behind the item
    try:
        criteria = parse_criteria(document.get("criteria"))
    except errors.ApiError:
        logger.warning("subscription %s has criteria this server no longer supports", stored.id)
        return None
    end = document.get("end")
    return ActiveSubscription(stored.id, criteria, fhirtime.parse_range(end)[0] if end else None)


def notifications(changes: Iterable[Change], subscriptions: list[ActiveSubscription]) -> list[Notification]:
    """One notification per (change, subscription it matches), in the order of the changes."""
    return [
        Notification(
            subscription.id, change.resource.resource_type, change.resource.id, change.resource.version_id
        )
        for change in changes
        for subscription in subscriptions
        if subscription.wants(change)
    ]
