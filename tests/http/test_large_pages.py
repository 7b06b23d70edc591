"""Large resources through the local gateway: a search page stops before Lambda's 6 MB answer limit,
and its next links return every resource exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from tests._examples import minimal_encounter

DEFAULT_RESPONSE_LIMIT = 5 * 1024 * 1024
LARGE_BODY_BYTES = 300 * 1024
NOTE_LINE = 'Patient said "ça va", pain 3\\10 — reviewed. '
PATIENT = {"resourceType": "Patient", "name": [{"family": "Oversize", "given": ["Ada"]}]}


def large_encounter(patient_id: str, marker: str) -> str:
    """The JSON body of an Encounter of about LARGE_BODY_BYTES (a long clinical note)."""
    document: dict[str, Any] = minimal_encounter(patient_id)
    bare = len(json.dumps(document))
    line_bytes = len(json.dumps(NOTE_LINE)) - 2
    document["reasonCode"] = [{"text": marker + NOTE_LINE * ((LARGE_BODY_BYTES - bare) // line_bytes)}]
    return json.dumps(document)


def test_a_search_over_large_encounters_pages_under_the_response_limit(
    api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # Given 21 encounters of about 300 KB each for one patient
    headers = {**auth("practitioner"), "Content-Type": "application/fhir+json"}
    patient = api.post("Patient", headers=headers, data=json.dumps(PATIENT)).json()["id"]
    created = []
    for number in range(21):
        answer = api.post("Encounter", headers=headers, data=large_encounter(patient, f"#{number} "))
        assert answer.status_code == 201, answer.text[:300]
        created.append(answer.json()["id"])

    # When the client asks for all of them on one page and follows the next links
    url: str | None = f"Encounter?subject=Patient/{patient}&_count=100"
    pages = []
    while url is not None:
        answer = api.get(url, headers=headers)
        assert answer.status_code == 200, answer.text[:300]
        bundle = answer.json()
        # The body as it travels inside Lambda's JSON answer (escaped once more)
        pages.append((len(json.dumps(answer.text)), bundle))
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)

    # Then every page is under the limit, the first ends early, and each encounter comes once
    assert all(size <= DEFAULT_RESPONSE_LIMIT for size, _ in pages)
    assert len(pages) >= 2 and "total" not in pages[0][1]
    found = [entry["resource"]["id"] for _, bundle in pages for entry in bundle.get("entry", [])]
    assert sorted(found) == sorted(created) and len(found) == len(set(found))
