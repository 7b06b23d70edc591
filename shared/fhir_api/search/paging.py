"""Opaque, tamper-proof search page tokens (the ``_page`` value of a Bundle's ``next`` link).

A token is ``1.<payload>.<mac>``: the payload is compact JSON (zlib-compressed, base64url) holding the
caller's dict and an expiry; the MAC is HMAC-SHA256, keyed with ``PAGE_TOKEN_SECRET``, over the
version, the ``query_key`` and the payload. So a token that is edited, expired, or replayed with
another query (``SearchQuery.query_key(resource_type)``: resource type + canonical query) fails
``verify`` with ``InvalidRequest`` 400 "invalid page token". The payload is signed, not encrypted:
it must hold nothing a client may not see (index keys of results it was already allowed to read).

An empty secret is a deployment mistake, never a reason to sign with "": ``sign`` and ``verify`` raise
``PageTokenConfigurationError`` instead.

The service signs its own resume position: per-partition DynamoDB keys (``{"c": ...}``), an offset
(``{"o": n}``) or, for history, the version to continue below (``{"b": n}``).

Standard library only (plus this package's errors).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fhir_api.errors import InvalidRequest

VERSION = "1"
MAX_TOKEN_LENGTH = 8192
_MAX_PAYLOAD_BYTES = 65536


class PageTokenConfigurationError(RuntimeError):
    """The page token secret is not configured (PAGE_TOKEN_SECRET is empty)."""


def _key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.strip():
        raise PageTokenConfigurationError(
            "PAGE_TOKEN_SECRET is empty: page tokens cannot be signed or checked"
        )
    return secret.encode("utf-8")


def _mac(key: bytes, query_key: str, body: str) -> bytes:
    message = b"\n".join((VERSION.encode(), query_key.encode("utf-8"), body.encode("ascii")))
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(reason: str) -> InvalidRequest:
    return InvalidRequest(f"invalid page token: {reason}")


def sign(
    payload: Mapping[str, Any],
    secret: str,
    query_key: str,
    ttl: float | timedelta,
    now: float | None = None,
) -> str:
    """A page token carrying ``payload`` (JSON-serialisable), bound to ``query_key``, valid ``ttl``."""
    key = _key(secret)
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    issued = time.time() if now is None else now
    document = {"p": dict(payload), "exp": int(issued + seconds)}
    raw = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode("ascii")
    body = _b64encode(zlib.compress(raw, 9))
    return f"{VERSION}.{body}.{_b64encode(_mac(key, query_key, body))}"


def verify(token: str, secret: str, query_key: str, now: float | None = None) -> dict[str, Any]:
    """The payload of a token signed for ``query_key``; ``InvalidRequest`` if edited, expired or foreign."""
    key = _key(secret)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise _invalid("malformed")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise _invalid("malformed")
    _, body, signature = parts
    try:
        given = _b64decode(signature)
    except (binascii.Error, ValueError):
        raise _invalid("malformed") from None
    # The MAC is checked before the payload is even decompressed: nothing unsigned gets parsed.
    if not hmac.compare_digest(given, _mac(key, query_key, body)):
        raise _invalid("it was altered or belongs to another search")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(_b64decode(body), _MAX_PAYLOAD_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError("payload too large")
        document = json.loads(raw)
    except (binascii.Error, ValueError, zlib.error):
        raise _invalid("malformed") from None
    if not isinstance(document, dict) or not isinstance(document.get("p"), dict):
        raise _invalid("malformed")
    expiry = document.get("exp")
    if not isinstance(expiry, int) or (time.time() if now is None else now) >= expiry:
        raise _invalid("expired; repeat the search")
    payload: dict[str, Any] = document["p"]
    return payload
