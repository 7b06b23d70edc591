"""Fixtures every kind of test may use: the template, moto tables built from it, one DynamoDB Local
per test session (started only when a test asks for it), and local tokens."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import hypothesis
import pytest
from moto import mock_aws

from fhir_api import logs
from fhir_api.settings import reset_settings
from local import issuer, tables
from local.dynamodb import DynamoDBLocal
from local.lambda_runtime import release_environment
from local.template import load_template

# Property tests judge answers, never speed: a busy machine must not fail them (speed is make bench's).
hypothesis.settings.register_profile("project", deadline=None)
hypothesis.settings.load_profile("project")


@pytest.fixture(scope="session", autouse=True)
def function_logs_to_the_process_output() -> None:
    """The functions' logger writes to the process's own standard output, as in Lambda: not to the
    stream of whichever test first created it, which pytest closes when that test ends."""
    logs.get_logger().stream = sys.__stdout__


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml, parsed once."""
    return load_template()


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """Put the process environment back as it was (gateways write the functions' variables into it)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    release_environment()


@pytest.fixture
def moto_tables(
    monkeypatch: pytest.MonkeyPatch, template: dict[str, Any], restore_environ: None
) -> Iterator[dict[str, str]]:
    """The template's tables on moto (in-process DynamoDB), with the functions' table variables set;
    yields logical id -> table name."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("DYNAMODB_ENDPOINT", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        names = tables.create_tables(client, template)
        for name, value in tables.table_env("", template).items():
            monkeypatch.setenv(name, value)
        release_environment()
        yield names
    reset_settings()
    release_environment()


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local (in memory, on a free port) for the whole test session."""
    from local.stack import start_dynamodb

    instance = start_dynamodb()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def token() -> Callable[..., str]:
    """Factory of local bearer tokens: ``token("admin", sub="u1", ttl=-60, roles=[...])``."""

    def make(
        role: str, sub: str = issuer.DEFAULT_SUB, ttl: int = issuer.DEFAULT_TTL, **overrides: Any
    ) -> str:
        return issuer.mint(role, sub, ttl, **overrides)

    return make
