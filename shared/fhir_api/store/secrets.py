"""Secrets the functions read from AWS Secrets Manager rather than from their environment.

A secret's value in an environment variable is readable by anyone who may read the function's
configuration; the functions get the secret's ARN instead, and ``secretsmanager:GetSecretValue`` on
that secret only. Each value is fetched on first use and kept for the life of the container (a
rotated secret reaches new containers; a redeploy replaces them all).
"""

from __future__ import annotations

from functools import lru_cache

from fhir_api import aws_clients, errors
from fhir_api.settings import Settings

# Secrets Manager answers these when it is overloaded or briefly unavailable: the client may retry.
TRANSIENT_ERRORS = frozenset({"ThrottlingException", "InternalServiceError", "RequestTimeoutException"})


def page_token_secret(settings: Settings) -> str:
    """The key that signs search page tokens: ``PAGE_TOKEN_SECRET`` if set, else the secret that
    ``PAGE_TOKEN_SECRET_ARN`` names; empty when neither is configured (paging then refuses to sign)."""
    if settings.page_token_secret:
        return settings.page_token_secret
    if not settings.page_token_secret_arn:
        return ""
    return _secret_string(settings.page_token_secret_arn, settings.aws_region)


@lru_cache(maxsize=4)
def _secret_string(arn: str, region: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    client = aws_clients.client("secretsmanager", region)
    try:
        answer = client.get_secret_value(SecretId=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in TRANSIENT_ERRORS:
            raise errors.ServiceUnavailable("A service the API needs is busy; retry the request.") from exc
        raise
    except BotoCoreError as exc:
        raise errors.ServiceUnavailable("A service the API needs is unreachable; retry the request.") from exc
    return str(answer["SecretString"])


def reset() -> None:
    """Forget the fetched secrets (tests swap them)."""
    _secret_string.cache_clear()
