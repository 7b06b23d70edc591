"""Verify a bearer token (RFC 6750) against the issuer's JSON Web Key Set (RFC 7515, 7517, 7519).

Only what configuration allows is trusted: the algorithms come from ``Settings.allowed_algorithms`` and
never from the token, the keys come only from ``Settings.jwks_url`` (``jku``, ``x5u``, ``jwk`` and ``x5c``
headers are refused, not followed), and ``exp``, ``iss`` and ``sub`` must all be present and right, as
must the audience: ``aud`` naming ``Settings.token_audience``, or, for an access token without ``aud``
(Cognito's carry ``client_id`` instead), a ``client_id`` in ``Settings.client_ids``. ``sub`` holds no
whitespace or control characters, ``typ`` (when present) names a JWT, and with
``Settings.token_max_lifetime_seconds`` set, ``exp - iat`` stays within it.

The key set is cached for the life of the process (warm Lambda invocations reuse it); a token naming
an unknown ``kid`` refetches it at most once a minute, and a fetch that takes longer than
``Settings.jwks_timeout_seconds`` fails, which denies the token.
"""

from __future__ import annotations

import json
import re
import threading
import time
import unicodedata
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError

from fhir_api.auth.scopes import scopes_from_claims
from fhir_api.settings import Settings, get_settings

MAX_TOKEN_BYTES = 8 * 1024
MAX_JWKS_BYTES = 64 * 1024
MAX_KID_LENGTH = 256
MAX_SUB_LENGTH = 256
MAX_ROLE_LENGTH = 128
JWKS_LIFESPAN_SECONDS = 300.0
# A flood of tokens with made-up kids must not turn into a flood of requests to the issuer.
UNKNOWN_KID_REFETCH_SECONDS = 60.0
# After a failed fetch, deny at once for a moment instead of queueing every request behind the timeout.
FAILED_FETCH_BACKOFF_SECONDS = 5.0
REQUIRED_CLAIMS = ("exp", "iss", "sub")
MAX_CLIENT_ID_LENGTH = 256
# RFC 7519 5.1 and RFC 9068 2.1: the media types a token's typ may name ("application/" optional).
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
# Headers that would let the token choose its own key; RFC 8725 section 3.10 says not to follow them.
KEY_CARRYING_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})

# The key type each accepted algorithm needs. HMAC is absent on purpose: a public JWKS holds no shared
# secret, and an HS256 token "signed" with the issuer's public key must never verify.
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
SUPPORTED_ALGORITHMS = _RSA_ALGORITHMS | frozenset(_EC_CURVES) | frozenset({"EdDSA"})

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

# Swappable in tests, which move time forward instead of sleeping.
_clock: Callable[[], float] = time.monotonic


