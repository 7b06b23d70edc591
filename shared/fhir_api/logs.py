"""The functions' logger: one JSON line per record on standard output, which Lambda sends to CloudWatch Logs.

Every line carries the level, where it was logged, the message and the time, then the service, the
invocation's Lambda context (``cold_start``, ``function_name``, ``function_memory_size``,
``function_arn``, ``function_request_id``), its ``correlation_id`` (the API Gateway request id), what
the call passed as ``extra`` (an audit record under ``audit``), an exception's traceback, and the X-Ray
trace id when Lambda sets one. These are the keys and the order of Powertools' Logger, whose format
CloudWatch queries, metric filters and the audit recorder read. The lines are written here directly,
not through Powertools (its import cost every cold start about 18 ms, decision 0028) nor through the
``logging`` module (its records, caller search and handler chain were a sixth of a warm read's own
work, decision 0030).

Settings: ``POWERTOOLS_SERVICE_NAME`` (the ``service`` key) and ``POWERTOOLS_LOG_LEVEL``, else Lambda's
own ``AWS_LAMBDA_LOG_LEVEL``, else INFO. Audit records are INFO.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TextIO

DEFAULT_SERVICE = "service_undefined"

# The keys of the invocation under way (one per thread: the local stack runs functions on threads).
_NO_KEYS: Mapping[str, Any] = MappingProxyType({})
_invocation_keys: ContextVar[Mapping[str, Any]] = ContextVar("invocation_keys", default=_NO_KEYS)
_cold_start = True
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)

Listener = Callable[[Mapping[str, Any]], None]


class FunctionLogger:
    """The logger every function writes through: ``info``/``warning``/``error``/``exception`` with
    ``extra``, and ``set_correlation_id``. ``stream`` is where the lines go (standard output as the
    logger found it); a listener added with ``add_listener`` is handed every line written, as a dict."""

    def __init__(self) -> None:
        self.service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
        self.level = _level()
        self.stream: TextIO = sys.stdout
        self._listeners: list[Listener] = []
        # One write per line, and lines whole: the local stack's functions share the process.
        self._lock = threading.Lock()

    def info(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.INFO, message, extra)

    def warning(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.WARNING, message, extra)

    def error(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.ERROR, message, extra)

    def exception(self, message: str, *, extra: Mapping[str, Any] | None = None) -> None:
        """An ERROR line with the exception being handled and its traceback."""
        self._log(logging.ERROR, message, extra, sys.exc_info())

    def set_correlation_id(self, value: str | None) -> None:
        """The ``correlation_id`` of the lines the invocation under way logs from now on."""
        _invocation_keys.set({**_invocation_keys.get(), "correlation_id": value})

    def add_listener(self, listener: Listener) -> None:
        """Hand ``listener`` every line from now on (once, however often it is added)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def _log(self, level: int, message: str, extra: Mapping[str, Any] | None, exc_info: Any = None) -> None:
        if level < self.level:
            return
        caller = sys._getframe(2)  # the code that called info(), warning()...
        now = time.time()
        line: dict[str, Any] = {
            "level": logging.getLevelName(level),
            "location": f"{caller.f_code.co_name}:{caller.f_lineno}",
            "message": message,
            "timestamp": _timestamp(now),
            "service": self.service,
            **_invocation_keys.get(),
        }
        if extra:
            line.update(extra)
        if exc_info and exc_info[0] is not None:
            line["exception"] = "".join(traceback.format_exception(*exc_info)).rstrip()
            line["exception_name"] = exc_info[0].__name__
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:
            line["xray_trace_id"] = trace.split(";")[0].replace("Root=", "")
        kept = {key: value for key, value in line.items() if value is not None}
        try:
            text = _ENCODER.encode(kept) + "\n"
            with self._lock:
                self.stream.write(text)
                self.stream.flush()
        except (OSError, TypeError, ValueError) as exc:
            self._report("a log line was not written", exc)
            return
        for listener in self._listeners:
            try:
                listener(kept)
            except Exception as exc:  # the listener's failure, never the request's
                self._report("a log listener failed", exc)

    def _report(self, what: str, exc: Exception) -> None:
        """Say on stderr what went wrong with a line: it never fails the request it describes (as in
        ``logging``)."""
        sys.stderr.write(f"{self.service}: {what} ({type(exc).__name__}: {exc})\n")


def _timestamp(now: float) -> str:
    """``2026-11-26 15:18:31,060+0000``: local time (UTC in Lambda), milliseconds, the offset."""
    return time.strftime(f"%Y-%m-%d %H:%M:%S,{int((now - int(now)) * 1000):03d}%z", time.localtime(now))


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
