"""fhir_api.search.references: reference search values, this server's own absolute URLs among them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_api.errors import InvalidRequest
from fhir_api.resources.search_parameters import ENCOUNTER_PARAMETERS, ENCOUNTER_SORTS
from fhir_api.search.parameters import SearchQuery, parse_query
from fhir_api.search.references import local_references

NOW = datetime(2024, 6, 1, tzinfo=UTC)

BASE = "https://api.example.org/Prod/api/fhir"


def test_a_reference_to_this_server_as_an_absolute_url_is_read_as_the_relative_one() -> None:
    # Given reference values as a client copies them from a fullUrl, one inside an OR list
    query = {
        "subject": [f"{BASE}/Patient/p1"],
        "patient:Patient": [f"Patient/p2,{BASE}/Patient/p3"],
    }

    local = local_references(query, ENCOUNTER_PARAMETERS, BASE + "/")

    # Then each stands for the relative reference, and the search is the same as with those
    assert local == {"subject": ["Patient/p1"], "patient:Patient": ["Patient/p2,Patient/p3"]}
    assert (
        encounter(local).canonical()
        == encounter({"subject": ["Patient/p1"], "patient:Patient": ["Patient/p2,Patient/p3"]}).canonical()
    )


def test_other_absolute_urls_and_other_parameters_are_left_as_written() -> None:
    query = {
        "subject": ["https://elsewhere.example/fhir/Patient/p1", f"x\\,{BASE}/Patient/p1"],
        "identifier": [f"{BASE}/Patient/p1|v"],
        "subject:Patient.identifier": [f"{BASE}/Patient|v"],
    }

    local = local_references(query, ENCOUNTER_PARAMETERS, BASE)

    # Another server's URL, a base after an escaped comma, a token and a chained value stay
    assert local == query
    with pytest.raises(InvalidRequest, match="subject"):
        encounter({"subject": local["subject"][:1]})


def encounter(query: dict[str, list[str]]) -> SearchQuery:
    return parse_query(query, ENCOUNTER_PARAMETERS, True, sorts=ENCOUNTER_SORTS, now=NOW)
