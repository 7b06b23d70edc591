"""CORS: off unless configured, and then only for the named origins."""

from __future__ import annotations

import pytest
from handler_calls import call, create_patient

from fhir_api.settings import reset_settings

pytestmark = pytest.mark.usefixtures("moto_tables")

CLINIC_APP = "https://app.clinic.example"


@pytest.fixture
def cors_for_clinic_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGE_TOKEN_SECRET", "cors-test-secret")
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", CLINIC_APP)
    reset_settings()


def read_patient(patient_id: str, origin: str) -> dict[str, str]:
    answer = call(
        "patient_read",
        "GET",
        f"/api/fhir/Patient/{patient_id}",
        path_params={"id": patient_id},
        headers={"Origin": origin},
    )
    assert answer.status == 200
    return answer.headers


def test_cors_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGE_TOKEN_SECRET", "cors-test-secret")
    reset_settings()
    patient_id = create_patient()

    assert "Access-Control-Allow-Origin" not in read_patient(patient_id, CLINIC_APP)
    metadata = call("metadata", "GET", "/api/fhir/metadata")
    assert metadata.body["rest"][0]["security"]["cors"] is False


@pytest.mark.usefixtures("cors_for_clinic_app")
def test_a_named_origin_may_read_answers_and_others_may_not() -> None:
    patient_id = create_patient()

    allowed = read_patient(patient_id, CLINIC_APP)
    other = read_patient(patient_id, "https://elsewhere.example")

    assert allowed["Access-Control-Allow-Origin"] == CLINIC_APP
    assert "ETag" in allowed["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in other
    assert call("metadata", "GET", "/api/fhir/metadata").body["rest"][0]["security"]["cors"] is True


@pytest.mark.usefixtures("cors_for_clinic_app")
def test_a_preflight_is_answered_for_a_named_origin() -> None:
    answer = call("fallback", "OPTIONS", "/api/fhir/Encounter", headers={"Origin": CLINIC_APP})

    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == CLINIC_APP
    assert set(answer.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "PUT"}
    assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
