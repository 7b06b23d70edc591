"""The size of an answer where Lambda counts it: the proxy response, serialised as JSON.

Lambda refuses a function's answer over 6 MB, and a resource may be 350 KB, so a page of search or
history entries is filled only while it stays under ``MAX_RESPONSE_BYTES``. The body travels as a JSON
string inside the proxy response: every quote and backslash of it is escaped once more. Lambda's
python3.12 runtime writes non-ASCII characters as they are (UTF-8), older runtimes as ``\\uXXXX``
escapes; sizes here are those of the escaped form, never smaller than either.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from fhir_api.api.http import Response
from fhir_api.fhir.fhirjson import dumps

# Headers set after the page is filled (CORS) are left this much room.
HEADER_ALLOWANCE = 4096


def proxy_bytes(proxy: dict[str, Any]) -> int:
    """Bytes of a proxy response as Lambda's runtime serialises it (at most)."""
    return len(json.dumps(proxy))


def escaped_bytes(text: str) -> int:
    """Bytes ``text`` takes as (part of) a JSON string inside the serialised proxy response."""
    return len(json.dumps(text)) - 2


class PageRoom:
    """The bytes left for a page's entries: admits entries while they fit, and always the first. The
    text of each entry admitted is kept, so that the page is written from the texts that were sized."""

    def __init__(self, room: int, entry_text: Callable[[Any], str]) -> None:
        self.room = room
        self._entry_text = entry_text
        self.used = 0
        self.admitted = 0
        # By the item's id, with the item itself: held here, its id cannot pass to another object.
        self._texts: dict[int, tuple[Any, str]] = {}

    def admit(self, item: Any) -> bool:
        """Count ``item``'s entry in if it fits (with the comma before it); False when it does not."""
        text = self._entry_text(item)
        size = escaped_bytes(text) + 1
        if self.admitted and self.used + size > self.room:
            return False
        self.used += size
        self.admitted += 1
        self._texts[id(item)] = (item, text)
        return True

    def entry_text(self, item: Any) -> str:
        """``item``'s entry: the text admitted for it, else made now."""
        kept = self._texts.get(id(item))
        return kept[1] if kept is not None and kept[0] is item else self._entry_text(item)


def page_room(limit: int, skeleton_bytes: int, entry_text: Callable[[Any], str]) -> PageRoom:
    """The room for entries in an answer of at most ``limit`` bytes whose skeleton (the proxy response
    without entries, its body holding every link the page may carry) takes ``skeleton_bytes``."""
    return PageRoom(limit - skeleton_bytes - HEADER_ALLOWANCE, entry_text)


def page_skeleton_bytes(bundle_type: str, self_url: str, next_token_length: int) -> int:
    """Bytes of a page's proxy response without entries: the bundle's total, its self link, a next
    link with a page token of ``next_token_length`` characters, a warning entry, the headers.

    The self URL is in the page twice (the self link and the start of the next link), and JSON
    escapes character by character, so its share is added to the size of a page whose URL is empty.
    """
    return _empty_url_page_bytes(bundle_type, next_token_length) + 2 * escaped_bytes(
        encode_basestring(self_url)[1:-1]
    )


@functools.lru_cache(maxsize=8)
def _empty_url_page_bytes(bundle_type: str, next_token_length: int) -> int:
    skeleton = {
        "resourceType": "Bundle",
        "type": bundle_type,
        "total": 10**12,
        "link": [
            {"relation": "self", "url": ""},
            {"relation": "next", "url": f"&_page={'x' * next_token_length}"},
        ],
        "entry": [{"resource": {"resourceType": "OperationOutcome", "text": "x" * 2048}}],
    }
    return proxy_bytes(Response(200, dumps(skeleton)).to_proxy())
