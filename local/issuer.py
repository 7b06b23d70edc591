"""The local token issuer: an RS256 key kept under ``.local/issuer/``, tokens signed with it, and the
JWKS the local gateway publishes so the authorizer verifies local tokens through a JWKS URL, exactly
as it verifies production tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local import LOCAL_DIR

ISSUER = "encounter-api-local"
AUDIENCE = "encounter-api"
ALGORITHM = "RS256"
KEY_DIR = LOCAL_DIR / "issuer"
KEY_FILE = "private.pem"
DEFAULT_SUB = "local-user"
# The OAuth client of local client-credentials access tokens (the local stack allows it without aud).
CLIENT_ID = "encounter-api-local-client"
DEFAULT_TTL = 3600
# A negative ttl must give a token that is expired even for a verifier with clock-skew leeway.
EXPIRED_MARGIN_SECONDS = 120


def generate_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key (tests use one to sign tokens the issuer never signed)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key(key_dir: Path | None = None) -> rsa.RSAPrivateKey:
    """The issuer's key, created on first use as a 0600 PEM file."""
    path = (key_dir or KEY_DIR) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = generate_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key; delete it to have a new one made")
    return key


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key."""
    canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_jwk(key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
    """The public JWK of ``key`` (the issuer's key by default), with kid, use and alg."""
    numbers = (key or private_key()).public_key().public_numbers()
    jwk: dict[str, Any] = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
    jwk.update({"kid": thumbprint(jwk), "use": "sig", "alg": ALGORITHM})
    return jwk


def kid(key: rsa.RSAPrivateKey | None = None) -> str:
    """The key id of ``key`` (the issuer's key by default)."""
    return str(public_jwk(key)["kid"])


def jwks() -> dict[str, Any]:
    """The JSON Web Key Set the local gateway serves at /.well-known/jwks.json."""
    return {"keys": [public_jwk()]}


def claims(
    role: str, sub: str = DEFAULT_SUB, ttl: int = DEFAULT_TTL, now: int | None = None
) -> dict[str, Any]:
    """The claims of a local token; a negative ttl gives an expired one."""
    issued = int(time.time()) if now is None else now
    expires = issued + ttl if ttl >= 0 else issued + ttl - EXPIRED_MARGIN_SECONDS
    if ttl < 0:
        issued = expires - 60
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "roles": [role] if role else [],
        "iat": issued,
        "nbf": issued,
        "exp": expires,
    }


def mint(
    role: str,
    sub: str = DEFAULT_SUB,
    ttl: int = DEFAULT_TTL,
    *,
    key: Any = None,
    headers: dict[str, Any] | None = None,
    algorithm: str = ALGORITHM,
    **overrides: Any,
) -> str:
    """A signed bearer token for the local API.

    ``overrides`` replace claims (a value of None removes the claim); ``key``, ``headers`` and
    ``algorithm`` let tests sign hostile tokens (another key under the issuer's kid, ...).
    """
    payload = claims(role, sub, ttl)
    for name, value in overrides.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    signing_key = key if key is not None else private_key()
    header: dict[str, Any] = {}
    if isinstance(signing_key, rsa.RSAPrivateKey):
        header["kid"] = kid(signing_key)
    header.update(headers or {})
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers=header)


def mint_access_token(
    scope: str,
    role: str = "",
    sub: str | None = None,
    ttl: int = DEFAULT_TTL,
    audience: str | None = AUDIENCE,
    **overrides: Any,
) -> str:
    """A token shaped like an OAuth client-credentials access token: ``client_id`` and ``scope``
    (space-separated SMART scopes), ``sub`` the client id unless given, roles only when ``role`` is
    given, and ``aud`` left out when ``audience`` is None (as Cognito's access tokens do)."""
    claims_: dict[str, Any] = {"client_id": CLIENT_ID, "scope": scope, "aud": audience}
    if not role:
        claims_["roles"] = None
    claims_.update(overrides)
    return mint(role, sub or CLIENT_ID, ttl, **claims_)


USAGE = (
    'make token ROLE=<role> [SUB=<sub>] [TTL=<seconds>], or make token SCOPE="system/Encounter.rs ..." '
    "[ROLE=<role>] [SUB=<sub>] [TTL=<seconds>] [AUD=none|<audience>]"
)


def main(argv: list[str] | None = None) -> int:
    """``python -m local.issuer ROLE [SUB] [TTL] [SCOPE] [AUD]``: print one token on one line.

    Without SCOPE it is a role-bearing token as an ID token would be; with SCOPE, an access token
    (``mint_access_token``). AUD ``none`` leaves ``aud`` out; another value replaces it.
    """
    args = sys.argv[1:] if argv is None else argv
    args = [*args, "", "", "", "", ""][:5] if len(args) <= 5 else args
    if len(args) > 5 or not (args[0] or args[3]):
        sys.stderr.write(f"error: a role or a scope is required; run {USAGE}\n")
        return 2
    role, sub, ttl_text, scope, aud = args
    try:
        ttl = int(ttl_text) if ttl_text else DEFAULT_TTL
    except ValueError:
        sys.stderr.write(f"error: TTL must be a whole number of seconds, not {ttl_text!r}; e.g. TTL=3600\n")
        return 2
    audience = None if aud.lower() == "none" else aud or AUDIENCE
    if scope:
        token = mint_access_token(scope, role, sub or None, ttl, audience)
    else:
        changes: dict[str, Any] = {"aud": audience} if aud else {}
        token = mint(role, sub or DEFAULT_SUB, ttl, **changes)
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
