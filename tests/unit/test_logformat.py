"""The functions' log lines: the short path writes exactly what Powertools' formatter writes."""

from __future__ import annotations

import logging
import sys

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from fhir_api.logformat import JsonLineFormatter

AUDIT = {"request_id": "r-1", "roles": ["practitioner"], "patients": ["p-1"], "client_id": None, "note": "ça"}


def _record(message: object, *args: object, exc_info: object = None, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("encounter-api", logging.INFO, __file__, 42, message, args, exc_info, "audit")
    record.__dict__.update(extra)
    return record


def _formatters() -> tuple[LambdaPowertoolsFormatter, JsonLineFormatter]:
    keys = {
        "service": "encounter-api",
        "sampling_rate": None,
        "cold_start": False,
        "function_name": "encounter_read",
        "function_memory_size": 512,
        "function_request_id": "req-1",
        "correlation_id": "corr-1",
    }
    powertools, ours = LambdaPowertoolsFormatter(), JsonLineFormatter()
    for formatter in (powertools, ours):
        formatter.append_keys(**keys)
    return powertools, ours


def _failure() -> object:
    try:
        raise ValueError("no")
    except ValueError:
        return sys.exc_info()


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(_record("audit", audit=AUDIT), id="an audit line"),
        pytest.param(_record("request failed", function="encounter_read"), id="a plain line"),
        pytest.param(_record("page %s of %s", 1, 2), id="arguments"),
        pytest.param(_record('{"a": 1}'), id="a JSON message"),
        pytest.param(_record("null"), id="a JSON literal"),
        pytest.param(_record({"a": 1}), id="a dict message"),
        pytest.param(_record("request failed", exc_info=_failure()), id="an exception"),
    ],
)
def test_each_line_is_the_one_powertools_writes(record: logging.LogRecord) -> None:
    powertools, ours = _formatters()

    assert ours.format(record) == powertools.format(record)


def test_the_xray_trace_id_is_written_when_lambda_sets_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    powertools, ours = _formatters()
    record = _record("audit", audit=AUDIT)

    line = ours.format(record)

    assert '"xray_trace_id":"1-5759e988-bd862e3fe1be46a994272793"' in line
    assert line == powertools.format(record)
