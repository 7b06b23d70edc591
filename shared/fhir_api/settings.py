"""The service's settings: one model, read once from the environment.

Every Lambda function and the local gateway get these variables from template.yaml; nothing else in
the package reads ``os.environ``. The model is a frozen dataclass rather than a pydantic model on
purpose: importing pydantic costs a read function about a third of its cold start (the read path
validates no resource, so nothing else there needs pydantic).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot run with."""


def _setting(env: str, default: Any, low: float | None = None, high: float | None = None) -> Any:
    """A field read from environment variable ``env``, within [low, high] when numeric."""
    return dataclasses.field(default=default, metadata={"env": env, "low": low, "high": high})


@dataclass(frozen=True)
class Settings:
    """Environment of the API functions and the authorizer."""

    encounters_table: str = _setting("ENCOUNTERS_TABLE", "Encounters")
    patients_table: str = _setting("PATIENTS_TABLE", "Patients")
    versions_table: str = _setting("VERSIONS_TABLE", "Versions")
    idempotency_table: str = _setting("IDEMPOTENCY_TABLE", "Idempotency")
    subscriptions_table: str = _setting("SUBSCRIPTIONS_TABLE", "Subscriptions")
    # The audit trail: the AuditEvents table, how long its records are kept (six years by default,
    # HIPAA's retention of documentation), and the name AuditEvents give the API that saw a request.
    audit_events_table: str = _setting("AUDIT_EVENTS_TABLE", "AuditEvents")
    audit_retention_days: int = _setting("AUDIT_RETENTION_DAYS", 2192, 1, 36500)
    audit_observer: str = _setting("AUDIT_OBSERVER", "encounter-api")
    # Set only for DynamoDB Local; in AWS the SDK finds the regional endpoint itself.
    dynamodb_endpoint: str | None = _setting("DYNAMODB_ENDPOINT", None)
    aws_region: str = _setting("AWS_REGION", "us-east-1")
    # One index partition takes ~1,000 writes/s: hot values (status=finished, the all-encounters
    # date index) are spread over this many shards and queried in parallel.
    index_shards: int = _setting("INDEX_SHARDS", 8, 1, 64)
    # HMAC key that signs search page tokens, so a client cannot edit one to read another query.
    page_token_secret: str = _setting("PAGE_TOKEN_SECRET", "")
    page_token_ttl_seconds: int = _setting("PAGE_TOKEN_TTL_SECONDS", 3600, 60)
    idempotency_ttl_seconds: int = _setting("IDEMPOTENCY_TTL_SECONDS", 86400, 60)
    # Overrides the base URL derived from the request (custom domains behind a proxy).
    public_base_url: str | None = _setting("PUBLIC_BASE_URL", None)
    # Comma-separated origins allowed by CORS; empty keeps CORS off.
    cors_allowed_origins: str = _setting("CORS_ALLOWED_ORIGINS", "")
    # Below DynamoDB's 400 KB item limit, with room for the server's id and meta.
    max_body_bytes: int = _setting("MAX_BODY_BYTES", 350 * 1024, 1024, 380 * 1024)

    # Transaction and batch Bundles (fhir_api.bundles): entries per Bundle and bytes of its body. A
    # Bundle carries several resources, so its body may exceed one resource's; Lambda takes at most
    # 6 MB, and the answer (each entry's resource echoed) must fit it too.
    max_bundle_entries: int = _setting("MAX_BUNDLE_ENTRIES", 100, 1, 1000)
    max_bundle_bytes: int = _setting("MAX_BUNDLE_BYTES", 2 * 1024 * 1024, 64 * 1024, 5 * 1024 * 1024)

    # "snap-start" while Lambda initialises a function for a SnapStart snapshot.
    lambda_initialization_type: str = _setting("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")

    # Token verification (the authorizer only).
    token_issuer: str = _setting("TOKEN_ISSUER", "")
    token_audience: str = _setting("TOKEN_AUDIENCE", "")
    jwks_url: str = _setting("JWKS_URL", "")
    roles_claim: str = _setting("ROLES_CLAIM", "roles")
    token_algorithms: str = _setting("TOKEN_ALGORITHMS", "RS256,ES256")
    token_leeway_seconds: int = _setting("TOKEN_LEEWAY_SECONDS", 30, 0, 60)
    jwks_timeout_seconds: float = _setting("JWKS_TIMEOUT_SECONDS", 3.0, 0.1, 10)
    # Comma-separated OAuth client ids whose access tokens may come without `aud` (Cognito's carry
    # `client_id` instead); empty accepts only tokens whose `aud` is TOKEN_AUDIENCE.
    allowed_client_ids: str = _setting("ALLOWED_CLIENT_IDS", "")
    # Tokens whose exp - iat exceeds this are refused; 0 leaves the lifetime to the issuer.
    token_max_lifetime_seconds: int = _setting("TOKEN_MAX_LIFETIME_SECONDS", 0, 0)
    # The OAuth token endpoint advertised by /metadata and /.well-known/smart-configuration.
    token_endpoint: str = _setting("TOKEN_ENDPOINT", "")
    token_endpoint_auth_methods: str = _setting(
        "TOKEN_ENDPOINT_AUTH_METHODS", "private_key_jwt,client_secret_basic"
    )

    # The Secrets Manager secret holding the page token key, read once per container
    # (fhir_api.store.secrets); PAGE_TOKEN_SECRET, when set (local stack, tests), is used instead.
    page_token_secret_arn: str = _setting("PAGE_TOKEN_SECRET_ARN", "")
    # Items one search or history request may read from DynamoDB: index entries and resources, over
    # every Query of every partition and every BatchGetItem. A search past it ends its page early
    # (with a next link) or, when only a whole count would do, is refused as too costly.
    search_read_budget: int = _setting("SEARCH_READ_BUDGET", 1000, 10, 100_000)
    # Bytes of a search or history answer as Lambda serialises it; Lambda refuses answers over 6 MB.
    # At least 2 MB, so one entry (a resource of at most MAX_BODY_BYTES, escaped) always fits.
    max_response_bytes: int = _setting(
        "MAX_RESPONSE_BYTES", 5 * 1024 * 1024, 2 * 1024 * 1024, 6 * 1024 * 1024 - 64 * 1024
    )

    # Change notifications (fhir_api.notifications): the bus the change events go to, the queue of
    # rest-hook deliveries, how long one POST may take and how many times it is tried.
    event_bus_name: str = _setting("EVENT_BUS_NAME", "")
    delivery_queue_url: str = _setting("DELIVERY_QUEUE_URL", "")
    delivery_timeout_seconds: float = _setting("DELIVERY_TIMEOUT_SECONDS", 5.0, 0.5, 10)
    delivery_max_attempts: int = _setting("DELIVERY_MAX_ATTEMPTS", 5, 1, 10)
    # 1 lets rest-hook endpoints be http(s) on a loopback address (the local stack, the tests); in AWS
    # it stays 0: https to public addresses only.
    allow_http_loopback_endpoints: int = _setting("ALLOW_HTTP_LOOPBACK_ENDPOINTS", 0, 0, 1)

    def __post_init__(self) -> None:
        for item in fields(self):
            value, low, high = getattr(self, item.name), item.metadata["low"], item.metadata["high"]
            if (low is not None and value < low) or (high is not None and value > high):
                raise SettingsError(f"{item.metadata['env']}={value} is outside [{low}, {high}].")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """The settings the environment variables name; unset ones keep their defaults."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = environ.get(item.metadata["env"])
            if raw is None:
                continue
            kind = type(item.default) if item.default is not None else str
            try:
                values[item.name] = kind(raw.strip()) if kind in (int, float) else raw
            except ValueError as exc:
                raise SettingsError(f"{item.metadata['env']}={raw!r} is not a {kind.__name__}.") from exc
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (checked like the original)."""
        return dataclasses.replace(self, **changes)

    @property
    def allowed_algorithms(self) -> list[str]:
        """The signing algorithms a token may use, from configuration (never from the token)."""
        return [alg.strip() for alg in self.token_algorithms.split(",") if alg.strip()]

    @property
    def cors_origins(self) -> list[str]:
        """The origins CORS answers for; empty means CORS is off."""
        return [origin.strip() for origin in self.cors_allowed_origins.split(",") if origin.strip()]

    @property
    def client_ids(self) -> frozenset[str]:
        """The client ids whose access tokens are accepted without `aud`."""
        return frozenset(item.strip() for item in self.allowed_client_ids.split(",") if item.strip())


ENVIRONMENT_NAMES: frozenset[str] = frozenset(item.metadata["env"] for item in fields(Settings))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    return Settings.from_environ(os.environ)


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
