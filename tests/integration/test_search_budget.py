"""Every search and history request reads a bounded number of items and answers under Lambda's 6 MB,
through the handler on DynamoDB Local (and on moto where the data is small)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from handler_calls import Answer, call, create_encounter, create_patient, encounter_for, follow_all, search

from bench.calls import CallRecorder, items_read
from fhir_api.settings import get_settings, reset_settings
from fhir_api.store.dynamo import dynamodb_client

DEFAULT_RESPONSE_LIMIT = 5 * 1024 * 1024
LARGE_BODY_BYTES = 300 * 1024
# Quotes, a backslash and non-ASCII text: each grows when the body is escaped into the proxy response.
NOTE_LINE = 'Patient said "ça va", pain 3\\10 — reviewed. '


def large_encounter(patient_id: str, marker: str, status: str = "finished") -> dict[str, Any]:
    """An Encounter whose request body is about LARGE_BODY_BYTES (a long clinical note)."""
    document = encounter_for(patient_id, status=status)
    bare = len(json.dumps(document))
    line_bytes = len(json.dumps(NOTE_LINE)) - 2
    document["reasonCode"] = [{"text": marker + NOTE_LINE * ((LARGE_BODY_BYTES - bare) // line_bytes)}]
    return document


def proxy_bytes(answer: Answer) -> int:
    """The size of the handler's proxy response as Lambda serialises it (ASCII-escaped: the larger form)."""
    proxy = {"statusCode": answer.status, "headers": answer.headers, "body": answer.text}
    return len(json.dumps({**proxy, "isBase64Encoded": False}))


def next_query(answer: Answer) -> dict[str, list[str]] | None:
    """The query of the answer's next link, if it has one."""
    link = next((link["url"] for link in answer.body["link"] if link["relation"] == "next"), None)
    return parse_qs(urlsplit(link).query) if link else None


def use_budget(monkeypatch: pytest.MonkeyPatch, items: int) -> None:
    """Run the functions with SEARCH_READ_BUDGET=items."""
    monkeypatch.setenv("SEARCH_READ_BUDGET", str(items))
    reset_settings()


@pytest.fixture
def reads(backend: Any) -> CallRecorder:
    """Counts what DynamoDB reports reading (ScannedCount of Queries, items of gets) per request."""
    return CallRecorder(dynamodb_client(get_settings()))


def counted(recorder: CallRecorder, request: Any) -> tuple[Answer, int]:
    """Run ``request()`` and return its answer with the items DynamoDB read for it."""
    with recorder.recording() as calls:
        answer = request()
    return answer, items_read(calls)


@pytest.mark.usefixtures("ddb_tables")
def test_a_page_of_large_encounters_stays_under_the_response_limit_and_paging_returns_each_once() -> None:
    # Given 22 encounters of about 300 KB each (6.6 MB together, more once escaped)
    patient = create_patient("Large")
    created = []
    for number in range(22):
        document = large_encounter(patient, f"#{number} ")
        answer = call("encounter_create", "POST", "/api/fhir/Encounter", document)
        assert answer.status == 201, answer.text[:300]
        created.append(answer.body["id"])

    # When one page of 50 is asked for
    first = search("Encounter", subject=patient, _count="50")

    # Then the page ends before the response limit, without a total, with a next link
    assert first.status == 200, first.text[:300]
    assert proxy_bytes(first) <= DEFAULT_RESPONSE_LIMIT
    assert 1 <= len(first.body["entry"]) < 22
    assert "total" not in first.body
    assert next_query(first) is not None

    # And following the next links yields every encounter exactly once, each page under the limit
    found = [entry["resource"]["id"] for entry in first.body["entry"]]
    query = next_query(first)
    while query is not None:
        page = call("encounter_search", "GET", "/api/fhir/Encounter", query=query)
        assert page.status == 200, page.text[:300]
        assert proxy_bytes(page) <= DEFAULT_RESPONSE_LIMIT
        found += [entry["resource"]["id"] for entry in page.body.get("entry", [])]
        query = next_query(page)
    assert sorted(found) == sorted(created)
    assert len(found) == len(set(found))


