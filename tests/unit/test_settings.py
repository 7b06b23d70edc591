"""The settings model: read once from the environment, every value checked."""

from __future__ import annotations

import pytest

from fhir_api.settings import ENVIRONMENT_NAMES, Settings, SettingsError


def test_values_come_from_the_named_environment_variables() -> None:
    # Given an environment as template.yaml sets it
    environ = {"ENCOUNTERS_TABLE": "enc", "INDEX_SHARDS": "16", "JWKS_TIMEOUT_SECONDS": "2.5", "OTHER": "x"}

    # When the settings are read
    settings = Settings.from_environ(environ)

    # Then the named ones are taken, typed, and the rest keep their defaults
    assert settings.encounters_table == "enc"
    assert settings.index_shards == 16
    assert settings.jwks_timeout_seconds == 2.5
    assert settings.patients_table == "Patients"
    assert "INDEX_SHARDS" in ENVIRONMENT_NAMES and "OTHER" not in ENVIRONMENT_NAMES


@pytest.mark.parametrize(
    "environ",
    [
        {"INDEX_SHARDS": "0"},
        {"INDEX_SHARDS": "eight"},
        {"TOKEN_LEEWAY_SECONDS": "61"},
        {"PAGE_TOKEN_TTL_SECONDS": "5"},
        {"MAX_BODY_BYTES": "10000000"},
        {"JWKS_TIMEOUT_SECONDS": "60"},
        {"SEARCH_READ_BUDGET": "5"},
        {"MAX_RESPONSE_BYTES": "6291456"},
        {"MAX_RESPONSE_BYTES": "1000000"},
    ],
)
def test_a_value_the_service_cannot_run_with_is_refused_by_name(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(environ))):
        Settings.from_environ(environ)


def test_lists_are_read_from_comma_separated_text() -> None:
    settings = Settings(
        token_algorithms=" RS256, ES256 ,", cors_allowed_origins="https://a.example, https://b.example"
    )

    assert settings.allowed_algorithms == ["RS256", "ES256"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert Settings().cors_origins == []
    assert settings.replace(roles_claim="cognito:groups").roles_claim == "cognito:groups"
