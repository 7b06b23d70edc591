"""The service's settings: one pydantic model, read once from the environment.

Every Lambda function and the local gateway get these variables from template.yaml; nothing else in
the package reads ``os.environ``.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Environment of the API functions and the authorizer."""

    encounters_table: str = Field("Encounters", alias="ENCOUNTERS_TABLE")
    patients_table: str = Field("Patients", alias="PATIENTS_TABLE")
    versions_table: str = Field("Versions", alias="VERSIONS_TABLE")
    idempotency_table: str = Field("Idempotency", alias="IDEMPOTENCY_TABLE")
    # Set only for DynamoDB Local; in AWS the SDK finds the regional endpoint itself.
    dynamodb_endpoint: str | None = Field(None, alias="DYNAMODB_ENDPOINT")
    aws_region: str = Field("us-east-1", alias="AWS_REGION")
    # One index partition takes ~1,000 writes/s: hot values (status=finished, the all-encounters
    # date index) are spread over this many shards and queried in parallel.
    index_shards: int = Field(8, alias="INDEX_SHARDS", ge=1, le=64)
    # HMAC key that signs search page tokens, so a client cannot edit one to read another query.
    page_token_secret: str = Field("", alias="PAGE_TOKEN_SECRET")
    page_token_ttl_seconds: int = Field(3600, alias="PAGE_TOKEN_TTL_SECONDS", ge=60)
    idempotency_ttl_seconds: int = Field(86400, alias="IDEMPOTENCY_TTL_SECONDS", ge=60)
    # Overrides the base URL derived from the request (custom domains behind a proxy).
    public_base_url: str | None = Field(None, alias="PUBLIC_BASE_URL")
    # Comma-separated origins allowed by CORS; empty keeps CORS off.
    cors_allowed_origins: str = Field("", alias="CORS_ALLOWED_ORIGINS")
    max_body_bytes: int = Field(512 * 1024, alias="MAX_BODY_BYTES")

    # Token verification (the authorizer only).
    token_issuer: str = Field("", alias="TOKEN_ISSUER")
    token_audience: str = Field("", alias="TOKEN_AUDIENCE")
    jwks_url: str = Field("", alias="JWKS_URL")
    roles_claim: str = Field("roles", alias="ROLES_CLAIM")
    token_algorithms: str = Field("RS256,ES256", alias="TOKEN_ALGORITHMS")
    token_leeway_seconds: int = Field(30, alias="TOKEN_LEEWAY_SECONDS", ge=0, le=60)
    jwks_timeout_seconds: float = Field(3.0, alias="JWKS_TIMEOUT_SECONDS", gt=0, le=10)

    model_config = {"populate_by_name": True, "frozen": True}

    @property
    def allowed_algorithms(self) -> list[str]:
        """The signing algorithms a token may use, from configuration (never from the token)."""
        return [alg.strip() for alg in self.token_algorithms.split(",") if alg.strip()]

    @property
    def cors_origins(self) -> list[str]:
        """The origins CORS answers for; empty means CORS is off."""
        return [origin.strip() for origin in self.cors_allowed_origins.split(",") if origin.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    known = {field.alias for field in Settings.model_fields.values() if field.alias}
    return Settings.model_validate({key: value for key, value in os.environ.items() if key in known})


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
