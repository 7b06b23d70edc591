"""What the audit trail costs: nothing on a request's path but its log line, and the recorder's writes.

- ``round_trips``: DynamoDB calls a create makes on the AuditEvents table (the recorder writes them
  later, off the request path: 0 is the design);
- ``record_us``: the audit step of a request that returned a page of 20 encounters (finding each
  one's patient and writing the audit line), median of ``RUNS``: the latency the audit trail adds to a
  request, all of it, not only what the AuditEvent fields added to the line;
- write units of one AuditEvent as DynamoDB Local reports them: a read's, and a 20-patient search
  page's (one term item per patient).
"""

from __future__ import annotations

import io
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.calls import CallRecorder
from fhir_api import audit, logs
from fhir_api.auditevents.compartment import patient_ids
from fhir_api.auditevents.events import audit_event, occurrence
from fhir_api.auditevents.store import AuditEventStore
from fhir_api.store.types import StoredResource
from local.lambda_runtime import LambdaContext

RUNS = 300
PAGE = 20


@dataclass
class AuditCost:
    """The audit trail's figures."""

    round_trips: int
    create_calls: int
    record_us: float
    write_units_read: float
    write_units_search: float


def _page(patients: list[str]) -> list[StoredResource]:
    return [
        StoredResource(
            "Encounter",
            str(uuid.uuid4()),
            1,
            "2026-01-01T00:00:00.000000Z",
            json.dumps({"resourceType": "Encounter", "subject": {"reference": f"Patient/{patient}"}}),
        )
        for patient in patients
    ]


def _audit_step(page: list[StoredResource]) -> None:
    audit.audit(
        str(uuid.uuid4()),
        "bench-user",
        ("practitioner",),
        "search",
        "Encounter",
        None,
        200,
        interaction="search-type",
        patients=patient_ids(page),
        query=("date", "subject"),
        client_address="203.0.113.7",
        method="GET",
    )


def _units(recorder: CallRecorder, record: Callable[[], Any]) -> float:
    with recorder.recording() as calls:
        record()
    return sum(float(consumed.get("CapacityUnits", 0)) for call in calls for consumed in call.consumed)


def measure(
    create: Callable[[dict[str, Any], Any], dict[str, Any]],
    create_event: dict[str, Any],
    recorder: CallRecorder,
    capacity_recorder: CallRecorder,
    table: str,
) -> AuditCost:
    """The figures above; ``capacity_recorder`` asks DynamoDB for consumed capacity."""
    with recorder.recording() as calls:
        answer = create(create_event, LambdaContext("encounter_create", str(uuid.uuid4())))
    if answer["statusCode"] != 201:
        raise RuntimeError(f"create answered {answer['statusCode']}: {answer.get('body')}")
    touching = [call for call in calls if table in json.dumps(call.params)]

    functions_logger = logs.get_logger()
    stream, functions_logger.stream = functions_logger.stream, io.StringIO()
    try:
        pages = [_page([str(uuid.uuid4()) for _ in range(PAGE)]) for _ in range(RUNS)]
        took = []
        for page in pages:
            started = time.perf_counter()
            _audit_step(page)
            took.append((time.perf_counter() - started) * 1e6)
    finally:
        functions_logger.stream = stream

    store = AuditEventStore(capacity_recorder.client, table)
    read = occurrence({"message": "audit", "audit": _record("read", ["p-1"], "enc-1")})
    search = occurrence(
        {"message": "audit", "audit": _record("search-type", [str(uuid.uuid4()) for _ in range(PAGE)], None)}
    )
    assert read is not None and search is not None
    return AuditCost(
        round_trips=len(touching),
        create_calls=len(calls),
        record_us=statistics.median(took),
        write_units_read=_units(capacity_recorder, lambda: store.record(audit_event(read, "bench"))),
        write_units_search=_units(capacity_recorder, lambda: store.record(audit_event(search, "bench"))),
    )


def _record(interaction: str, patients: list[str], resource_id: str | None) -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "request_id": str(uuid.uuid4()),
        "sub": "bench-user",
        "roles": ["practitioner"],
        "status": 200,
        "source": "function",
        "interaction": interaction,
        "resource_type": "Encounter",
        "resource_id": resource_id,
        "version_id": "1" if resource_id else None,
        "patients": patients,
        "query": ["date", "subject"] if resource_id is None else [],
        "client_address": "203.0.113.7",
        "method": "GET",
    }
