"""fhir_api.search.paging: signed, expiring page tokens bound to one query."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_api.errors import InvalidRequest
from fhir_api.search.paging import PageTokenConfigurationError, sign, verify

SECRET = "s3cret-for-unit-tests"
QUERY = "Encounter?_count=20&status=finished"
# A resume position as the search service signs it: per-partition DynamoDB keys.
POSITION = {
    "c": {
        "0": {"id": {"S": "e-1"}, "statusShard": {"S": "finished#0"}, "periodStart": {"S": "2024"}},
        "1": "done",
    }
}
NOW = 1_700_000_000.0


def test_a_token_round_trips_its_payload() -> None:
    # Given
    token = sign(POSITION, SECRET, QUERY, 3600, now=NOW)
    # When
    payload = verify(token, SECRET, QUERY, now=NOW + 10)
    # Then
    assert payload == POSITION
    assert token.isascii() and "=" not in token and "+" not in token and "/" not in token


def test_ttl_may_be_a_timedelta_and_expiry_is_enforced() -> None:
    token = sign({"o": 0}, SECRET, QUERY, timedelta(minutes=1), now=NOW)
    assert verify(token, SECRET, QUERY, now=NOW + 59) == {"o": 0}
    with pytest.raises(InvalidRequest, match="invalid page token: expired"):
        verify(token, SECRET, QUERY, now=NOW + 60)


def test_a_token_of_another_query_or_secret_is_refused() -> None:
    token = sign(POSITION, SECRET, QUERY, 3600, now=NOW)
    with pytest.raises(InvalidRequest, match="invalid page token"):
        verify(token, SECRET, "Encounter?_count=20&status=cancelled", now=NOW)
    with pytest.raises(InvalidRequest, match="invalid page token"):
        verify(token, SECRET, "Patient?_count=20&status=finished", now=NOW)
    with pytest.raises(InvalidRequest, match="invalid page token"):
        verify(token, "another-secret", QUERY, now=NOW)


def test_an_edited_token_is_refused() -> None:
    # Given a token whose payload a client rewrote (and re-encoded) to point elsewhere
    token = sign(POSITION, SECRET, QUERY, 3600, now=NOW)
    version, body, mac = token.split(".")
    document = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    document["p"]["o"] = 0
    document["exp"] += 10**6
    forged = base64.urlsafe_b64encode(zlib.compress(json.dumps(document).encode())).rstrip(b"=").decode()
    # When / Then
    with pytest.raises(InvalidRequest, match="invalid page token"):
        verify(f"{version}.{forged}.{mac}", SECRET, QUERY, now=NOW)
    for broken in (
        "",
        "1",
        "1..",
        "2." + body + "." + mac,
        token + "x",
        token[:-2],
        "é" * 10,
        "1.a.b",
        "x" * 9000,
    ):
        with pytest.raises(InvalidRequest, match="invalid page token"):
            verify(broken, SECRET, QUERY, now=NOW)


def test_an_empty_secret_refuses_to_work() -> None:
    with pytest.raises(PageTokenConfigurationError, match="PAGE_TOKEN_SECRET"):
        sign({}, "", QUERY, 60)
    with pytest.raises(PageTokenConfigurationError, match="PAGE_TOKEN_SECRET"):
        verify("1.a.b", "  ", QUERY)


@given(st.text(max_size=200))
def test_any_text_is_refused_with_a_400(text: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid page token"):
        verify(text, SECRET, QUERY)
