"""Under SnapStart the snapshot is taken after init: the handler loads at init what it would load later."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_api.api.handler import make_handler
from fhir_api.fhir import validation
from fhir_api.settings import reset_settings
from fhir_api.store import dynamo


@pytest.fixture
def loaded_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The models the handler loads (recorded instead of imported), from a process with no client yet."""
    loaded: list[str] = []
    monkeypatch.setattr(validation, "load_model", loaded.append)
    dynamo.reset_client()
    yield loaded
    reset_settings()
    dynamo.reset_client()


@pytest.mark.usefixtures("moto_tables")
def test_a_snapstart_init_creates_the_client_and_loads_the_model(
    monkeypatch: pytest.MonkeyPatch, loaded_models: list[str]
) -> None:
    # Given Lambda initialising the create function for a snapshot
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    reset_settings()

    # When the function's module builds its handler
    make_handler("encounter_create")

    # Then the DynamoDB client exists and the Encounter model was loaded before any request
    assert dynamo._client is not None
    assert loaded_models == ["Encounter"]


@pytest.mark.usefixtures("moto_tables")
def test_an_on_demand_init_stays_lean(monkeypatch: pytest.MonkeyPatch, loaded_models: list[str]) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    reset_settings()

    make_handler("encounter_create")
    make_handler("encounter_read")

    assert dynamo._client is None
    assert loaded_models == []


@pytest.mark.usefixtures("moto_tables")
def test_a_read_function_loads_no_model(monkeypatch: pytest.MonkeyPatch, loaded_models: list[str]) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    reset_settings()

    make_handler("patient_read")

    assert dynamo._client is not None
    assert loaded_models == []
