"""The recorder: turns the audit lines CloudWatch Logs delivers into stored AuditEvents.

CloudWatch Logs subscription filters on every function's log group (``{ $.message = "audit" }``) and
on API Gateway's access log group invoke the recorder function asynchronously with a batch of lines
(``{"awslogs": {"data": base64(gzip(JSON))}}``). Each line that tells of a request
(``events.occurrence``) becomes one AuditEvent, stored idempotently (``AuditEventStore.record``). When
DynamoDB will not take a write, the invocation fails: Lambda retries the whole batch (twice, with
backoff), then hands it to the dead-letter queue, whose alarm calls someone. A retried batch stores
nothing twice. The clinical requests wait for none of this: their only cost is the line they log.

The local stack feeds the same ``record_lines`` from a listener on the functions' logger
(``local.audit_trail``).
"""

from __future__ import annotations

import base64
import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fhir_api.auditevents.events import audit_event, occurrence
from fhir_api.auditevents.store import AuditEventStore

WRITERS = 8


@dataclass(frozen=True)
class Recorded:
    """What one batch came to: AuditEvents stored, ones already stored, lines that tell of no request."""

    stored: int
    duplicates: int
    skipped: int


def subscription_lines(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON lines of a CloudWatch Logs subscription delivery (none for its control message)."""
    data = (event.get("awslogs") or {}).get("data")
    if not isinstance(data, str):
        raise ValueError("not a CloudWatch Logs subscription event (no awslogs.data)")
    payload = json.loads(gzip.decompress(base64.b64decode(data)))
    if payload.get("messageType") != "DATA_MESSAGE":
        return []
    lines = []
    for log_event in payload.get("logEvents") or ():
        line = parse_line(str(log_event.get("message") or ""))
        if line is not None:
            lines.append(line)
    return lines


def parse_line(message: str) -> dict[str, Any] | None:
    """A log message as JSON, or None when it is not a JSON object (a runtime's own text line)."""
    text = message.strip()
    start = text.find("{")
    if start < 0:
        return None
    try:
        line = json.loads(text[start:])
    except ValueError:
        return None
    return line if isinstance(line, dict) else None


def record_lines(lines: list[dict[str, Any]], store: AuditEventStore, observer: str) -> Recorded:
    """Store the AuditEvent of every line that tells of a request; raises when a write fails."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        seen = occurrence(line)
        if seen is not None:
            found.setdefault(seen.event_id, audit_event(seen, observer))
    if not found:
        return Recorded(0, 0, len(lines))
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(found))) as pool:
        results = list(pool.map(store.record, found.values()))
    stored = sum(1 for result in results if result)
    return Recorded(stored, len(results) - stored, len(lines) - len(found))


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """The recorder function's handler: one subscription delivery in, its AuditEvents stored."""
    from fhir_api.logs import get_logger
    from fhir_api.settings import get_settings
    from fhir_api.store.dynamo import dynamodb_client

    settings = get_settings()
    store = AuditEventStore(
        dynamodb_client(settings), settings.audit_events_table, settings.audit_retention_days
    )
    result = record_lines(subscription_lines(event), store, settings.audit_observer)
    get_logger().info(
        "audit events recorded",
        extra={"stored": result.stored, "duplicates": result.duplicates, "skipped": result.skipped},
    )
    return {"stored": result.stored, "duplicates": result.duplicates, "skipped": result.skipped}