@pytest.mark.usefixtures("ddb_tables")
def test_history_of_many_large_versions_pages_under_the_response_limit() -> None:
    # Given an encounter of about 300 KB updated into 22 versions
    patient = create_patient("Versions")
    document = large_encounter(patient, "#1 ", status="in-progress")
    resource_id = call("encounter_create", "POST", "/api/fhir/Encounter", document).body["id"]
    for version in range(2, 23):
        changed = {**large_encounter(patient, f"#{version} ", status="in-progress"), "id": resource_id}
        path = f"/api/fhir/Encounter/{resource_id}"
        answer = call("encounter_update", "PUT", path, changed, path_params={"id": resource_id})
        assert answer.status == 200, answer.text[:300]

    # When its history is read 50 at a time, following next links
    path = f"/api/fhir/Encounter/{resource_id}/_history"
    query: dict[str, list[str]] | None = {"_count": ["50"]}
    pages = []
    while query is not None:
        page = call("encounter_history", "GET", path, query=query, path_params={"id": resource_id})
        assert page.status == 200, page.text[:300]
        pages.append(page)
        query = next_query(page)

    # Then no page exceeds the limit, the first one ends early, and every version comes exactly once
    assert all(proxy_bytes(page) <= DEFAULT_RESPONSE_LIMIT for page in pages)
    assert 1 <= len(pages[0].body["entry"]) < 22
    versions = [int(entry["resource"]["meta"]["versionId"]) for page in pages for entry in page.body["entry"]]
    assert versions == list(range(22, 0, -1))


def test_a_count_over_more_matches_than_the_budget_is_refused_and_pages_still_return_everything(
    monkeypatch: pytest.MonkeyPatch, reads: CallRecorder
) -> None:
    # Given 14 encounters of one patient, and a budget of 10 items read per request
    patient = create_patient("Budget")
    created = [
        create_encounter(
            patient, period={"start": f"2024-02-{day:02d}T09:00:00Z", "end": f"2024-02-{day:02d}T09:30:00Z"}
        )["id"]
        for day in range(1, 15)
    ]
    use_budget(monkeypatch, 10)

    # When the search is counted (_total=accurate, _summary=count or _count=0)
    for params in ({"_total": "accurate"}, {"_summary": "count"}, {"_count": "0"}):
        answer, read = counted(reads, lambda params=params: search("Encounter", subject=patient, **params))

        # Then it is refused as too costly, saying what to narrow, having read no more than the budget
        assert answer.status == 400, answer.text
        issue = answer.body["issue"][0]
        assert issue["code"] == "too-costly"
        assert "narrow" in issue["diagnostics"]
        assert read <= 10

    # And without a count the pages end within the budget, without a total, and return each once
    first, read = counted(reads, lambda: search("Encounter", subject=patient))
    assert first.status == 200 and "total" not in first.body and next_query(first) is not None
    assert read <= 10
    found = follow_all("Encounter", subject=patient)
    assert found == created

    # And a narrower count is answered
    narrow = search("Encounter", subject=patient, date="lt2024-02-04", _total="accurate")
    assert narrow.status == 200 and narrow.body["total"] == 3


def test_a_status_or_list_counts_every_partition_against_the_budget(
    monkeypatch: pytest.MonkeyPatch, reads: CallRecorder
) -> None:
    # Given planned and arrived encounters, and a budget of 12 items per request (8 index shards)
    patient = create_patient("Statuses")
    planned = [create_encounter(patient, status="planned", period=None)["id"] for _ in range(6)]
    arrived = [create_encounter(patient, status="arrived", period=None)["id"] for _ in range(4)]
    use_budget(monkeypatch, 12)

    # When two statuses are OR-ed: 16 index partitions, more than the budget reads
    answer, read = counted(reads, lambda: search("Encounter", status="planned,arrived"))

    # Then the search is refused as too costly before reading anything
    assert answer.status == 400, answer.text
    assert answer.body["issue"][0]["code"] == "too-costly"
    assert "partitions" in answer.body["issue"][0]["diagnostics"]
    assert read == 0

    # And one status (8 partitions) pages within the budget and returns each encounter once
    first, read = counted(reads, lambda: search("Encounter", status="planned"))
    assert first.status == 200 and read <= 12
    assert sorted(follow_all("Encounter", status="planned")) == sorted(planned)
    assert sorted(follow_all("Encounter", status="arrived")) == sorted(arrived)
