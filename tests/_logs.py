"""Reading what the functions log: the functions' JSON lines, stdlib records and stdout."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from fhir_api import audit, logs


class CapturedLogs:
    """Every line the process logged during a test: the functions' JSON lines, stdlib records, stdout."""

    def __init__(
        self, stream: io.StringIO, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.stream = stream
        self.caplog = caplog
        self.capsys = capsys

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def audit_records(self) -> list[dict[str, Any]]:
        return [line["audit"] for line in self.json_lines() if line.get("message") == audit.AUDIT_MESSAGE]

    def everything(self) -> str:
        out, err = self.capsys.readouterr()
        records = [
            f"{record.getMessage()} {json.dumps(record.__dict__, default=str)}"
            for record in self.caplog.records
        ]
        return "\n".join([self.stream.getvalue(), out, err, *records])


@contextmanager
def captured_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[CapturedLogs]:
    """Point the functions' logger's stream at a buffer; capture stdlib records too."""
    stream = io.StringIO()
    functions_logger = logs.get_logger()
    previous, functions_logger.stream = functions_logger.stream, stream
    caplog.set_level(logging.INFO)  # what libraries (botocore, the local stack) log at INFO and above
    try:
        yield CapturedLogs(stream, caplog, capsys)
    finally:
        functions_logger.stream = previous
