"""Every absolute URL an answer carries (Location, Bundle self and next links, fullUrl) is built on
the domain and stage API Gateway reports, or on PUBLIC_BASE_URL, never on the client's Host or
X-Forwarded-* headers."""

from __future__ import annotations

from typing import Any

import pytest
from handler_calls import GATEWAY_DOMAIN, call, create_patient, encounter_for

from fhir_api.settings import reset_settings

pytestmark = pytest.mark.usefixtures("ddb_tables")

SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}


def urls_of(patient_id: str) -> list[str]:
    """The Location of a new encounter, and the links and fullUrls of a two-page search and history."""
    created = call(
        "encounter_create", "POST", "/api/fhir/Encounter", encounter_for(patient_id), headers=SPOOFED
    )
    assert created.status == 201, created.text
    call("encounter_create", "POST", "/api/fhir/Encounter", encounter_for(patient_id), headers=SPOOFED)
    found = call(
        "encounter_search",
        "GET",
        "/api/fhir/Encounter",
        query={"subject": [f"Patient/{patient_id}"], "_count": ["1"]},
        headers=SPOOFED,
    )
    history = call(
        "patient_history",
        "GET",
        f"/api/fhir/Patient/{patient_id}/_history",
        path_params={"id": patient_id},
        headers=SPOOFED,
    )
    bundles: list[dict[str, Any]] = [found.body, history.body]
    links = [link["url"] for bundle in bundles for link in bundle["link"]]
    assert {"self", "next"} <= {link["relation"] for link in found.body["link"]}
    full_urls = [entry["fullUrl"] for bundle in bundles for entry in bundle["entry"]]
    return [created.headers["Location"], *links, *full_urls]


def test_links_use_the_gateways_domain_and_stage_not_the_clients_headers() -> None:
    # Given requests whose Host and X-Forwarded-* headers name another host over plain HTTP
    patient_id = create_patient()
    # Then every URL the answers carry is on API Gateway's domain, stage and scheme
    for url in urls_of(patient_id):
        assert url.startswith(f"https://{GATEWAY_DOMAIN}/Prod/api/fhir/"), url


def test_links_use_public_base_url_when_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment behind a custom domain that sets PUBLIC_BASE_URL
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://fhir.clinic.example/api/fhir")
    reset_settings()
    patient_id = create_patient()
    # Then every URL is on that base
    for url in urls_of(patient_id):
        assert url.startswith("https://fhir.clinic.example/api/fhir/"), url
