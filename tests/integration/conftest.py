"""Integration fixtures: the template's tables on the session's DynamoDB Local, under a prefix of
their own for each test, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fhir_api.settings import reset_settings
from local import tables
from local.dynamodb import DynamoDBLocal
from local.lambda_runtime import release_environment


@dataclass
class LocalTables:
    """A set of tables on DynamoDB Local: the client, logical id -> name, and the functions' variables."""

    client: Any
    names: dict[str, str]
    env: dict[str, str]
    endpoint: str


@pytest.fixture
def ddb_tables(
    dynamodb_local: DynamoDBLocal,
    template: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    restore_environ: None,
) -> Iterator[LocalTables]:
    """Fresh tables for one test, with ENCOUNTERS_TABLE etc. and DYNAMODB_ENDPOINT set."""
    client = dynamodb_local.client()
    prefix = f"i{uuid.uuid4().hex[:10]}-"
    names = tables.create_tables(client, template, prefix=prefix)
    env = {
        **tables.table_env(prefix, template),
        "DYNAMODB_ENDPOINT": dynamodb_local.endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PAGE_TOKEN_SECRET": "integration-test-page-token-secret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    release_environment()
    try:
        yield LocalTables(client, names, env, dynamodb_local.endpoint)
    finally:
        tables.delete_tables(client, names)
        reset_settings()


@pytest.fixture(params=["moto", "dynamodb-local"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The template's tables on moto and on DynamoDB Local: a test using it runs on both."""
    monkeypatch.setenv("PAGE_TOKEN_SECRET", "integration-test-page-token-secret")
    return request.getfixturevalue("moto_tables" if request.param == "moto" else "ddb_tables")
