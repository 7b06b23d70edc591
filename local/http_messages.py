"""The HTTP request and answer the local gateway passes between its server and its API logic."""

from __future__ import annotations

from dataclasses import dataclass

# API Gateway's payload limit: a larger body is refused with 413 before any function runs.
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass
class HttpRequest:
    """An HTTP request as received (path still URL-encoded, headers in order, raw body)."""

    method: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (any case), or None."""
        wanted = name.lower()
        for key, value in reversed(self.headers):
            if key.lower() == wanted:
                return value
        return None


@dataclass
class HttpResponse:
    """An HTTP answer: status, headers (repeatable) and body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
