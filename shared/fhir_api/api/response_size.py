"""The size of an answer where Lambda counts it: the proxy response, serialised as JSON.

Lambda refuses a function's answer over 6 MB, and a resource may be 350 KB, so a page of search or
history entries is filled only while it stays under ``MAX_RESPONSE_BYTES``. The body travels as a JSON
string inside the proxy response: every quote and backslash of it is escaped once more. Lambda's
python3.12 runtime writes non-ASCII characters as they are (UTF-8), older runtimes as ``\\uXXXX``
escapes; sizes here are those of the escaped form, never smaller than either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# Headers set after the page is filled (CORS) are left this much room.
HEADER_ALLOWANCE = 4096


def proxy_bytes(proxy: dict[str, Any]) -> int:
    """Bytes of a proxy response as Lambda's runtime serialises it (at most)."""
    return len(json.dumps(proxy))


def escaped_bytes(text: str) -> int:
    """Bytes ``text`` takes as (part of) a JSON string inside the serialised proxy response."""
    return len(json.dumps(text)) - 2


class PageRoom:
    """The bytes left for a page's entries: admits entries while they fit, and always the first."""

    def __init__(self, room: int, entry_text: Callable[[Any], str]) -> None:
        self.room = room
        self._entry_text = entry_text
        self.used = 0
        self.admitted = 0

    def admit(self, item: Any) -> bool:
        """Count ``item``'s entry in if it fits (with the comma before it); False when it does not."""
        size = escaped_bytes(self._entry_text(item)) + 1
        if self.admitted and self.used + size > self.room:
            return False
        self.used += size
        self.admitted += 1
        return True


def page_room(limit: int, skeleton: dict[str, Any], entry_text: Callable[[Any], str]) -> PageRoom:
    """The room for entries in an answer of at most ``limit`` bytes whose ``skeleton`` is the proxy
    response without entries (its body holding every link the page may carry)."""
    return PageRoom(limit - proxy_bytes(skeleton) - HEADER_ALLOWANCE, entry_text)
