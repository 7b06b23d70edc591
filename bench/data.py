"""The data the benchmarks run on: patients and encounters, written by the service's own create path.

Patients, and every encounter a benchmark looks up, go through ``ResourceService.create`` against
DynamoDB Local (validation, rules, one TransactWriteItems each). The bulk of the encounters takes the
same path up to the store's client: ``BulkLoader`` hands the service a store whose client keeps the
transaction instead of sending it, and lands its Put items with BatchWriteItem. The items are those
the store builds, byte for byte; only the conditions are not checked (every subject exists, every id
is new). On DynamoDB Local one transaction takes about as long as a BatchWriteItem of 25 items (the
report prints both rates: ~15-20 ms per encounter through the transaction, under 1 ms in bulk), so
20,000 encounters load in seconds instead of minutes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_api.resources import DEFINITIONS
from fhir_api.resources.service import ResourceService
from fhir_api.settings import Settings
from fhir_api.store.dynamo import Store

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CLASSES = (("AMB", "ambulatory"), ("EMER", "emergency"), ("IMP", "inpatient encounter"), ("VR", "virtual"))
# Most encounters in a clinic's table are over; the status search measures the biggest partition.
STATUS_WEIGHTS = (
    ("finished", 60),
    ("cancelled", 10),
    ("planned", 10),
    ("in-progress", 10),
    ("arrived", 5),
    ("triaged", 5),
)
SEARCHED_STATUS = "finished"
YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
INSTANT = "%Y-%m-%dT%H:%M:%SZ"
BATCH_WRITE_LIMIT = 25
LOADER_THREADS = 4


def patient_document(index: int) -> dict[str, Any]:
    """A plausible Patient."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": f"BENCH{index:07d}"}],
        "name": [{"family": f"Family{index}", "given": [f"Given{index}"]}],
        "gender": ("female", "male", "other", "unknown")[index % 4],
        "birthDate": f"{1940 + index % 70}-{1 + index % 12:02d}-{1 + index % 28:02d}",
    }


def encounter_document(
    patient_id: str, rng: random.Random, status: str | None = None, reason_text: str | None = None
) -> dict[str, Any]:
    """An Encounter of ``patient_id`` somewhere in 2024 (status drawn by STATUS_WEIGHTS unless given)."""
    if status is None:
        names, weights = zip(*STATUS_WEIGHTS, strict=True)
        status = rng.choices(names, weights)[0]
    code, display = rng.choice(CLASSES)
    begin = YEAR_START + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
    period: dict[str, str] = {"start": begin.strftime(INSTANT)}
    if status in ("finished", "cancelled"):
        period["end"] = (begin + timedelta(minutes=rng.choice((15, 30, 45)))).strftime(INSTANT)
    document: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": ACT_CODE, "code": code, "display": display},
        "type": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "185349003",
                        "display": "Encounter for check up",
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": period,
    }
    if reason_text is not None:
        document["reasonCode"] = [{"text": reason_text}]
    return document


def sized_encounter(patient_id: str, size: int) -> dict[str, Any]:
    """A finished Encounter whose compact JSON, as a client sends it, is exactly ``size`` bytes."""
    import json

    document = encounter_document(patient_id, random.Random(1), status="finished", reason_text="")
    bare = len(json.dumps(document, separators=(",", ":")).encode("utf-8"))
    if bare >= size:
        raise ValueError(f"an encounter needs at least {bare} bytes")
    document["reasonCode"] = [{"text": "x" * (size - bare)}]
    return document


class _KeepingClient:
    """Stands in for the DynamoDB client of a Store: keeps each transaction's Put items."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            for action in TransactItems:
                if "Put" in action:
                    self.puts.append((action["Put"]["TableName"], action["Put"]["Item"]))
                elif "Delete" in action:
                    raise ValueError("the bulk loader writes new resources only")
        return {}

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            puts, self.puts = self.puts, []
        return puts


class BulkLoader:
    """Encounters built by the service's create path, landed with BatchWriteItem."""

    def __init__(self, settings: Settings, client: Any) -> None:
        self._kept = _KeepingClient()
        self._client = client
        self._service = ResourceService(
            DEFINITIONS["Encounter"], Store(settings, client=self._kept), settings
        )

    def load(self, documents: Iterable[dict[str, Any]]) -> list[str]:
        """Store ``documents`` as new encounters (version 1); their ids, in order."""
        ids = [self._service.create(document).id for document in documents]
        puts = self._kept.take()
        batches = [
            puts[start : start + BATCH_WRITE_LIMIT] for start in range(0, len(puts), BATCH_WRITE_LIMIT)
        ]
        with ThreadPoolExecutor(max_workers=LOADER_THREADS) as pool:
            list(pool.map(self._write_batch, batches))
        return ids

    def _write_batch(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        request: dict[str, list[dict[str, Any]]] = {}
        for table, item in batch:
            request.setdefault(table, []).append({"PutRequest": {"Item": item}})
        for attempt in range(8):
            unprocessed = self._client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not unprocessed:
                return
            request = unprocessed
            time.sleep(0.05 * 2**attempt)
        raise RuntimeError("DynamoDB Local left items unprocessed after 8 attempts")
