"""fhir_api.search.tokens and fhir_api.search.strings: token and string matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_api.search.strings import exact, name_terms, normalize_text
from fhir_api.search.tokens import (
    TokenValue,
    code_matches,
    parse_token,
    split_escaped,
    token_matches,
    unescape,
)

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
EMER = {"system": ACT, "code": "EMER"}
LOCAL = {"code": "EMER"}


@pytest.mark.parametrize(
    ("raw", "token"),
    [
        ("EMER", TokenValue(None, "EMER")),
        (f"{ACT}|EMER", TokenValue(ACT, "EMER")),
        ("|EMER", TokenValue("", "EMER")),
        (f"{ACT}|", TokenValue(ACT, None)),
        ("a\\|b", TokenValue(None, "a|b")),
    ],
)
def test_parse_token_forms(raw: str, token: TokenValue) -> None:
    assert parse_token(raw) == token


@pytest.mark.parametrize("raw", ["", "|", "a|b|c", "a\\"])
def test_parse_token_rejects_malformed(raw: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_token(raw)


def test_token_matches_codings_concepts_and_identifiers() -> None:
    # Given a Coding, a CodeableConcept and an Identifier
    concept = {"coding": [LOCAL, EMER], "text": "emergency"}
    identifier = {"system": "urn:mrn", "value": "123"}
    # Then each token form matches as FHIR defines
    assert token_matches(parse_token("EMER"), EMER) and token_matches(parse_token("EMER"), LOCAL)
    assert token_matches(parse_token(f"{ACT}|EMER"), EMER)
    assert not token_matches(parse_token(f"{ACT}|EMER"), LOCAL)
    assert token_matches(parse_token("|EMER"), LOCAL) and not token_matches(parse_token("|EMER"), EMER)
    assert token_matches(parse_token(f"{ACT}|"), EMER) and not token_matches(parse_token(f"{ACT}|"), LOCAL)
    assert token_matches(parse_token(f"{ACT}|EMER"), concept)
    assert token_matches(parse_token("urn:mrn|123"), identifier)
    assert token_matches(parse_token("123"), [{"value": "9"}, identifier])
    assert not token_matches(parse_token("urn:other|123"), identifier)
    assert not token_matches(parse_token("emer"), EMER)  # codes are case-sensitive
    assert not token_matches(parse_token("EMER"), None)


def test_code_matches_plain_codes_with_their_implicit_system() -> None:
    system = "http://hl7.org/fhir/encounter-status"
    assert code_matches(parse_token("finished"), "finished", system)
    assert code_matches(parse_token(f"{system}|finished"), "finished", system)
    assert not code_matches(parse_token("other|finished"), "finished", system)
    assert not code_matches(parse_token("finished"), None, system)


def test_split_and_unescape() -> None:
    assert split_escaped("a,b\\,c,", ",") == ["a", "b\\,c", ""]
    assert unescape("b\\,c\\\\") == "b,c\\"


def test_normalize_text_folds_case_accents_and_spaces() -> None:
    assert normalize_text("  Zoë   Ångström ") == "zoe angstrom"
    assert normalize_text("STRASSE") == normalize_text("Straße")
    assert normalize_text("ＭÜLLER") == "muller"  # full-width letters too (NFKD)


def test_string_matching() -> None:
    assert exact("Müller", "Müller") and not exact("muller", "Müller")


def test_name_terms_cover_every_part_and_word() -> None:
    names = [{"family": "van der Berg", "given": ["Mary Ann", "Zoë"], "prefix": ["Dr."], "text": "Dr. Mary"}]
    assert name_terms(names, "family") == {"van der berg", "van", "der", "berg"}
    assert "ann" in name_terms(names, "given") and "zoe" in name_terms(names, "given")
    assert {"dr.", "berg", "mary ann"} <= name_terms(names, "name")
    assert name_terms("nope", "name") == set()
    assert name_terms([None, {"family": 3}], "family") == set()


@given(st.text(max_size=30))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@given(st.text(max_size=30))
def test_any_text_is_a_token_or_a_value_error(text: str) -> None:
    try:
        token = parse_token(text)
    except ValueError:
        return
    assert token.system is not None or token.code is not None
