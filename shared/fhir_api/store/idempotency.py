"""Idempotent creates: a retried POST with the same Idempotency-Key gets the first answer back.

Built on the Powertools idempotency utility and its DynamoDB table (records expire through TTL). The
key is scoped to the caller: the record's key hashes the caller's ``sub`` and the resource type with
the client's key, as one JSON array, so another user sending the same key never receives the first
answer (it holds PHI), whatever characters the ``sub`` or the key contain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from fhir_api import errors
from fhir_api.settings import Settings
from fhir_api.store.dynamo import dynamodb_client

MAX_KEY_LENGTH = 255


@lru_cache(maxsize=4)
def _persistence(table: str, endpoint: str | None, region: str) -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    settings = Settings(idempotency_table=table, dynamodb_endpoint=endpoint, aws_region=region)
    return DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb_client(settings))


def reset() -> None:
    """Forget the persistence layer (tests swap tables and endpoints)."""
    _persistence.cache_clear()


def record_key(scope: tuple[str, ...], key: str) -> str:
    """The idempotency record's key of ``key`` within ``scope`` (``(sub, resource type)``).

    A hash of one JSON array: ``("alice#Encounter", "Patient")`` + ``"k"`` and ``("alice", "Encounter")``
    + ``"Patient#k"`` are different records.
    """
    return hashlib.sha256(json.dumps([*scope, key], ensure_ascii=False).encode("utf-8")).hexdigest()


def run_once_per_key(
    settings: Settings,
    scope: tuple[str, ...],
    key: str,
    body: bytes,
    work: Callable[[], dict[str, Any]],
    context: Any = None,
) -> dict[str, Any]:
    """Run ``work`` once per (scope, key), ``scope`` being (sub, resource type); a repeat gets the
    stored answer.

    The same key with another body is IdempotencyKeyReused (422); a repeat while the first is still
    running is RequestInProgress (409). A failed ``work`` stores nothing, so the client may retry.
    """
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise errors.InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="body",
        expires_after_seconds=settings.idempotency_ttl_seconds,
        raise_on_no_idempotency_key=True,
    )
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)
    persistence = _persistence(settings.idempotency_table, settings.dynamodb_endpoint, settings.aws_region)

    @idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)
    def create_once(request: dict[str, str]) -> dict[str, Any]:
        return work()

    request = {"key": record_key(scope, key), "body": hashlib.sha256(body).hexdigest()}
    try:
        answer: dict[str, Any] = create_once(request=request)
    except IdempotencyValidationError as exc:
        raise errors.IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different body; use a new key for a new request."
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise errors.RequestInProgress(
            "A request with this Idempotency-Key is still in progress; retry shortly."
        ) from exc
    except IdempotencyPersistenceLayerError as exc:
        raise errors.ServiceUnavailable("The database is busy; retry the request.") from exc
    return answer
