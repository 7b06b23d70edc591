"""The functions' log lines: Powertools' JSON format, with a short path for the plain lines of every request.

Every request writes at least one line (its audit record), and Powertools' formatter spends most of
its time on what such a line does not need: trying to parse the message as JSON, looking for an
exception, copying the record to test each attribute against a tuple. ``JsonLineFormatter`` writes a
plain line (a text message, no arguments, no exception) itself, with the same keys in the same
order; every other line goes through Powertools unchanged.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, LambdaPowertoolsFormatter

_RESERVED = frozenset(RESERVED_LOG_ATTRS)
# A message starting with one of these may be JSON, which Powertools writes as JSON rather than text.
_MAYBE_JSON = frozenset('{["-0123456789tfn')


class JsonLineFormatter(LambdaPowertoolsFormatter):
    """Powertools' ``LambdaPowertoolsFormatter``, with its plain lines written directly."""

    def format(self, record: logging.LogRecord) -> str:  # noqa: A003 (logging's name)
        message = record.msg
        if (
            record.args
            or record.exc_info
            or record.stack_info
            or self.json_indent  # POWERTOOLS_DEV's indented lines
            or not isinstance(message, str)
            or message[:1] in _MAYBE_JSON
        ):
            return super().format(record)
        fields = record.__dict__
        templated: dict[str, object] | None = None
        line: dict[str, object] = {}
        # The logger's keys, then the thread's: a value for a reserved name is a %-template of the
        # record's attributes ("level": "%(levelname)s"), as Powertools reads them.
        for keys in (self.log_format, self.thread_safe_get_current_keys()):
            for key, value in keys.items():
                if value and key in _RESERVED and isinstance(value, str):
                    if templated is None:
                        templated = {**fields, "asctime": self.formatTime(record)}
                    value = value % templated
                line[key] = value
        line["message"] = message
        line.update((key, value) for key, value in fields.items() if key not in _RESERVED)  # extra=
        line["xray_trace_id"] = self._get_latest_trace_id()
        return self.serialize({key: value for key, value in line.items() if value is not None})
