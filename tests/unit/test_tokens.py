"""Token verification: every hostile token of issue #5 is refused, good tokens give sub and roles.

The issuer's JWKS is served by a tiny HTTP server on the loopback interface, so the real fetch path
(timeout, cache, rate limit) is what runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_api.auth import tokens
from fhir_api.auth.tokens import InvalidToken, roles_from_claims, verify, verify_token
from fhir_api.settings import Settings

ISSUER = "encounter-api-local"
AUDIENCE = "encounter-api"
ALLOWED_CLIENT = "integration-7f3a"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint, the local issuer's kid."""
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[public_jwk["kty"]]
    required = {name: public_jwk[name] for name in members}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass
class SigningKey:
    private: Any
    algorithm: str
    public_jwk: dict[str, Any] = field(init=False)
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        codec = RSAAlgorithm if self.algorithm.startswith(("RS", "PS")) else ECAlgorithm
        self.public_jwk = json.loads(codec.to_jwk(self.private.public_key()))
        self.kid = thumbprint(self.public_jwk)
        self.public_jwk.update(kid=self.kid, use="sig")

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        headers = {"kid": self.kid, **headers}
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers=headers)

    def sign_raw(self, claims: dict[str, Any]) -> str:
        """Sign claims PyJWT's encoder would refuse to write (an ``iss`` list, say)."""
        payload = json.dumps(claims).encode()
        return jwt.api_jws.encode(payload, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


@pytest.fixture(scope="module")
def issuer_key() -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")


class JwksServer:
    """Serves a JWKS it lets tests change, counts requests, and can hang until released."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        self.hang = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
                server.requests += 1
                if server.hang.is_set():
                    server.release.wait(10)
                body = json.dumps({"keys": server.keys}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # released after a hang: the client gave up waiting and closed its end

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks(issuer_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    tokens.reset_jwks_client()
    with JwksServer() as server:
        server.keys = [issuer_key.public_jwk, ec_key.public_jwk]
        yield server
    tokens.reset_jwks_client()


@pytest.fixture
def settings(jwks: JwksServer) -> Settings:
    return Settings(
        token_issuer=ISSUER,
        token_audience=AUDIENCE,
        jwks_url=jwks.url,
        token_algorithms="RS256,ES256",
        token_leeway_seconds=30,
        jwks_timeout_seconds=0.5,
        allowed_client_ids=f"first-app, {ALLOWED_CLIENT}",
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "roles": ["practitioner"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    parts = (json.dumps(header).encode(), json.dumps(payload).encode(), signature)
    return ".".join(b64url(part) for part in parts)


# --- good tokens -------------------------------------------------------------------------------------


def test_a_good_token_gives_sub_and_roles(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a token from the issuer
    token = issuer_key.sign(claims(roles=["practitioner", "auditor"]))

    # When it is verified
    principal = verify(f"Bearer {token}", settings)

    # Then the subject and roles are the token's
    assert (principal.sub, principal.roles, principal.scopes) == ("user-1", ("practitioner", "auditor"), ())
    assert principal.expires_at > time.time()
    assert principal.claims["iss"] == ISSUER


def test_the_bearer_scheme_is_case_insensitive(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a token sent as "bearer" in lower case
    token = issuer_key.sign(claims())

    # When / Then it verifies
    assert verify(f"bearer {token}", settings).sub == "user-1"


def test_an_es256_token_verifies_with_an_ec_key(ec_key: SigningKey, settings: Settings) -> None:
    # Given a token signed with the issuer's P-256 key
    token = ec_key.sign(claims(roles=["admin"]))

    # When / Then it verifies
    assert verify_token(token, settings).roles == ("admin",)


def test_an_audience_list_naming_the_api_is_accepted(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a token for two audiences, one of them this API
    token = issuer_key.sign(claims(aud=["other-api", AUDIENCE]))

    # When / Then it verifies (RFC 7519 4.1.3)
    assert verify_token(token, settings).sub == "user-1"


def test_a_small_clock_skew_is_within_the_leeway(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a token that expired 10 s ago, within the 30 s leeway
    token = issuer_key.sign(claims(exp=int(time.time()) - 10))

    # When / Then it still verifies
    assert verify_token(token, settings).sub == "user-1"


def test_roles_come_from_the_configured_claim(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a Cognito-style token with groups and a misleading roles claim
    token = issuer_key.sign(claims(roles=["admin"], **{"cognito:groups": ["auditor"]}))
    cognito = settings.replace(roles_claim="cognito:groups")

    # When it is verified with ROLES_CLAIM=cognito:groups
    principal = verify_token(token, cognito)

    # Then only the groups count
    assert principal.roles == ("auditor",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["admin", "auditor"], ("admin", "auditor")),
        ("admin auditor", ("admin", "auditor")),
        ("  practitioner  ", ("practitioner",)),
        (["admin", "admin", 7, None, "", "two words"], ("admin",)),
        ({"admin": True}, ()),
        (None, ()),
    ],
)
def test_roles_are_a_list_or_a_space_separated_string(value: Any, expected: tuple[str, ...]) -> None:
    # Given / When / Then
    assert roles_from_claims({"roles": value}, "roles") == expected


def test_a_token_without_roles_verifies_with_no_roles(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a valid token with no roles claim
    token = issuer_key.sign(claims(roles=None))

    # When / Then it verifies, and the policy (not the verification) refuses it later
    assert verify_token(token, settings).roles == ()


@pytest.mark.parametrize(
    "sub",
    [
        "6f1c2a9e-4b7d-4c1e-9f3a-2d5b8c7e1a04",  # a UUID (Cognito's sub, Azure AD's oid)
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "google-oauth2|104385312345678901234",
        "jane.doe+fhir@clinic.example",
        "urn:uuid:6f1c2a9e-4b7d-4c1e-9f3a-2d5b8c7e1a04",
        "urn:oid:1.2.36.146.595.217.0.1",
        "00u1a2b3c4D5e6F7g8h9",  # Okta
        "Zoë-Müller",
        "u" * 256,
    ],
)
def test_the_usual_subject_forms_verify(sub: str, issuer_key: SigningKey, settings: Settings) -> None:
    # Given / When a token naming this subject is verified / Then it keeps its subject
    assert verify_token(issuer_key.sign(claims(sub=sub)), settings).sub == sub


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "application/jwt"])
def test_a_jwt_typ_is_accepted(typ: str, issuer_key: SigningKey, settings: Settings) -> None:
    assert verify_token(issuer_key.sign(claims(), typ=typ), settings).sub == "user-1"


def test_an_access_token_without_aud_names_an_allowed_client(
    issuer_key: SigningKey, settings: Settings
) -> None:
    # Given a client-credentials access token as Cognito writes it: client_id and scope, no aud, no roles
    token = issuer_key.sign(
        claims(
            aud=None,
            roles=None,
            sub=ALLOWED_CLIENT,
            client_id=ALLOWED_CLIENT,
            scope="system/Encounter.rs openid",
        ),
        typ="at+jwt",
    )

    # When it is verified
    principal = verify_token(token, settings)

    # Then it names the client and its clinical scopes, and no role
    assert (principal.sub, principal.client_id, principal.roles) == (ALLOWED_CLIENT, ALLOWED_CLIENT, ())
    assert principal.scopes == ("system/Encounter.rs",)


def test_without_allowed_clients_an_access_token_needs_aud(
    issuer_key: SigningKey, settings: Settings
) -> None:
    token = issuer_key.sign(claims(aud=None, client_id=ALLOWED_CLIENT, scope="system/*.rs"))
    with pytest.raises(InvalidToken, match="client not allowed"):
        verify_token(token, settings.replace(allowed_client_ids=""))
    # With aud the client needs no listing
    with_aud = verify_token(issuer_key.sign(claims(client_id="any-app", scp=["system/*.rs"])), settings)
    assert (with_aud.client_id, with_aud.scopes) == ("any-app", ("system/*.rs",))


def test_the_maximum_lifetime_is_off_by_default(issuer_key: SigningKey, settings: Settings) -> None:
    now = int(time.time())
    ten_years = claims(iat=now, exp=now + 10 * 365 * 86400)
    assert settings.token_max_lifetime_seconds == 0
    assert verify_token(issuer_key.sign(ten_years), settings).sub == "user-1"


def test_a_token_living_longer_than_the_maximum_is_refused(
    issuer_key: SigningKey, settings: Settings
) -> None:
    # Given a deployment that accepts tokens of at most an hour
    strict = settings.replace(token_max_lifetime_seconds=3600)
    now = int(time.time())

    # When / Then an hour is fine; an hour and a second, or no iat to measure from, is not
    assert verify_token(issuer_key.sign(claims(iat=now, exp=now + 3600)), strict).sub == "user-1"
    with pytest.raises(InvalidToken, match="token lifetime too long"):
        verify_token(issuer_key.sign(claims(iat=now, exp=now + 3601)), strict)
    with pytest.raises(InvalidToken, match="missing claim"):
        verify_token(issuer_key.sign(claims(iat=None, exp=now + 60)), strict)


# --- hostile tokens: every one is refused ------------------------------------------------------------


def hostile_tokens(issuer: SigningKey, other: SigningKey, ec_signer: SigningKey) -> dict[str, str | None]:
    """The Authorization header values of issue #5's list (and a few more), by name."""
    good = issuer.sign(claims())
    header_b64, payload_b64, signature_b64 = good.split(".")
    tampered_payload = b64url(json.dumps(claims(roles=["admin"], sub="someone-else")).encode())
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    hs_signing_input = ".".join((b64url(json.dumps(hs_header).encode()), payload_b64))
    hs_signature = hmac.new(issuer.public_pem(), hs_signing_input.encode(), hashlib.sha256).digest()
    now = int(time.time())
    return {
        "none": None,
        "empty": "",
        "bearer alone": "Bearer",
        "bearer and spaces": "Bearer   ",
        "other scheme": f"Basic {good}",
        "two tokens": f"Bearer {good} {good}",
        "garbage": "Bearer not-a-jwt",
        "garbage with dots": "Bearer a.b.c",
        "alg none": "Bearer " + unsigned({"alg": "none", "kid": issuer.kid}, claims()),
        "alg none with a signature": "Bearer " + unsigned({"alg": "none", "kid": issuer.kid}, claims(), b"x"),
        "HS256 signed with the public key": f"Bearer {hs_signing_input}.{b64url(hs_signature)}",
        "another key with the same kid": "Bearer "
        + jwt.encode(claims(), other.private, algorithm="RS256", headers={"kid": issuer.kid}),
        "unknown kid": f"Bearer {other.sign(claims())}",
        "no kid": "Bearer " + jwt.encode(claims(), issuer.private, algorithm="RS256"),
        "payload changed after signing": f"Bearer {header_b64}.{tampered_payload}.{signature_b64}",
        "expired": f"Bearer {issuer.sign(claims(iat=now - 600, nbf=now - 600, exp=now - 120))}",
        "nbf in the future": f"Bearer {issuer.sign(claims(nbf=now + 600))}",
        "wrong iss": f"Bearer {issuer.sign(claims(iss='https://evil.example'))}",
        "iss with a suffix": f"Bearer {issuer.sign(claims(iss=ISSUER + '/'))}",
        "iss as a list": f"Bearer {issuer.sign_raw(claims(iss=[ISSUER]))}",
        "wrong aud": f"Bearer {issuer.sign(claims(aud='another-api'))}",
        "aud prefix": f"Bearer {issuer.sign(claims(aud='encounter-api-admin'))}",
        "no exp": f"Bearer {issuer.sign(claims(exp=None))}",
        "no iss": f"Bearer {issuer.sign(claims(iss=None))}",
        "no aud": f"Bearer {issuer.sign(claims(aud=None))}",
        "no sub": f"Bearer {issuer.sign(claims(sub=None))}",
        "empty sub": f"Bearer {issuer.sign(claims(sub=''))}",
        "jku header": f"Bearer {issuer.sign(claims(), jku='https://evil.example/jwks.json')}",
        "x5u header": f"Bearer {issuer.sign(claims(), x5u='https://evil.example/cert.pem')}",
        "jwk header": f"Bearer {issuer.sign(claims(), jwk=other.public_jwk)}",
        "x5c header": f"Bearer {issuer.sign(claims(), x5c=['MIIB'])}",
        "unknown crit header": f"Bearer {issuer.sign(claims(), crit=['exp-ext'], **{'exp-ext': 1})}",
        "ES256 header on an RSA key": "Bearer "
        + unsigned({"alg": "ES256", "kid": issuer.kid}, claims(), b"0" * 64),
        "RS256 header on an EC key": "Bearer "
        + jwt.encode(claims(), issuer.private, algorithm="RS256", headers={"kid": ec_signer.kid}),
        "PS256 not configured": "Bearer "
        + jwt.encode(claims(), issuer.private, algorithm="PS256", headers={"kid": issuer.kid}),
        "9 KB long": f"Bearer {issuer.sign(claims(padding='x' * 9 * 1024))}",
        "sub with a space": f"Bearer {issuer.sign(claims(sub='user 1'))}",
        "sub with a newline": "Bearer " + issuer.sign(claims(sub="user-1\nforged audit line")),
        "sub with a control character": "Bearer " + issuer.sign(claims(sub="user-1\x07")),
        "sub with a zero-width space": "Bearer " + issuer.sign(claims(sub="user\u200b1")),
        "sub of 257 characters": f"Bearer {issuer.sign(claims(sub='u' * 257))}",
        "typ JOSE": f"Bearer {issuer.sign(claims(), typ='JOSE')}",
        "typ of another media type": f"Bearer {issuer.sign(claims(), typ='application/secevent+jwt')}",
        "no aud and a client not allowed": "Bearer "
        + issuer.sign(claims(aud=None, client_id="someone-elses-app", scope="system/*.cruds")),
        "no aud and a client_id list": "Bearer "
        + issuer.sign(claims(aud=None, client_id=[ALLOWED_CLIENT], scope="system/*.cruds")),
        "no aud and only azp": "Bearer "
        + issuer.sign(claims(aud=None, azp=ALLOWED_CLIENT, scope="system/*.cruds")),
        "wrong aud with an allowed client": "Bearer "
        + issuer.sign(claims(aud="another-api", client_id=ALLOWED_CLIENT, scope="system/*.cruds")),
        "aud as a number": f"Bearer {issuer.sign(claims(aud=5))}",
    }


@pytest.fixture(scope="module")
def hostile(issuer_key: SigningKey, other_key: SigningKey, ec_key: SigningKey) -> dict[str, str | None]:
    return hostile_tokens(issuer_key, other_key, ec_key)


# Each case and the reason it must be refused for (so no case passes by failing for another reason).
HOSTILE_REASONS = {
    "none": "no token",
    "empty": "no token",
    "bearer alone": "not a bearer token",
    "bearer and spaces": "not a bearer token",
    "other scheme": "not a bearer token",
    "two tokens": "not a bearer token",
    "garbage": "malformed token",
    "garbage with dots": "malformed token",
    "alg none": "malformed token",
    "alg none with a signature": "algorithm not allowed",
    "HS256 signed with the public key": "algorithm not allowed",
    "another key with the same kid": "bad signature",
    "unknown kid": "unknown key id",
    "no kid": "no key id",
    "payload changed after signing": "bad signature",
    "expired": "token expired",
    "nbf in the future": "token not yet valid",
    "wrong iss": "wrong issuer",
    "iss with a suffix": "wrong issuer",
    "iss as a list": "wrong issuer",
    "wrong aud": "wrong audience",
    "aud prefix": "wrong audience",
    "no exp": "missing claim",
    "no iss": "missing claim",
    "no aud": "missing claim",
    "no sub": "missing claim",
    "empty sub": "missing claim",
    "jku header": "token names its own key",
    "x5u header": "token names its own key",
    "jwk header": "token names its own key",
    "x5c header": "token names its own key",
    # PyJWT itself rejects an unknown critical extension while reading the header.
    "unknown crit header": "malformed token",
    "ES256 header on an RSA key": "key does not fit the algorithm",
    "RS256 header on an EC key": "key does not fit the algorithm",
    "PS256 not configured": "algorithm not allowed",
    "9 KB long": "token too large",
    "sub with a space": "invalid subject",
    "sub with a newline": "invalid subject",
    "sub with a control character": "invalid subject",
    "sub with a zero-width space": "invalid subject",
    "sub of 257 characters": "invalid subject",
    "typ JOSE": "not a JWT",
    "typ of another media type": "not a JWT",
    "no aud and a client not allowed": "client not allowed",
    "no aud and a client_id list": "invalid claims",
    "no aud and only azp": "missing claim",
    "wrong aud with an allowed client": "wrong audience",
    "aud as a number": "wrong audience",
}


def test_the_hostile_list_is_complete(hostile: dict[str, str | None]) -> None:
    # Given / When / Then every case built is also a parametrised case below
    assert sorted(hostile) == sorted(HOSTILE_REASONS)


@pytest.mark.parametrize(("name", "reason"), HOSTILE_REASONS.items())
def test_a_hostile_token_is_refused(
    name: str,
    reason: str,
    hostile: dict[str, str | None],
    settings: Settings,
) -> None:
    # Given one hostile Authorization value
    authorization = hostile[name]

    # When it is verified
    with pytest.raises(InvalidToken) as refused:
        verify(authorization, settings)

    # Then it is refused for the expected reason, which quotes nothing of the token
    assert refused.value.reason == reason
    token_parts = [part for part in (authorization or "").replace("Bearer", "").split(".") if len(part) > 8]
    assert not any(part in refused.value.reason for part in token_parts)


def test_hmac_stays_refused_even_if_configured(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a configuration that (wrongly) lists HS256, and an HS256 token keyed with the public key
    careless = settings.replace(token_algorithms="RS256,HS256")
    header = b64url(json.dumps({"alg": "HS256", "kid": issuer_key.kid}).encode())
    payload = b64url(json.dumps(claims(roles=["admin"])).encode())
    signature = hmac.new(issuer_key.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()

    # When / Then it is still refused: no JWKS key is an HMAC secret
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        verify_token(f"{header}.{payload}.{b64url(signature)}", careless)


def test_the_jku_url_is_never_fetched(issuer_key: SigningKey, settings: Settings, jwks: JwksServer) -> None:
    # Given a token pointing at "its own" key set on our JWKS server's address
    token = issuer_key.sign(claims(), jku=jwks.url + "?attacker")

    # When it is verified
    with pytest.raises(InvalidToken):
        verify_token(token, settings)

    # Then nothing was fetched at all: it was refused before any key lookup
    assert jwks.requests == 0


def test_a_large_token_is_refused_before_parsing(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a 9 KB token and a parser that must not be reached
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(tokens.jwt, "get_unverified_header", fail)

    # When / Then it is refused for its size alone
    with pytest.raises(InvalidToken, match="too large"):
        verify("Bearer " + "a" * 9 * 1024, settings)


def test_an_expired_token_tells_the_audit_its_subject(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a token that expired, with a signature that is the issuer's
    now = int(time.time())
    token = issuer_key.sign(claims(sub="user-9", nbf=now - 900, exp=now - 600))

    # When it is refused
    with pytest.raises(InvalidToken) as refused:
        verify_token(token, settings)

    # Then the reason and the (verified) subject are known, for the audit record
    assert refused.value.reason == "token expired"
    assert refused.value.sub == "user-9"


def test_a_forged_token_tells_no_subject(
    other_key: SigningKey,
    issuer_key: SigningKey,
    settings: Settings,
) -> None:
    # Given a token signed by another key under the issuer's kid
    headers = {"kid": issuer_key.kid}
    token = jwt.encode(claims(sub="victim"), other_key.private, algorithm="RS256", headers=headers)

    # When / Then its subject is not believed
    with pytest.raises(InvalidToken) as refused:
        verify_token(token, settings)
    assert refused.value.sub is None


def test_an_unconfigured_authorizer_refuses_everything(issuer_key: SigningKey) -> None:
    # Given no issuer, audience or JWKS URL configured
    bare = Settings()

    # When / Then even a good token is refused
    with pytest.raises(InvalidToken, match="not configured"):
        verify_token(issuer_key.sign(claims()), bare)


# --- the key set: cache, rate limit, timeout ---------------------------------------------------------


def test_keys_are_cached_across_calls(issuer_key: SigningKey, settings: Settings, jwks: JwksServer) -> None:
    # Given a cold process
    # When ten tokens are verified
    for number in range(10):
        verify_token(issuer_key.sign(claims(sub=f"user-{number}")), settings)

    # Then the key set was fetched once
    assert jwks.requests == 1


def test_an_unknown_kid_flood_refetches_at_most_once_a_minute(
    issuer_key: SigningKey,
    other_key: SigningKey,
    settings: Settings,
    jwks: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a warm process with the key set cached, and a clock the test moves
    now = [1000.0]
    monkeypatch.setattr(tokens, "_clock", lambda: now[0])
    verify_token(issuer_key.sign(claims()), settings)
    assert jwks.requests == 1

    # When a flood of tokens with random kids arrives
    for _ in range(50):
        forged = jwt.encode(claims(), other_key.private, algorithm="RS256", headers={"kid": uuid.uuid4().hex})
        with pytest.raises(InvalidToken):
            verify_token(forged, settings)

    # Then one refetch was made for all of them
    assert jwks.requests == 2

    # When a minute has passed and another unknown kid arrives
    now[0] += 61
    with pytest.raises(InvalidToken):
        verify_token(other_key.sign(claims()), settings)

    # Then one more refetch was allowed
    assert jwks.requests == 3


def test_a_rotated_key_is_picked_up_by_the_refetch(
    issuer_key: SigningKey,
    other_key: SigningKey,
    settings: Settings,
    jwks: JwksServer,
) -> None:
    # Given a warm process that cached the old key set
    verify_token(issuer_key.sign(claims()), settings)

    # When the issuer publishes a new key and signs with it
    jwks.keys = [*jwks.keys, other_key.public_jwk]
    principal = verify_token(other_key.sign(claims(sub="rotated")), settings)

    # Then the unknown kid fetched the new set and the token verified
    assert principal.sub == "rotated"
    assert jwks.requests == 2


def test_a_hanging_jwks_endpoint_denies_within_the_timeout(
    issuer_key: SigningKey,
    settings: Settings,
    jwks: JwksServer,
) -> None:
    # Given a JWKS endpoint that does not answer
    jwks.hang.set()

    # When a token is verified
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
        verify_token(issuer_key.sign(claims()), settings)

    # Then the call returned (denied) and used the configured timeout
    assert jwks.requests == 1
    assert tokens.jwks_client(settings).timeout == settings.jwks_timeout_seconds == 0.5


def test_a_broken_jwks_endpoint_denies(issuer_key: SigningKey, settings: Settings) -> None:
    # Given a JWKS URL where nothing listens
    broken = settings.replace(jwks_url="http://127.0.0.1:9/.well-known/jwks.json")

    # When / Then tokens are refused
    with pytest.raises(InvalidToken, match="signing keys unavailable"):
        verify_token(issuer_key.sign(claims()), broken)


def test_after_a_failed_fetch_the_issuer_is_not_hammered(
    issuer_key: SigningKey,
    settings: Settings,
    jwks: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an endpoint that just failed once
    now = [1000.0]
    monkeypatch.setattr(tokens, "_clock", lambda: now[0])
    jwks.hang.set()
    with pytest.raises(InvalidToken):
        verify_token(issuer_key.sign(claims()), settings)

    # When more requests arrive at once
    for _ in range(20):
        with pytest.raises(InvalidToken):
            verify_token(issuer_key.sign(claims()), settings)

    # Then they were denied without another fetch, and a later one tries again and succeeds
    assert jwks.requests == 1
    jwks.hang.clear()
    jwks.release.set()
    now[0] += 10
    assert verify_token(issuer_key.sign(claims()), settings).sub == "user-1"
    assert jwks.requests == 2


def test_the_client_is_created_once_and_reset_for_tests(settings: Settings) -> None:
    # Given / When the client is asked for twice
    first = tokens.jwks_client(settings)

    # Then it is the same one until reset
    assert tokens.jwks_client(settings) is first
    tokens.reset_jwks_client()
    assert tokens.jwks_client(settings) is not first
