"""The page token key read from Secrets Manager (PAGE_TOKEN_SECRET_ARN), as deployed functions get it,
on moto: searches page with it, it is fetched once per container, and a busy Secrets Manager is a 503."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from fhir_api import aws_clients, errors
from fhir_api.settings import Settings, reset_settings
from fhir_api.store import secrets
from tests.integration.handler_calls import call, ids_of, next_link

SECRET_VALUE = "a-page-token-key-from-secrets-manager"


@pytest.fixture
def secret_arn(moto_tables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto secret, named to the functions by ARN only (no PAGE_TOKEN_SECRET in the environment),
    and two patients to page through."""
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = str(client.create_secret(Name="page-token-key", SecretString=SECRET_VALUE)["ARN"])
    monkeypatch.delenv("PAGE_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("PAGE_TOKEN_SECRET_ARN", arn)
    reset_settings()
    secrets.reset()
    for family in ("Ames", "Baker"):
        patient = {"resourceType": "Patient", "name": [{"family": family}]}
        assert call("patient_create", "POST", "/api/fhir/Patient", patient).status == 201
    yield arn
    secrets.reset()


def page(link: str | None = None) -> Any:
    """The first page of all patients, one per page, or the page ``link`` points at."""
    query = parse_qs(urlsplit(link).query) if link else {"_count": ["1"]}
    answer = call("patient_search", "GET", "/api/fhir/Patient", query=query)
    assert answer.status == 200, answer.text
    return answer.body


def test_search_pages_are_signed_with_the_value_of_the_secret_the_arn_names(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a next link signed by a function that knows the key only by its secret's ARN
    first = page()
    link = next_link(first)
    assert link is not None
    # When it is followed by a function given the secret's value directly (as the local stack is)
    monkeypatch.delenv("PAGE_TOKEN_SECRET_ARN")
    monkeypatch.setenv("PAGE_TOKEN_SECRET", SECRET_VALUE)
    reset_settings()
    second = page(link)
    # Then it verifies: the key was the secret's value; together the pages hold both patients once
    assert len(set(ids_of(first)) | set(ids_of(second))) == 2


def test_the_secret_is_fetched_once_per_container(secret_arn: str) -> None:
    # Given a first page, for which the function read the secret
    link = next_link(page())
    # When the secret can no longer be read (deleted) and the next page is asked for
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId=secret_arn, ForceDeleteWithoutRecovery=True
    )
    # Then the container still has the key it read: the page opens
    assert ids_of(page(link))
    # And a new container (nothing cached) could not read it
    secrets.reset()
    with pytest.raises(ClientError):
        secrets.page_token_secret(Settings(page_token_secret_arn=secret_arn))


def test_a_value_in_the_environment_wins_and_none_at_all_is_empty() -> None:
    settings = Settings(page_token_secret="local-key", page_token_secret_arn="arn:aws:secretsmanager:x")
    assert secrets.page_token_secret(settings) == "local-key"
    assert secrets.page_token_secret(Settings()) == ""


def test_a_busy_secrets_manager_is_a_retryable_503(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Secrets Manager throttling the function
    class Throttled:
        def get_secret_value(self, SecretId: str) -> dict[str, Any]:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetSecretValue"
            )

    monkeypatch.setattr(aws_clients, "client", lambda *args, **kwargs: Throttled())
    secrets.reset()
    # Then the key cannot be had now, and the client is told to retry (nothing is cached)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:page-token-key"
    with pytest.raises(errors.ServiceUnavailable):
        secrets.page_token_secret(Settings(page_token_secret_arn=arn))
    assert secrets._secret_string.cache_info().currsize == 0
