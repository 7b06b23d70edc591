"""Warm overhead: a request through the handler against the DynamoDB calls the handler makes for it.

For each interaction the handler answers one request while a recorder notes its DynamoDB calls; those
calls are then replayed straight on the same client. The timed loop alternates handler and replay, so
machine noise hits both alike; each figure is a median. Read: one GetItem. Search for one patient: one
Query of ``subject-index`` and one BatchGetItem. Create: one TransactWriteItems, replayed with a fresh
id each time (the same items, sizes and conditions, so it succeeds as the handler's does).

The handler's own work is timed apart: the same requests with DynamoDB's recorded answers handed back
instead of sent (``calls.answered_from``), less the raw calls answered the same way (botocore's
validation and serialisation are in both), so that only the function's own Python is left.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.calls import Bound, Call, CallRecorder, answered_from, bind, replay
from local.lambda_runtime import LambdaContext

WARMUP = 10  # untimed rounds before the timed ones

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class Overhead:
    """One interaction's warm latencies: through the handler and as raw DynamoDB calls."""

    interaction: str
    calls: list[str]
    handler_ms: list[float]
    raw_ms: list[float]
    own_us: float = 0.0  # its own work: median with DynamoDB's answers handed back, less the raw calls'

    @property
    def handler_median_ms(self) -> float:
        return statistics.median(self.handler_ms)

    @property
    def raw_median_ms(self) -> float:
        return statistics.median(self.raw_ms)

    @property
    def ratio(self) -> float:
        """Median through the handler over median of the raw calls."""
        return self.handler_median_ms / self.raw_median_ms


def _fresh_ids(calls: list[Call], old_id: str) -> list[Call]:
    """``calls`` with ``old_id`` replaced by a new id everywhere (a create replayed as a new resource)."""
    text = json.dumps([call.params for call in calls]).replace(old_id, str(uuid.uuid4()))
    return [Call(call.operation, params) for call, params in zip(calls, json.loads(text), strict=True)]


def _timed_replay(bound: Bound) -> float:
    began = time.perf_counter()
    replay(bound)
    return (time.perf_counter() - began) * 1000


def _timed_call(handler: Handler, event: dict[str, Any], context: Any) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    answer = handler(event, context)
    return (time.perf_counter() - began) * 1000, answer


def measure(
    interaction: str,
    handler: Handler,
    make_event: Callable[[], dict[str, Any]],
    recorder: CallRecorder,
    expected_status: int,
    runs: int,
    warmup: int = WARMUP,
) -> Overhead:
    """Time ``handler`` on ``make_event()`` against the DynamoDB calls it makes, ``runs`` times each."""
    with recorder.recording(keep_answers=True) as recorded:
        answer = handler(make_event(), LambdaContext(interaction, str(uuid.uuid4())))
    if answer["statusCode"] != expected_status:
        raise RuntimeError(f"{interaction} answered {answer['statusCode']}: {answer.get('body')}")
    calls = list(recorded)
    created_id = None
    if interaction == "create":
        created_id = json.loads(answer["body"])["id"]
    client = recorder.client
    handler_ms: list[float] = []
    raw_ms: list[float] = []
    for index in range(warmup + runs):
        event = make_event()
        context = LambdaContext(interaction, str(uuid.uuid4()))
        raw_calls = bind(client, _fresh_ids(calls, created_id) if created_id else calls)
        # Alternate which goes first, so neither always finds the other's pages warm.
        if index % 2:
            raw_took = _timed_replay(raw_calls)
            handler_took, answer = _timed_call(handler, event, context)
        else:
            handler_took, answer = _timed_call(handler, event, context)
            raw_took = _timed_replay(raw_calls)
        if answer["statusCode"] != expected_status:
            raise RuntimeError(f"{interaction} answered {answer['statusCode']}: {answer.get('body')}")
        if index >= warmup:
            handler_ms.append(handler_took)
            raw_ms.append(raw_took)
    own_us = _own_work_us(interaction, handler, make_event, client, calls, expected_status, runs, warmup)
    return Overhead(interaction, [call.operation for call in calls], handler_ms, raw_ms, own_us)


def _own_work_us(
    interaction: str,
    handler: Handler,
    make_event: Callable[[], dict[str, Any]],
    client: Any,
    calls: list[Call],
    expected_status: int,
    runs: int,
    warmup: int,
) -> float:
    """Median µs of the handler's own work: the handler and the raw calls, alternately, with every
    DynamoDB call answered from the recording (nothing is sent, so a create stores nothing); botocore's
    client-side work (validation, serialisation) is in both and drops out of the difference."""
    answers = [call.answer or {} for call in calls]
    handler_us: list[float] = []
    raw_us: list[float] = []
    with answered_from(client, answers):
        # Each event made just before its request, as in the timed loop above: events made all at once
        # beforehand would be cold in the CPU's caches by the time the handler reads them.
        for index in range(warmup + runs):
            event = make_event()
            elapsed, answer = _timed_call(handler, event, LambdaContext(interaction, str(uuid.uuid4())))
            if answer["statusCode"] != expected_status:
                raise RuntimeError(f"{interaction} answered {answer['statusCode']} on recorded answers")
            raw = _timed_replay(bind(client, calls))
            if index >= warmup:
                handler_us.append(elapsed * 1000)
                raw_us.append(raw * 1000)
    return statistics.median(handler_us) - statistics.median(raw_us)
