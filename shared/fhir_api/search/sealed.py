"""Sealed search tokens: the links of a POST ``_search`` carry its query encrypted, never in clear.

A search sent as a form body (``POST [type]/_search``) keeps names and MRNs out of URLs; its ``self``
and ``next`` links must not put them back. Each link is ``[base]/[type]?_page=s1.<token>``, the token
holding the canonical query and the page's own signed token (``search.paging``), encrypted and
authenticated with AES-GCM under a key derived from the page token secret, bound to the resource
type. A GET of such a link is the same search at the same page; an edited, foreign or expired token is
400 and reads nothing. The query never appears in the gateway's or the function's logs.

Uses ``cryptography`` (installed with PyJWT's crypto extra in the layer).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
import zlib
from dataclasses import dataclass

from fhir_api.errors import InvalidRequest
from fhir_api.search.paging import PageTokenConfigurationError

PREFIX = "s1."
# Room for the longest canonical query and the page token inside (links are sized with it).
MAX_SEALED_LENGTH = 24576
_MAX_PAYLOAD_BYTES = 65536


@dataclass(frozen=True)
class SealedSearch:
    """What a sealed token carries: the canonical query and the signed page token (None: first page)."""

    query: str
    page: str | None


def is_sealed(token: str) -> bool:
    """Whether a ``_page`` value is a sealed token (a plain page token starts with its version)."""
    return token.startswith(PREFIX)


def _key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.strip():
        raise PageTokenConfigurationError("PAGE_TOKEN_SECRET is empty: search tokens cannot be sealed")
    # A key of its own: the page token key signs, this one encrypts.
    return hmac.new(secret.encode("utf-8"), b"sealed-search-v1", hashlib.sha256).digest()


def seal(search: SealedSearch, secret: str, resource_type: str, ttl: float) -> str:
    """A token carrying ``search`` for ``resource_type``, valid ``ttl`` seconds."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    document = {"q": search.query, "t": search.page, "exp": int(time.time() + ttl)}
    raw = zlib.compress(json.dumps(document, separators=(",", ":")).encode("utf-8"), 9)
    nonce = os.urandom(12)
    sealed = AESGCM(_key(secret)).encrypt(nonce, raw, resource_type.encode("utf-8"))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def unseal(token: str, secret: str, resource_type: str) -> SealedSearch:
    """The search a token carries; ``InvalidRequest`` (400) when it is malformed, altered, made for
    another resource type or expired."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _key(secret)
    body = token[len(PREFIX) :]
    if not is_sealed(token) or len(token) > MAX_SEALED_LENGTH or not body.isascii():
        raise InvalidRequest("invalid page token: malformed")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        raw = AESGCM(key).decrypt(data[:12], data[12:], resource_type.encode("utf-8"))
    except (binascii.Error, ValueError, InvalidTag):
        raise InvalidRequest("invalid page token: it was altered or belongs to another search") from None
    try:
        inflater = zlib.decompressobj()
        document = json.loads(inflater.decompress(raw, _MAX_PAYLOAD_BYTES))
    except (ValueError, zlib.error):
        raise InvalidRequest("invalid page token: malformed") from None
    if not isinstance(document, dict) or not isinstance(document.get("q"), str):
        raise InvalidRequest("invalid page token: malformed")
    if not isinstance(document.get("exp"), int) or time.time() >= document["exp"]:
        raise InvalidRequest("invalid page token: expired; repeat the search")
    page = document.get("t")
    return SealedSearch(document["q"], page if isinstance(page, str) else None)
