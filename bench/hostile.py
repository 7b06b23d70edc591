"""The most any single request reads: searches written to read the whole 20,000-encounter table.

Each runs once through the search handler while a recorder counts what DynamoDB reports reading for it
(ScannedCount of every Query of every partition, the items of every BatchGetItem and GetItem), so the
figure does not take the store's own count on trust. ``max_items_per_request`` must not exceed
``SEARCH_READ_BUDGET``: a search that would read more answers a shorter page with a next link, or is
refused with 400 too-costly where only a whole count would do. Deep paging follows next links of a
search whose filter the index cannot decide, page after page, each page a request of its own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.calls import CallRecorder, items_read
from bench.data import ACT_CODE
from bench.events import search_event
from local.lambda_runtime import LambdaContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

EVERY_STATUS = "planned,arrived,triaged,in-progress,onleave,finished,cancelled,entered-in-error,unknown"
CHECK_UP = "http://snomed.info/sct|185349003"
DEEP_PAGES = 15

SEARCHES: dict[str, dict[str, list[str]]] = {
    "_total=accurate&class=EMER": {"class": [f"{ACT_CODE}|EMER"], "_total": ["accurate"]},
    "_total=accurate&type=check-up": {"type": [CHECK_UP], "_total": ["accurate"]},
    "_total=accurate": {"_total": ["accurate"]},
    "_count=0": {"_count": ["0"]},
    "_summary=count": {"_summary": ["count"]},
    "_summary=count&status=finished": {"_summary": ["count"], "status": ["finished"]},
    "date=gt2024-01-01&_count=100": {"date": ["gt2024-01-01"], "_count": ["100"]},
    "date=ne2024-06-01&_count=100": {"date": ["ne2024-06-01"], "_count": ["100"]},
    "class=VR&_count=100": {"class": [f"{ACT_CODE}|VR"], "_count": ["100"]},
    "status=<all 9 codes>&_count=100": {"status": [EVERY_STATUS], "_count": ["100"]},
    "status=<all 9 codes>&_total=accurate": {"status": [EVERY_STATUS], "_total": ["accurate"]},
    "_sort=_lastUpdated": {"_sort": ["_lastUpdated"]},
    "_sort=-_lastUpdated&status=finished": {"_sort": ["-_lastUpdated"], "status": ["finished"]},
    # A chain every patient meets, and one page of encounters with each patient included.
    "patient.family=family&_count=100": {"patient.family": ["family"], "_count": ["100"]},
    "patient.birthdate=ge1900&_total=accurate": {"patient.birthdate": ["ge1900"], "_total": ["accurate"]},
    "_include=Encounter:subject&_count=100": {"_include": ["Encounter:subject"], "_count": ["100"]},
}
DEEP = ("class=EMER&_count=100, next links", {"class": [f"{ACT_CODE}|EMER"], "_count": ["100"]})


@dataclass(frozen=True)
class Request:
    """One hostile request: its answer and what it read."""

    name: str
    status: int
    entries: int
    items_read: int
    ms: float


@dataclass
class HostileRun:
    """Every hostile request of one run."""

    budget: int
    requests: list[Request]

    @property
    def max_items(self) -> int:
        """The most items one request read."""
        return max(request.items_read for request in self.requests)


def _one(
    name: str, query: dict[str, list[str]], handler: Handler, recorder: CallRecorder
) -> tuple[Request, dict[str, Any]]:
    with recorder.recording() as calls:
        began = time.perf_counter()
        answer = handler(search_event(query), LambdaContext("encounter_search", str(uuid.uuid4())))
        took = (time.perf_counter() - began) * 1000
    body = json.loads(answer["body"])
    if answer["statusCode"] not in (200, 400):
        raise RuntimeError(f"hostile search {name} answered {answer['statusCode']}: {answer['body'][:300]}")
    request = Request(name, answer["statusCode"], len(body.get("entry", [])), items_read(calls), took)
    return request, body


def measure(handler: Handler, recorder: CallRecorder, budget: int) -> HostileRun:
    """Run every hostile search once, then page ``DEEP_PAGES`` deep through one."""
    run = HostileRun(budget, [])
    for name, query in SEARCHES.items():
        run.requests.append(_one(name, query, handler, recorder)[0])
    name, query = DEEP
    for page in range(1, DEEP_PAGES + 1):
        request, body = _one(f"{name} (page {page})", query, handler, recorder)
        run.requests.append(request)
        link = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), None)
        if link is None:
            break
        query = parse_qs(urlsplit(link).query)
    return run
