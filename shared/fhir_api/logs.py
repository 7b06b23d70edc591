"""The functions' logger: one JSON line per record on standard output, which Lambda sends to CloudWatch Logs.

Every line carries the level, where it was logged, the message and the time, then the service, the
invocation's Lambda context (``cold_start``, ``function_name``, ``function_memory_size``,
``function_arn``, ``function_request_id``), its ``correlation_id`` (the API Gateway request id), what
the call passed as ``extra`` (an audit record under ``audit``), an exception's traceback, and the X-Ray
trace id when Lambda sets one. These are the keys and the order of Powertools' Logger, whose format
CloudWatch queries, metric filters and the audit recorder read; it is written here in a few lines
because importing Powertools' logging cost every cold start about 18 ms and its formatter a third of a
warm read's own work (decision 0028).

Settings: ``POWERTOOLS_SERVICE_NAME`` (the ``service`` key and the logger's name) and
``POWERTOOLS_LOG_LEVEL``, else Lambda's own ``AWS_LAMBDA_LOG_LEVEL``, else INFO. Audit records are INFO.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

DEFAULT_SERVICE = "service_undefined"
# The attributes every LogRecord has; whatever else a record holds came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

# The keys of the invocation under way (one per thread: the local stack runs functions on threads).
_NO_KEYS: Mapping[str, Any] = MappingProxyType({})
_invocation_keys: ContextVar[Mapping[str, Any]] = ContextVar("invocation_keys", default=_NO_KEYS)
_cold_start = True


class JsonLineFormatter(logging.Formatter):
    """A record as one compact JSON line (see the module's docstring for the keys)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:  # noqa: A003 (logging's name)
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": self.formatTime(record),
            "service": self.service,
            **_invocation_keys.get(),
        }
        line.update((key, value) for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES)
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            line["exception_name"] = record.exc_info[0].__name__
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:
            line["xray_trace_id"] = trace.split(";")[0].replace("Root=", "")
        kept = {key: value for key, value in line.items() if value is not None}
        return json.dumps(kept, separators=(",", ":"), ensure_ascii=False, default=str)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """``2026-11-26 15:18:31,060+0000``: local time (UTC in Lambda), milliseconds, the offset."""
        moment = time.localtime(record.created)
        return time.strftime(f"%Y-%m-%d %H:%M:%S,{int(record.msecs):03d}%z", moment)


class FunctionLogger:
    """The logger every function writes through: ``info``/``warning``/``error``/``exception`` with
    ``extra``, ``set_correlation_id``, and ``registered_handler`` (its stream handler)."""

    def __init__(self) -> None:
        self.service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
        self.logger = logging.getLogger(self.service)
        # Its own line per record, never a second one through the root logger's handlers.
        self.logger.propagate = False
        self.logger.setLevel(_level())
        existing = [
            handler for handler in self.logger.handlers if isinstance(handler.formatter, JsonLineFormatter)
        ]
        if existing:
            self.registered_handler: logging.Handler = existing[0]
        else:
            self.registered_handler = logging.StreamHandler(sys.stdout)
            self.registered_handler.setFormatter(JsonLineFormatter(self.service))
            self.logger.addHandler(self.registered_handler)

    def info(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self.logger.info(message, extra=extra, stacklevel=2)

    def warning(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self.logger.warning(message, extra=extra, stacklevel=2)

    def error(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self.logger.error(message, extra=extra, stacklevel=2)

    def exception(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        """An ERROR line with the exception being handled and its traceback."""
        self.logger.exception(message, extra=extra, stacklevel=2)

    def set_correlation_id(self, value: str | None) -> None:
        """The ``correlation_id`` of the lines the invocation under way logs from now on."""
        _invocation_keys.set({**_invocation_keys.get(), "correlation_id": value})


def _level() -> int:
    named = os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("AWS_LAMBDA_LOG_LEVEL") or "INFO"
    level = logging.getLevelName(named.upper())
    return level if isinstance(level, int) else logging.INFO


_logger: FunctionLogger | None = None


def get_logger() -> FunctionLogger:
    """The functions' logger, created on first use."""
    global _logger
    if _logger is None:
        _logger = FunctionLogger()
    return _logger


def with_lambda_context(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``handler`` with every line it logs carrying its invocation's Lambda context; the keys of an
    earlier invocation (its correlation id included) are gone."""

    def logged(event: Any, context: Any) -> Any:
        global _cold_start
        cold, _cold_start = _cold_start, False
        keys = {
            "cold_start": cold,
            "function_name": getattr(context, "function_name", None),
            "function_memory_size": _memory_size(context),
            "function_arn": getattr(context, "invoked_function_arn", None),
            "function_request_id": getattr(context, "aws_request_id", None),
        }
        token = _invocation_keys.set(keys)
        try:
            return handler(event, context)
        finally:
            _invocation_keys.reset(token)

    return logged


def _memory_size(context: Any) -> int | None:
    try:
        return int(context.memory_limit_in_mb)
    except (AttributeError, TypeError, ValueError):
        return None
