"""What the functions tell the people who run them: CloudWatch metrics (EMF) and X-Ray traces.

Metrics are written as Embedded Metric Format records on standard output, which Lambda sends to
CloudWatch Logs and CloudWatch turns into metrics; the local stack prints the same records. Every
request adds ``Requests`` and ``Latency`` under the dimensions ``service``, ``function`` and
``status_class`` (2xx, 4xx, 5xx), plus the counts people watch: ``Creates``, ``Conflicts`` (409 and
412), ``Throttles`` (503) and ``ServerErrors``. The authorizer adds ``AuthorizedTokens``, and
``RefusedTokens`` by reason.

Tracing costs cold start (the X-Ray SDK is a large import), so it is loaded only when the deployment
turns it on (``POWERTOOLS_TRACE_DISABLED=false``). Traces carry no PHI: the handler's response and
errors are not captured, and the SDK records DynamoDB calls by operation and table, not by key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = "EncounterApi"
SERVICE = "encounter-api"
CONFLICT_STATUSES = frozenset({409, 412})

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

# One metric set per invocation: Lambda runs one at a time per process, but the local stack serves
# concurrent requests from threads of one process, and Powertools' shared Metrics would mix them.
_invocation_metrics: ContextVar[EphemeralMetrics | None] = ContextVar("invocation_metrics", default=None)


def _new_metrics() -> EphemeralMetrics:
    return EphemeralMetrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE,
        service=os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE,
    )


def get_metrics() -> EphemeralMetrics:
    """The metric set of the invocation under way (a detached one outside ``with_metrics``)."""
    metrics = _invocation_metrics.get()
    return metrics if metrics is not None else _new_metrics()


def status_class(status: int) -> str:
    """``2xx``, ``3xx``, ``4xx`` or ``5xx``."""
    return f"{status // 100}xx"


def record_request(function: str, interaction: str | None, status: int, latency_ms: float) -> None:
    """Count one answered request; written out when the invocation ends (``with_metrics``)."""
    metrics = get_metrics()
    metrics.add_dimension("function", function)
    metrics.add_dimension("status_class", status_class(status))
    metrics.add_metric("Requests", MetricUnit.Count, 1)
    metrics.add_metric("Latency", MetricUnit.Milliseconds, round(latency_ms, 3))
    # A conditional update that finds nothing creates too (update, 201).
    if interaction in ("create", "update") and status == 201:
        metrics.add_metric("Creates", MetricUnit.Count, 1)
    if status in CONFLICT_STATUSES:
        metrics.add_metric("Conflicts", MetricUnit.Count, 1)
    if status == 503:
        metrics.add_metric("Throttles", MetricUnit.Count, 1)
    if status >= 500:
        metrics.add_metric("ServerErrors", MetricUnit.Count, 1)


def record_refused_token(reason: str) -> None:
    """Count a token the authorizer refused, by the fixed phrase that says why."""
    metrics = get_metrics()
    metrics.add_dimension("function", "authorizer")
    metrics.add_dimension("reason", reason[:64])
    metrics.add_metric("RefusedTokens", MetricUnit.Count, 1)


def record_authorized_token() -> None:
    """Count a token the authorizer let through to the route it asked for."""
    metrics = get_metrics()
    metrics.add_dimension("function", "authorizer")
    metrics.add_metric("AuthorizedTokens", MetricUnit.Count, 1)


def with_metrics(handler: LambdaHandler) -> LambdaHandler:
    """Flush the invocation's metrics when it ends, and count cold starts (``ColdStart``)."""

    def measured(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics = _new_metrics()
        token = _invocation_metrics.set(metrics)
        try:
            flushed = metrics.log_metrics(handler, capture_cold_start_metric=True)
            return flushed(event, context)
        finally:
            _invocation_metrics.reset(token)

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
