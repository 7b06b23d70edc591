"""The functions' log lines: one JSON object per line, with the keys CloudWatch queries and the audit
recorder read, the invocation's Lambda context and its correlation id."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_api import logs
from local.lambda_runtime import LambdaContext


@pytest.fixture
def logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[logs.FunctionLogger, io.StringIO]]:
    """A logger of its own service, writing to a buffer."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "encounter-api-under-test")
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    monkeypatch.setattr(logs, "_cold_start", True)
    created = logs.FunctionLogger()
    stream = io.StringIO()
    created.stream = stream
    yield created, stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_the_invocation_its_correlation_id_and_the_extra_keys(
    logger: tuple[logs.FunctionLogger, io.StringIO],
) -> None:
    functions_logger, stream = logger

    def handler(event: dict[str, Any], context: Any) -> None:
        functions_logger.set_correlation_id(event["request_id"])
        functions_logger.info("audit", extra={"audit": {"status": 200, "client_id": None}})

    logged = logs.with_lambda_context(handler)
    logged({"request_id": "req-1"}, LambdaContext("encounter_read", "lambda-1"))
    logged({"request_id": "req-2"}, LambdaContext("encounter_read", "lambda-2"))

    first, second = _lines(stream)
    assert list(first)[:4] == ["level", "location", "message", "timestamp"]
    assert first["level"] == "INFO" and first["message"] == "audit"
    assert first["location"].startswith("handler:")
    assert first["service"] == "encounter-api-under-test"
    assert first["function_name"] == "encounter_read" and first["function_request_id"] == "lambda-1"
    assert isinstance(first["function_memory_size"], int)
    assert first["correlation_id"] == "req-1" and first["audit"] == {"status": 200, "client_id": None}
    assert first["cold_start"] is True and second["cold_start"] is False
    assert second["correlation_id"] == "req-2" and second["function_request_id"] == "lambda-2"
    assert "xray_trace_id" not in first


def test_an_invocations_keys_do_not_outlive_it(logger: tuple[logs.FunctionLogger, io.StringIO]) -> None:
    functions_logger, stream = logger

    def handler(event: dict[str, Any], context: Any) -> None:
        functions_logger.set_correlation_id("req-1")

    logs.with_lambda_context(handler)({}, LambdaContext("encounter_read", "lambda-1"))
    functions_logger.warning("between invocations")

    (line,) = _lines(stream)
    assert line["level"] == "WARNING"
    assert "correlation_id" not in line and "function_request_id" not in line


def test_an_exception_line_has_its_traceback_and_name(
    logger: tuple[logs.FunctionLogger, io.StringIO],
) -> None:
    functions_logger, stream = logger

    try:
        raise ValueError("the store answered nonsense")
    except ValueError:
        functions_logger.exception("request failed", extra={"function": "encounter_read"})

    (line,) = _lines(stream)
    assert line["level"] == "ERROR" and line["function"] == "encounter_read"
    assert line["exception_name"] == "ValueError"
    assert line["exception"].startswith("Traceback") and "the store answered nonsense" in line["exception"]


def test_the_xray_trace_id_is_written_when_lambda_sets_one(
    logger: tuple[logs.FunctionLogger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    functions_logger, stream = logger
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")

    functions_logger.info("audit")

    assert _lines(stream)[0]["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"


@pytest.mark.parametrize(("setting", "written"), [("WARNING", False), ("info", True), ("DEBUG", True)])
def test_the_log_level_comes_from_the_deployment(
    monkeypatch: pytest.MonkeyPatch, setting: str, written: bool
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", setting)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"encounter-api-level-{setting}")
    functions_logger = logs.FunctionLogger()
    stream = io.StringIO()
    functions_logger.stream = stream

    functions_logger.info("audit")

    assert bool(stream.getvalue()) is written


def test_a_listener_is_handed_each_line_once(logger: tuple[logs.FunctionLogger, io.StringIO]) -> None:
    functions_logger, stream = logger
    heard: list[dict[str, Any]] = []
    functions_logger.add_listener(heard.append)
    functions_logger.add_listener(heard.append)

    functions_logger.info("audit", extra={"audit": {"status": 200}})

    assert heard == _lines(stream)
    assert heard[0]["audit"] == {"status": 200}


def test_a_line_that_cannot_be_written_does_not_fail_the_request(
    logger: tuple[logs.FunctionLogger, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    functions_logger, stream = logger
    stream.close()

    functions_logger.info("audit", extra={"audit": {"status": 200}})

    assert "a log line was not written (ValueError" in capsys.readouterr().err


def test_a_failing_listener_does_not_fail_the_request_or_the_line(
    logger: tuple[logs.FunctionLogger, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    functions_logger, stream = logger

    def broken(line: Any) -> None:
        raise RuntimeError("queue gone")

    functions_logger.add_listener(broken)
    functions_logger.info("audit", extra={"audit": {"status": 200}})

    assert _lines(stream)[0]["audit"] == {"status": 200}
    assert "a log listener failed (RuntimeError: queue gone)" in capsys.readouterr().err
