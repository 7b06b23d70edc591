"""DynamoDB throttled or unreachable, injected under the functions on DynamoDB Local: the client gets a
503 with Retry-After and an OperationOutcome, nothing is half written, and the SDK's retries stay
bounded (standard mode, max_attempts 3, as store/dynamo.py configures them)."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries import standard
from handler_calls import Answer, invoke

from fhir_api.settings import get_settings, reset_settings
from fhir_api.store import dynamo, idempotency
from local.dynamodb import free_port
from tests._examples import minimal_encounter

# store/dynamo.py configures retries={"total_max_attempts": 3, "mode": "standard"}: three tries in all.
MAX_ATTEMPTS = 3


class _Raw:
    """The raw body of a canned HTTP response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


class Faults:
    """Injects DynamoDB error answers into the functions' own client (its retry policy untouched) and
    counts every attempt the SDK makes, per operation."""

    def __init__(self) -> None:
        self.failing: dict[str, tuple[int, dict[str, Any]]] = {}
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def fail(self, operation: str, error: str, status: int = 400, **extra: Any) -> None:
        """Answer every attempt of ``operation`` with DynamoDB's ``error``."""
        self.failing[operation] = (
            status,
            {"__type": f"com.amazonaws.dynamodb.v20120810#{error}", "message": f"injected {error}", **extra},
        )

    def heal(self) -> None:
        """Let every operation through again."""
        self.failing.clear()

    def before_send(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.attempts[operation] += 1
        canned = self.failing.get(operation)
        if canned is None:
            return None
        status, body = canned
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": str(uuid.uuid4())}
        return AWSResponse(request.url, status, headers, _Raw(json.dumps(body).encode()))


def install(faults: Faults) -> None:
    """Give the functions a fresh DynamoDB client (their own configuration) that reports to ``faults``."""
    dynamo.reset_client()
    idempotency.reset()
    client = dynamo.dynamodb_client(get_settings())
    retries = client.meta.config.retries
    assert retries["mode"] == "standard", retries
    assert retries["total_max_attempts"] == MAX_ATTEMPTS, retries
    client.meta.events.register("before-send.dynamodb.*", faults.before_send)


@pytest.fixture
def faults(ddb_tables: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    """Fault injection on the functions' client over fresh tables; removed afterwards."""
    # The tests count attempts, not waits: the jittered backoff (up to 1 + 2 + 4 s for throttling) is
    # zeroed, the retry policy itself (which errors, how many attempts, the retry quota) is untouched.
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    injected = Faults()
    install(injected)
    yield injected
    dynamo.reset_client()
    idempotency.reset()


@pytest.fixture
def patient_id(faults: Faults) -> str:
    answer = invoke("patient_create", body={"resourceType": "Patient", "name": [{"family": "Faulty"}]})
    assert answer.status == 201, answer.body
    faults.attempts.clear()
    return str(answer.body["id"])


def assert_unavailable(answer: Answer) -> None:
    """A 503 a client can act on: Retry-After in seconds and an OperationOutcome."""
    assert answer.status == 503, (answer.status, answer.body)
    assert answer.headers.get("Retry-After", "").isdigit(), answer.headers
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.body["resourceType"] == "OperationOutcome"
    assert answer.body["issue"][0]["severity"] in ("error", "fatal")


def stored_encounters(ddb_tables: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the tables hold, read past the API: Encounter items and Encounter versions."""
    client = ddb_tables.client
    items = client.scan(TableName=ddb_tables.names["EncountersTable"], ConsistentRead=True)["Items"]
    versions = client.scan(TableName=ddb_tables.names["VersionsTable"], ConsistentRead=True)["Items"]
    return items, [v for v in versions if v["resourceKey"]["S"].startswith("Encounter/")]


@pytest.mark.parametrize("error", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_a_throttled_create_is_503_after_bounded_retries_and_writes_nothing(
    faults: Faults, patient_id: str, ddb_tables: Any, error: str
) -> None:
    # Given DynamoDB throttles every write transaction
    faults.fail("TransactWriteItems", error)

    # When an encounter is created
    answer = invoke("encounter_create", body=minimal_encounter(patient_id))

    # Then the client gets a 503 with Retry-After, after exactly the configured attempts
    assert_unavailable(answer)
    assert faults.attempts["TransactWriteItems"] == MAX_ATTEMPTS

    # And no part of the encounter is stored (no current item, no version)
    assert stored_encounters(ddb_tables) == ([], [])

    # And once DynamoDB recovers, the same request succeeds
    faults.heal()
    assert invoke("encounter_create", body=minimal_encounter(patient_id)).status == 201


def test_a_throttled_update_keeps_the_previous_version(
    faults: Faults, patient_id: str, ddb_tables: Any
) -> None:
    # Given an encounter at version 1, then DynamoDB throttling write transactions
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    assert created.status == 201
    encounter_id = created.body["id"]
    faults.fail("TransactWriteItems", "ThrottlingException")
    faults.attempts.clear()

    # When it is updated
    body = {**minimal_encounter(patient_id, status="arrived"), "id": encounter_id}
    answer = invoke(
        "encounter_update", path_params={"id": encounter_id}, body=body, headers={"If-Match": 'W/"1"'}
    )

    # Then 503 after bounded retries, and the encounter is still version 1 everywhere: the current item
    # is version 1 and no copy of it was written (a copy lands only with the version that replaces it)
    assert_unavailable(answer)
    assert faults.attempts["TransactWriteItems"] == MAX_ATTEMPTS
    faults.heal()
    current = invoke("encounter_read", path_params={"id": encounter_id})
    assert (current.body["meta"]["versionId"], current.body["status"]) == ("1", "planned")
    items, versions = stored_encounters(ddb_tables)
    assert [item["versionId"]["N"] for item in items] == ["1"]
    assert versions == []

    # And the update, sent again, lands with version 1's copy: both versions stay readable
    assert invoke("encounter_update", path_params={"id": encounter_id}, body=body).status == 200
    _, versions = stored_encounters(ddb_tables)
    assert [version["versionId"]["N"] for version in versions] == ["1"]
    first = invoke("encounter_vread", path_params={"id": encounter_id, "vid": "1"})
    assert (first.status, first.body["status"]) == (200, "planned")


def test_a_transaction_cancelled_by_throttling_is_503(
    faults: Faults, patient_id: str, ddb_tables: Any
) -> None:
    # Given DynamoDB cancels write transactions because one of their items is throttled
    faults.fail(
        "TransactWriteItems",
        "TransactionCanceledException",
        Message="Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[ThrottlingError, None, None]",
        CancellationReasons=[{"Code": "ThrottlingError"}, {"Code": "None"}, {"Code": "None"}],
    )

    # When an encounter is created
    answer = invoke("encounter_create", body=minimal_encounter(patient_id))

    # Then it is a 503 with Retry-After and nothing is stored
    assert_unavailable(answer)
    assert stored_encounters(ddb_tables) == ([], [])


@pytest.mark.parametrize(
    "function, operation, kwargs",
    [
        ("encounter_read", "GetItem", {"path_params": {"id": "some-id"}}),
        ("encounter_vread", "GetItem", {"path_params": {"id": "some-id", "vid": "1"}}),
        ("encounter_history", "GetItem", {"path_params": {"id": "some-id"}}),
        ("encounter_search", "Query", {"query": {"status": ["finished"]}}),
        ("encounter_search", "BatchGetItem", {"query": {"_id": ["a,b"]}}),
        ("patient_search", "Query", {"query": {"family": ["smith"]}}),
    ],
)
def test_throttled_reads_are_503(
    faults: Faults, function: str, operation: str, kwargs: dict[str, Any]
) -> None:
    # Given DynamoDB throttles this kind of read
    faults.fail(operation, "ProvisionedThroughputExceededException")

    # When the function reads
    answer = invoke(function, **kwargs)

    # Then a 503 with Retry-After, after a bounded number of attempts (a sharded index is queried once
    # per shard, in parallel)
    assert_unavailable(answer)
    shards = get_settings().index_shards
    assert MAX_ATTEMPTS <= faults.attempts[operation] <= MAX_ATTEMPTS * shards


def test_a_history_whose_older_versions_cannot_be_read_is_503_not_a_short_page(
    faults: Faults, patient_id: str
) -> None:
    # Given an encounter at version 2 (version 1 is a copy in the versions table)
    created = invoke("encounter_create", body=minimal_encounter(patient_id))
    encounter_id = created.body["id"]
    body = {**minimal_encounter(patient_id, status="arrived"), "id": encounter_id}
    assert invoke("encounter_update", path_params={"id": encounter_id}, body=body).status == 200

    # When DynamoDB throttles the Query of the copies while the current item reads fine
    faults.fail("Query", "ProvisionedThroughputExceededException")
    answer = invoke("encounter_history", path_params={"id": encounter_id})

    # Then the history is a 503, never a page that silently holds only the newest version
    assert_unavailable(answer)
    assert faults.attempts["Query"] == MAX_ATTEMPTS


def test_an_internal_server_error_of_dynamodb_is_503(faults: Faults, patient_id: str) -> None:
    # Given DynamoDB answers 500 InternalServerError to reads
    faults.fail("GetItem", "InternalServerError", status=500)

    # When an encounter is read
    answer = invoke("encounter_read", path_params={"id": "anything"})

    # Then a 503 after the configured attempts
    assert_unavailable(answer)
    assert faults.attempts["GetItem"] == MAX_ATTEMPTS


def test_a_failed_idempotent_create_can_be_retried_with_the_same_key(
    faults: Faults, patient_id: str, ddb_tables: Any
) -> None:
    # Given a create with an Idempotency-Key that fails because DynamoDB throttles the write
    key = str(uuid.uuid4())
    faults.fail("TransactWriteItems", "ThrottlingException")
    failed = invoke("encounter_create", body=minimal_encounter(patient_id), headers={"Idempotency-Key": key})
    assert_unavailable(failed)

    # When DynamoDB recovers and the client retries with the same key
    faults.heal()
    retried = invoke("encounter_create", body=minimal_encounter(patient_id), headers={"Idempotency-Key": key})

    # Then the retry is served (not held as "in progress", not the failure replayed), storing one encounter
    # (at version 1, whose only item is the current one)
    assert retried.status == 201, retried.body
    items, versions = stored_encounters(ddb_tables)
    assert [item["id"]["S"] for item in items] == [retried.body["id"]]
    assert versions == []


def test_a_throttled_idempotency_table_is_503_and_writes_nothing(
    faults: Faults, patient_id: str, ddb_tables: Any
) -> None:
    # Given DynamoDB throttles the idempotency record's write
    faults.fail("PutItem", "ThrottlingException")

    # When a create with an Idempotency-Key is sent
    answer = invoke(
        "encounter_create", body=minimal_encounter(patient_id), headers={"Idempotency-Key": str(uuid.uuid4())}
    )

    # Then it is a 503 and nothing is stored
    assert_unavailable(answer)
    assert faults.attempts["PutItem"] == MAX_ATTEMPTS
    assert stored_encounters(ddb_tables) == ([], [])


def test_an_unreachable_dynamodb_is_503_after_bounded_attempts(
    ddb_tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the functions' DynamoDB endpoint refuses connections (nothing listens on the port)
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    monkeypatch.setenv("DYNAMODB_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    reset_settings()
    faults = Faults()
    install(faults)
    try:
        # When a patient is created and an encounter is read
        created = invoke("patient_create", body={"resourceType": "Patient", "name": [{"family": "Offline"}]})
        read = invoke("encounter_read", path_params={"id": "anything"})
    finally:
        dynamo.reset_client()
        idempotency.reset()
        monkeypatch.setenv("DYNAMODB_ENDPOINT", ddb_tables.endpoint)
        reset_settings()

    # Then both are 503 with Retry-After, each after the configured attempts and no more
    assert_unavailable(created)
    assert_unavailable(read)
    assert faults.attempts["GetItem"] == MAX_ATTEMPTS
    assert faults.attempts["TransactWriteItems"] + faults.attempts["GetItem"] <= 2 * MAX_ATTEMPTS

    # And nothing reached the real tables
    patients = ddb_tables.client.scan(TableName=ddb_tables.names["PatientsTable"])["Items"]
    assert patients == []
