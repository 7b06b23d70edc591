"""The AuditEvents table: append-only, written by the recorder alone, read by the AuditEvent routes.

Items (key ``id``):

- the event: ``id`` (the AuditEvent's id), ``resource`` (its JSON), ``recorded``, ``expiresAt``;
- one term item per search term (``events.terms``): ``id`` ``<event id>.<term hash>``, ``term``,
  ``recorded``, ``owner`` (the event id), ``expiresAt``; the ``term-index`` (``term``, ``recorded``)
  lists them, so every AuditEvent search is a Query.

``recorded`` is a canonical instant (``fhir_api.fhir.fhirtime``), so it sorts and compares as text.
``expiresAt`` (epoch seconds, DynamoDB's TTL attribute) is the recorded time plus the retention:
records expire only then, and only through DynamoDB's TTL.

A write is idempotent: the term items first (the same keys and values on every delivery), then the
event, on condition that it is new. An event that is stored therefore has all its terms; a term whose
event is missing (a write cut short, retried later) is skipped by searches.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fhir_api import errors
from fhir_api.auditevents import events
from fhir_api.fhir import fhirjson, fhirtime

TERM_INDEX = "term-index"
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
ATTEMPTS = 5
THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


@dataclass(frozen=True)
class TermPage:
    """Index entries of one Query: (owner, key) in sort order, where to go on, and items read."""

    entries: list[tuple[str, dict[str, Any]]]
    last_key: dict[str, Any] | None
    scanned: int


class AuditEventStore:
    """The AuditEvents table through one DynamoDB client."""

    def __init__(self, client: Any, table: str, retention_days: int = 2192) -> None:
        self.client = client
        self.table = table
        self.retention_days = retention_days

    # -- writing (the recorder) ----------------------------------------------------------------------

    def record(self, event: dict[str, Any]) -> bool:
        """Store ``event`` and its terms; False when it was already stored (a repeated delivery)."""
        recorded = fhirtime.parse_range(str(event["recorded"]))[0]
        expires = int(
            fhirtime.parse_canonical(recorded).timestamp()
            + timedelta(days=self.retention_days).total_seconds()
        )
        owner = str(event["id"])
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "id": {"S": f"{owner}.{hashlib.sha256(term.encode()).hexdigest()[:16]}"},
                        "term": {"S": term},
                        "recorded": {"S": recorded},
                        "owner": {"S": owner},
                        "expiresAt": {"N": str(expires)},
                    }
                }
            }
            for term in events.terms(event)
        ]
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            self._batch_write(requests[start : start + BATCH_WRITE_LIMIT])
        stamped = {**event, "meta": {"versionId": "1", "lastUpdated": _now()}}
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": owner},
                    "resource": {"S": fhirjson.dumps(stamped)},
                    "recorded": {"S": recorded},
                    "expiresAt": {"N": str(expires)},
                },
                ConditionExpression="attribute_not_exists(id)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self.table: requests}
        for attempt in range(ATTEMPTS):
            answer = self.client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise RecordingThrottled(f"DynamoDB left {len(pending.get(self.table, []))} audit terms unwritten")

    # -- reading (the AuditEvent routes) ------------------------------------------------------------

    def get(self, event_id: str) -> str | None:
        """The stored AuditEvent's JSON, or None."""
        answer = _reading(lambda: self.client.get_item(TableName=self.table, Key={"id": {"S": event_id}}))
        resource = (answer.get("Item") or {}).get("resource")
        return resource["S"] if resource else None

    def query_term(
        self,
        term: str,
        low: str | None,
        high: str | None,
        ascending: bool,
        limit: int,
        start_key: dict[str, Any] | None,
    ) -> TermPage:
        """Up to ``limit`` entries of ``term`` with ``low <= recorded < high``, in date order."""
        condition = "#t = :t"
        values: dict[str, Any] = {":t": {"S": term}}
        if low is not None and high is not None:
            condition += " AND #r BETWEEN :low AND :high"
            values[":low"], values[":high"] = {"S": low}, {"S": _before(high)}
        elif low is not None:
            condition += " AND #r >= :low"
            values[":low"] = {"S": low}
        elif high is not None:
            condition += " AND #r < :high"
            values[":high"] = {"S": high}
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": TERM_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {
                "#t": "term",
                **({"#r": "recorded"} if ":low" in values or ":high" in values else {}),
            },
            "ExpressionAttributeValues": values,
            "ScanIndexForward": ascending,
            "Limit": max(1, limit),
        }
        if start_key:
            arguments["ExclusiveStartKey"] = start_key
        answer = _reading(lambda: self.client.query(**arguments))
        entries = [
            (item["owner"]["S"], {name: item[name] for name in ("id", "term", "recorded")})
            for item in answer.get("Items") or ()
        ]
        return TermPage(entries, answer.get("LastEvaluatedKey"), int(answer.get("ScannedCount") or 0))

    def fetch(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The stored AuditEvents among ``event_ids``, by id (missing ones left out)."""
        found: dict[str, str] = {}
        distinct = list(dict.fromkeys(event_ids))
        for start in range(0, len(distinct), BATCH_GET_LIMIT):
            keys = [{"id": {"S": event_id}} for event_id in distinct[start : start + BATCH_GET_LIMIT]]
            pending: dict[str, Any] = {
                self.table: {
                    "Keys": keys,
                    "ProjectionExpression": "id, #r",
                    "ExpressionAttributeNames": {"#r": "resource"},
                }
            }
            for attempt in range(ATTEMPTS):
                answer = _reading(lambda request=pending: self.client.batch_get_item(RequestItems=request))
                for item in (answer.get("Responses") or {}).get(self.table, []):
                    if "resource" in item:
                        found[item["id"]["S"]] = item["resource"]["S"]
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise errors.ServiceUnavailable("The audit trail is busy; retry shortly.")
        return found


class RecordingThrottled(RuntimeError):
    """DynamoDB would not take the writes in time: the delivery fails and Lambda retries it."""


def _reading(call: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        answer: dict[str, Any] = call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in THROTTLING:
            raise errors.ServiceUnavailable("The audit trail is busy; retry shortly.") from None
        raise
    return answer


def _before(high: str) -> str:
    """The greatest canonical instant before ``high`` (BETWEEN is inclusive; ranges are half-open)."""
    moment = fhirtime.parse_canonical(high) - timedelta(microseconds=1)
    return fhirtime.to_canonical(moment)


def _now() -> str:
    return fhirtime.canonical_now()[:23] + "Z"