class InvalidToken(Exception):
    """The token cannot be trusted (answered with 401).

    ``reason`` is a fixed phrase that is safe to log; it never holds any part of the token. ``sub`` is set
    only when the signature was verified and a claim check failed afterwards (an expired token, say).
    """

    def __init__(self, reason: str, sub: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sub = sub


@dataclass(frozen=True)
class Principal:
    """The caller a verified token names: subject, roles, scopes, client, expiry and the verified claims."""

    sub: str
    roles: tuple[str, ...]
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    scopes: tuple[str, ...] = ()  # the SMART clinical scopes of ``scope``/``scp``
    client_id: str | None = None  # the OAuth client (``client_id``, else ``azp``)
    expires_at: int = 0  # ``exp``


class JwksClient(PyJWKClient):
    """PyJWT's JWKS client with a bounded fetch and a rate limit on refetches for unknown key ids.

    The key set is cached for ``JWKS_LIFESPAN_SECONDS``. ``fetches`` counts the requests sent to the
    issuer, so tests can check the rate limit.
    """

    def __init__(self, uri: str, timeout: float) -> None:
        super().__init__(
            uri,
            cache_keys=False,
            cache_jwk_set=True,
            lifespan=JWKS_LIFESPAN_SECONDS,
            headers={"Accept": "application/json", "User-Agent": "encounter-api-authorizer"},
            timeout=timeout,
        )
        self.fetches = 0
        self._lock = threading.Lock()
        self._last_refetch: float | None = None
        self._failed_at: float | None = None

    def key_for(self, kid: str) -> PyJWK:
        """The signing key named ``kid``; an unknown kid refetches the set at most once a minute."""
        with self._lock:
            key = self.match_kid(self.get_signing_keys(), kid)
            if key is None and self._may_refetch():
                key = self.match_kid(self.get_signing_keys(refresh=True), kid)
        if key is None:
            raise InvalidToken("unknown key id")
        return key

    def _may_refetch(self) -> bool:
        now = _clock()
        if self._last_refetch is not None and now - self._last_refetch < UNKNOWN_KID_REFETCH_SECONDS:
            return False
        # Counted before the fetch, so a failing endpoint is not retried for every unknown kid either.
        self._last_refetch = now
        return True

    def fetch_data(self) -> Any:
        """Fetch the key set: no redirects, at most ``MAX_JWKS_BYTES``, within the timeout."""
        if self._failed_at is not None and _clock() - self._failed_at < FAILED_FETCH_BACKOFF_SECONDS:
            raise PyJWKClientConnectionError("the JWKS endpoint failed moments ago")
        self.fetches += 1
        try:
            jwk_set = self._download()
        except (OSError, HTTPException, ValueError) as exc:
            self._failed_at = _clock()
            raise PyJWKClientConnectionError(f"cannot fetch the JWKS: {type(exc).__name__}") from exc
        if not isinstance(jwk_set, dict):
            self._failed_at = _clock()
            raise PyJWKClientConnectionError("the JWKS endpoint did not return a JSON object")
        self._failed_at = None
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(jwk_set)
        return jwk_set

    def _download(self) -> Any:
        # The socket timeout bounds each read; the deadline bounds an endpoint that trickles bytes.
        deadline = _clock() + self.timeout
        request = urllib.request.Request(self.uri, headers=self.headers)
        opener = urllib.request.build_opener(_NoRedirect())
        body = bytearray()
        with opener.open(request, timeout=self.timeout) as response:
            while chunk := response.read1(16 * 1024):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS too large")
                if _clock() > deadline:
                    raise TimeoutError("JWKS fetch exceeded its deadline")
        return json.loads(body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The configured JWKS URL is the only place keys come from, so a redirect is an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_client: JwksClient | None = None
_client_lock = threading.Lock()


def jwks_client(settings: Settings | None = None) -> JwksClient:
    """The process-wide JWKS client, created on first use and kept across warm invocations."""
    global _client
    settings = settings or get_settings()
    with _client_lock:
        client = _client
        timeout = settings.jwks_timeout_seconds
        if client is None or client.uri != settings.jwks_url or client.timeout != timeout:
            client = _client = JwksClient(settings.jwks_url, timeout=timeout)
        return client


def reset_jwks_client() -> None:
    """Forget the cached JWKS client and its keys (tests switch issuers between cases)."""
    global _client
    with _client_lock:
        _client = None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` value (scheme case-insensitive, one token)."""
    if not authorization:
        raise InvalidToken("no token")
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise InvalidToken("not a bearer token")
    return parts[1]


def verify(authorization: str | None, settings: Settings | None = None) -> Principal:
    """Verify the token of an ``Authorization`` header value; raise ``InvalidToken`` if it is not good."""
    if authorization and len(authorization) > MAX_TOKEN_BYTES + 64:
        raise InvalidToken("token too large")
    return verify_token(bearer_token(authorization), settings)


def verify_token(token: str, settings: Settings | None = None) -> Principal:
    """Verify a compact JWS token and return the principal it names; raise ``InvalidToken`` otherwise."""
    settings = settings or get_settings()
    if not (settings.jwks_url and settings.token_issuer and settings.token_audience):
        raise InvalidToken("token verification is not configured")
    # Refused before any parsing, so a huge token costs nothing to reject.
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token too large")
    if not _COMPACT_JWS.fullmatch(token):
        raise InvalidToken("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc
    algorithm, kid = _check_header(header, settings)

    try:
        signing_key = jwks_client(settings).key_for(kid)
    except jwt.PyJWTError as exc:
        raise InvalidToken("signing keys unavailable") from exc
    if not _key_fits(algorithm, signing_key.key):
        raise InvalidToken("key does not fit the algorithm")

    try:
        claims = jwt.decode(
            token,
            key=signing_key.key,
            algorithms=[algorithm],
            issuer=settings.token_issuer,
            leeway=settings.token_leeway_seconds,
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_signature": True,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                # Checked in _check_audience: an access token may name its client instead.
                "verify_aud": False,
                "verify_iss": True,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("bad signature") from exc
    except jwt.DecodeError as exc:
        raise InvalidToken("malformed token") from exc
    except jwt.PyJWTError as exc:
        # PyJWT checks claims only after the signature, so the subject here is the issuer's word.
        raise InvalidToken(_claim_reason(exc), sub=_verified_sub(token)) from exc
    try:
        return _principal(claims, settings)
    except InvalidToken as exc:
        raise InvalidToken(exc.reason, sub=_verified_sub(token)) from None


def roles_from_claims(claims: dict[str, Any], claim: str) -> tuple[str, ...]:
    """The roles in ``claims[claim]``: a list of strings or one space-separated string."""
    value = claims.get(claim)
    if isinstance(value, str):
        candidates: list[Any] = value.split()
    elif isinstance(value, list):
        candidates = value
    else:
        return ()
    roles: list[str] = []
    for role in candidates:
        # A role is one word: the authorizer context joins roles with spaces.
        fits = isinstance(role, str) and 0 < len(role) <= MAX_ROLE_LENGTH and role.split() == [role]
        if fits and role not in roles:
            roles.append(role)
    return tuple(roles)


def _check_header(header: dict[str, Any], settings: Settings) -> tuple[str, str]:
    if KEY_CARRYING_HEADERS & header.keys():
        raise InvalidToken("token names its own key")
    # This server understands no JWS extension, so any critical one is unknown (RFC 7515 4.1.11).
    if "crit" in header:
        raise InvalidToken("unsupported critical header")
    if "b64" in header:
        raise InvalidToken("unsupported header")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise InvalidToken("not a JWT")
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in settings.allowed_algorithms:
        raise InvalidToken("algorithm not allowed")
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise InvalidToken("algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise InvalidToken("no key id")
    return algorithm, kid


def _key_fits(algorithm: str, key: Any) -> bool:
    """Whether the public key is of the type the algorithm needs (an EC key for ES256, and so on)."""
    if algorithm in _RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey)
    if algorithm in _EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES[algorithm]
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey)
    return False


def _claim_reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return "missing claim"
    return "invalid claims"


def _verified_sub(token: str) -> str | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if is_valid_subject(sub) else None


def is_valid_subject(sub: Any) -> bool:
    """Whether ``sub`` is a usable subject: 1 to 256 characters, no whitespace, no control or format
    characters (UUIDs, ``auth0|...``, e-mail addresses, URNs and Cognito subs all are)."""
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB_LENGTH:
        return False
    return not any(char.isspace() or unicodedata.category(char)[0] in "CZ" for char in sub)


def _check_audience(claims: dict[str, Any], settings: Settings) -> str | None:
    """Refuse a token not meant for this API; return its OAuth client id (``client_id``, else ``azp``)."""
    client_id = claims.get("client_id", claims.get("azp"))
    if client_id is not None and (
        not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH
    ):
        raise InvalidToken("invalid claims")
    if "aud" in claims:
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not all(isinstance(item, str) for item in audiences):
            raise InvalidToken("wrong audience")
        if settings.token_audience not in audiences:
            raise InvalidToken("wrong audience")
        return client_id
    # No aud: only an access token of a client this deployment names (Cognito's carry client_id).
    if not isinstance(client_id, str) or "client_id" not in claims:
        raise InvalidToken("missing claim")
    if client_id not in settings.client_ids:
        raise InvalidToken("client not allowed")
    return client_id


def _check_lifetime(claims: dict[str, Any], settings: Settings) -> None:
    limit = settings.token_max_lifetime_seconds
    if not limit:
        return
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise InvalidToken("missing claim")
    if expires - issued > limit:
        raise InvalidToken("token lifetime too long")


def _principal(claims: dict[str, Any], settings: Settings) -> Principal:
    # PyJWT compares iss with ==, which a list-valued or non-string claim must not slip through.
    if not isinstance(claims.get("iss"), str) or claims["iss"] != settings.token_issuer:
        raise InvalidToken("wrong issuer")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise InvalidToken("missing claim")
    if not is_valid_subject(sub):
        raise InvalidToken("invalid subject")
    client_id = _check_audience(claims, settings)
    _check_lifetime(claims, settings)
    return Principal(
        sub=sub,
        roles=roles_from_claims(claims, settings.roles_claim),
        claims=claims,
        scopes=scopes_from_claims(claims),
        client_id=client_id,
        expires_at=int(claims["exp"]),
    )
