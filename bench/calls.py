"""Watching the DynamoDB calls of the store's own client through botocore's event hooks.

The store is not changed for the bench: botocore lets a caller register handlers on a client's events.
``provide-client-params`` sees (and may amend) the parameters of every call before they are sent;
``after-call`` sees the parsed answer.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    """One DynamoDB call: its operation, its parameters and what it read."""

    operation: str
    params: dict[str, Any]
    items_read: int = 0
    consumed: list[dict[str, Any]] = field(default_factory=list)
    answer: dict[str, Any] | None = None  # what DynamoDB answered (``recording(keep_answers=True)``)


class CallRecorder:
    """Records the calls a client makes while ``recording()`` is active."""

    def __init__(self, client: Any, consumed_capacity: str | None = None) -> None:
        self.client = client
        self.consumed_capacity = consumed_capacity
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._pending = threading.local()
        self._keep_answers = False

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> dict[str, Any]:
        call = Call(model.name, copy.deepcopy(params))
        with self._lock:
            self.calls.append(call)
        self._pending.call = call
        if self.consumed_capacity is not None:
            params["ReturnConsumedCapacity"] = self.consumed_capacity
        return params

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        call = getattr(self._pending, "call", None)
        if call is None:
            return
        self._pending.call = None
        if self._keep_answers:
            call.answer = copy.deepcopy(parsed)
        if "ScannedCount" in parsed:
            call.items_read += int(parsed["ScannedCount"])
        for items in (parsed.get("Responses") or {}).values():
            call.items_read += len(items)
        if "Item" in parsed:
            call.items_read += 1
        consumed = parsed.get("ConsumedCapacity")
        if consumed:
            call.consumed.extend(consumed if isinstance(consumed, list) else [consumed])

    @contextmanager
    def recording(self, keep_answers: bool = False) -> Iterator[list[Call]]:
        """Record every call made inside the block (from any thread); yields the list it fills. With
        ``keep_answers``, each call keeps a copy of its answer (not otherwise: a timed block would pay
        for the copy)."""
        events = self.client.meta.events
        self.calls = []
        self._keep_answers = keep_answers
        events.register("provide-client-params.dynamodb", self._before, unique_id="bench-before")
        events.register("after-call.dynamodb", self._after, unique_id="bench-after")
        try:
            yield self.calls
        finally:
            events.unregister("provide-client-params.dynamodb", unique_id="bench-before")
            events.unregister("after-call.dynamodb", unique_id="bench-after")


Bound = list[tuple[Callable[..., Any], dict[str, Any]]]


def bind(client: Any, calls: list[Call]) -> Bound:
    """``calls`` as the client's methods and their parameters, ready to replay."""
    methods = {operation: method for method, operation in client.meta.method_to_api_mapping.items()}
    return [(getattr(client, methods[call.operation]), call.params) for call in calls]


def replay(bound: Bound) -> None:
    """Make the bound calls again, one after the other."""
    for method, params in bound:
        method(**params)


class _Answered:
    """What botocore reads of an HTTP response a ``before-call`` handler supplies: its status."""

    status_code = 200
    headers: dict[str, str] = {}


@contextmanager
def answered_from(client: Any, answers: list[dict[str, Any]]) -> Iterator[None]:
    """While active, the client's calls are answered with copies of ``answers``, in turn and round
    again, instead of being sent: a ``before-call`` handler that returns a response ends botocore's call
    there (as its Stubber does). Each copy is made as the call is answered, as botocore's parser makes
    a fresh answer, so that a caller times both alike."""
    if not answers:
        raise ValueError("no answers to give")
    remaining = itertools.cycle(answers)

    def answer(**_: Any) -> tuple[_Answered, dict[str, Any]]:
        return _Answered(), copy.deepcopy(next(remaining))

    events = client.meta.events
    events.register("before-call.dynamodb", answer, unique_id="bench-answered")
    try:
        yield
    finally:
        events.unregister("before-call.dynamodb", unique_id="bench-answered")


def items_read(calls: list[Call]) -> int:
    """Index entries and items the calls read."""
    return sum(call.items_read for call in calls)
