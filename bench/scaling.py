"""Search latency as the table grows: the same searches at 1,000 and at 20,000 encounters.

Every supported search is a Query on an index: what it reads follows what it returns, not the table.
The one-patient search returns the same ten encounters at both sizes (the other encounters belong to
other patients); the status search returns its first page (20) of the busiest status, spread over
``INDEX_SHARDS`` partitions that are queried in parallel. Both run through the handler; the items
read per search are counted from DynamoDB's answers (ScannedCount of the Queries, items of the
BatchGetItem), so the table shows that the reads stay the same. Each size first runs its searches
unmeasured many times over, so that neither size is timed while DynamoDB Local's JVM is still
compiling its query path.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.calls import CallRecorder, items_read
from local.lambda_runtime import LambdaContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class SearchTiming:
    """One search at one table size."""

    name: str
    encounters: int
    latencies_ms: list[float]
    items_read: int
    returned: int

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)


def measure(
    searches: dict[str, Callable[[], dict[str, Any]]],
    handler: Handler,
    recorder: CallRecorder,
    encounters: int,
    runs: int,
    warmup: int = 5,
) -> dict[str, SearchTiming]:
    """Run each search ``warmup`` times unmeasured, then ``runs`` times timed (interleaved) through
    ``handler``; median latencies."""
    results: dict[str, SearchTiming] = {}
    for name, make_event in searches.items():
        with recorder.recording() as calls:
            answer = handler(make_event(), LambdaContext("encounter_search", str(uuid.uuid4())))
        if answer["statusCode"] != 200:
            raise RuntimeError(f"search {name} answered {answer['statusCode']}: {answer.get('body')}")
        returned = len(json.loads(answer["body"]).get("entry", []))
        results[name] = SearchTiming(name, encounters, [], items_read(calls), returned)
    for index in range(warmup + runs):
        for name, make_event in searches.items():
            event = make_event()
            context = LambdaContext("encounter_search", str(uuid.uuid4()))
            began = time.perf_counter()
            answer = handler(event, context)
            took = (time.perf_counter() - began) * 1000
            if answer["statusCode"] != 200:
                raise RuntimeError(f"search {name} answered {answer['statusCode']}")
            if index >= warmup:
                results[name].latencies_ms.append(took)
    return results
