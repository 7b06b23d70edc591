"""What the functions tell the people who run them: CloudWatch metrics (EMF) and X-Ray traces.

Metrics are written as Embedded Metric Format records on standard output (one per invocation),
which Lambda sends to CloudWatch Logs and CloudWatch turns into metrics; the local stack prints the
same records. Every request adds ``Requests`` and ``Latency`` under the dimensions ``service``,
``function`` and ``status_class`` (2xx, 4xx, 5xx), plus the counts people watch: ``Creates``,
``Conflicts`` (409 and 412), ``Throttles`` (503) and ``ServerErrors``. The authorizer adds
``AuthorizedTokens``, and ``RefusedTokens`` by reason.

Tracing costs cold start (the X-Ray SDK is a large import), so it is loaded only when the deployment
turns it on (``POWERTOOLS_TRACE_DISABLED=false``). Traces carry no PHI: the handler's response and
errors are not captured, and the SDK records DynamoDB calls by operation and table, not by key.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

NAMESPACE = "EncounterApi"
SERVICE = "encounter-api"
CONFLICT_STATUSES = frozenset({409, 412})
COUNT, MILLISECONDS = "Count", "Milliseconds"
_COMPACT = json.JSONEncoder(separators=(",", ":"))

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class MetricSet:
    """The metrics of one invocation under one set of dimensions, written as one EMF record.

    A few lines of JSON rather than Powertools' metrics provider: this runs on every request, and the
    provider's validation and enum handling cost more than the rest of a warm read's own work.
    """

    def __init__(self) -> None:
        self.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE
        self.dimensions: dict[str, str] = {"service": os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE}
        self.metrics: dict[str, tuple[str, float]] = {}

    def add_dimension(self, name: str, value: str) -> None:
        self.dimensions[name] = value

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.metrics[name] = (unit, float(value))

    def flush(self) -> None:
        """Print the record (nothing when no metric was added)."""
        if not self.metrics:
            return
        sys.stdout.write(emf_record(self.namespace, self.dimensions, self.metrics) + "\n")
        sys.stdout.flush()


def emf_record(namespace: str, dimensions: dict[str, str], metrics: dict[str, tuple[str, float]]) -> str:
    """One CloudWatch Embedded Metric Format record: the directive, the dimension values, the values."""
    directive = _directive(
        namespace, tuple(dimensions), tuple((name, unit) for name, (unit, _) in metrics.items())
    )
    values = _COMPACT.encode({**dimensions, **{name: value for name, (_, value) in metrics.items()}})
    timestamp = int(time.time() * 1000)
    return f'{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":[{directive}]}},{values[1:]}'


# A function writes the same few directives over and over: each is encoded once.
@functools.lru_cache(maxsize=64)
def _directive(namespace: str, dimension_names: tuple[str, ...], units: tuple[tuple[str, str], ...]) -> str:
    """The ``CloudWatchMetrics`` entry: the namespace, the dimension set, each metric's name and unit."""
    directive = {
        "Namespace": namespace,
        "Dimensions": [list(dimension_names)],
        "Metrics": [{"Name": name, "Unit": unit} for name, unit in units],
    }
    return _COMPACT.encode(directive)


# One metric set per invocation: Lambda runs one at a time per process, but the local stack serves
# concurrent requests from threads of one process, and a shared set would mix them.
_invocation_metrics: ContextVar[MetricSet | None] = ContextVar("invocation_metrics", default=None)
_cold_start = True


def get_metrics() -> MetricSet:
    """The metric set of the invocation under way (a detached one outside ``with_metrics``)."""
    metrics = _invocation_metrics.get()
    return metrics if metrics is not None else MetricSet()


def status_class(status: int) -> str:
    """``2xx``, ``3xx``, ``4xx`` or ``5xx``."""
    return f"{status // 100}xx"


def record_request(function: str, interaction: str | None, status: int, latency_ms: float) -> None:
    """Count one answered request; written out when the invocation ends (``with_metrics``)."""
    metrics = get_metrics()
    metrics.add_dimension("function", function)
    metrics.add_dimension("status_class", status_class(status))
    metrics.add_metric("Requests", COUNT, 1)
    metrics.add_metric("Latency", MILLISECONDS, round(latency_ms, 3))
    # A conditional update that finds nothing creates too (update, 201).
    if interaction in ("create", "update") and status == 201:
        metrics.add_metric("Creates", COUNT, 1)
    if status in CONFLICT_STATUSES:
        metrics.add_metric("Conflicts", COUNT, 1)
    if status == 503:
        metrics.add_metric("Throttles", COUNT, 1)
    if status >= 500:
        metrics.add_metric("ServerErrors", COUNT, 1)


def record_refused_token(reason: str) -> None:
    """Count a token the authorizer refused, by the fixed phrase that says why."""
    metrics = get_metrics()
    metrics.add_dimension("function", "authorizer")
    metrics.add_dimension("reason", reason[:64])
    metrics.add_metric("RefusedTokens", COUNT, 1)


def record_authorized_token() -> None:
    """Count a token the authorizer let through to the route it asked for."""
    metrics = get_metrics()
    metrics.add_dimension("function", "authorizer")
    metrics.add_metric("AuthorizedTokens", COUNT, 1)


def with_metrics(handler: LambdaHandler) -> LambdaHandler:
    """Write the invocation's metrics when it ends, and count the process's cold start (``ColdStart``,
    by ``function_name``, as Powertools does)."""

    def measured(event: dict[str, Any], context: Any) -> dict[str, Any]:
        global _cold_start
        if _cold_start:
            _cold_start = False
            cold = MetricSet()
            cold.add_dimension("function_name", str(getattr(context, "function_name", "") or "unknown"))
            cold.add_metric("ColdStart", COUNT, 1)
            cold.flush()
        metrics = MetricSet()
        token = _invocation_metrics.set(metrics)
        try:
            return handler(event, context)
        finally:
            _invocation_metrics.reset(token)
            metrics.flush()

    return measured


def tracing_enabled() -> bool:
    """Whether the deployment asked for X-Ray traces of the functions."""
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").strip().lower() in ("false", "0", "no")


def with_tracing(handler: LambdaHandler) -> LambdaHandler:
    """The handler as an X-Ray subsegment when tracing is on; unchanged (and the SDK unloaded) when off."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE)
    return tracer.capture_lambda_handler(handler, capture_response=False, capture_error=False)
