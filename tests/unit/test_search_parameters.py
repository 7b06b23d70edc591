"""fhir_api.search.parameters: parsing a search query against the parameter tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_api.errors import InvalidRequest, SearchTooCostly
from fhir_api.search.dates import DateCriterion
from fhir_api.search.definitions import (
    ENCOUNTER_PARAMETERS,
    ENCOUNTER_SORTS,
    PATIENT_PARAMETERS,
    PATIENT_SORTS,
)
from fhir_api.search.parameters import (
    MAX_AND_GROUPS,
    MAX_OR_VALUES,
    SearchParameter,
    SearchQuery,
    StringValue,
    parameter_table,
    parse_query,
)
from fhir_api.search.tokens import TokenValue

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def encounter(query: dict[str, list[str]], strict: bool = False) -> SearchQuery:
    return parse_query(query, ENCOUNTER_PARAMETERS, strict, sorts=ENCOUNTER_SORTS, now=NOW)


def patient(query: dict[str, list[str]], strict: bool = False) -> SearchQuery:
    return parse_query(query, PATIENT_PARAMETERS, strict, sorts=PATIENT_SORTS, now=NOW)


def test_repeats_are_and_and_commas_are_or() -> None:
    # Given
    query = {"date": ["ge2024-01-01", "lt2024-02-01"], "status": ["planned,arrived"]}
    # When
    parsed = encounter(query)
    # Then
    dates = parsed.values("date")
    assert len(dates) == 2 and all(len(group) == 1 for group in dates)
    assert isinstance(dates[0][0], DateCriterion)
    assert parsed.values("status") == [[TokenValue(None, "planned"), TokenValue(None, "arrived")]]


def test_subject_and_patient_take_a_patient_reference_or_an_id() -> None:
    assert encounter({"subject": ["Patient/p-1"]}).values("subject") == [["p-1"]]
    assert encounter({"patient": ["p-1,Patient/p.2"]}).values("patient") == [["p-1", "p.2"]]
    assert encounter({"subject:Patient": ["p-1"]}).occurrences("subject")[0].modifier == "Patient"
    for bad in ("Group/1", "Patient/", "Patient/a/b", "http://x/Patient/1", "a b", "x" * 65):
        with pytest.raises(InvalidRequest, match="'subject'"):
            encounter({"subject": [bad]})


def test_tokens_ids_and_strings_are_parsed_by_type() -> None:
    parsed = encounter({"class": ["http://terminology.hl7.org/CodeSystem/v3-ActCode|EMER"], "_id": ["a,b"]})
    assert parsed.values("class") == [
        [TokenValue("http://terminology.hl7.org/CodeSystem/v3-ActCode", "EMER")]
    ]
    assert parsed.values("_id") == [["a", "b"]]
    names = patient({"name": ["Zoë"], "family:exact": ["Müller"]})
    assert names.values("name") == [[StringValue("Zoë", "zoe")]]
    assert names.occurrences("family")[0].modifier == "exact"


def test_unknown_parameters_are_ignored_unless_strict() -> None:
    # Given an unknown parameter / When lenient / Then ignored and left out of the canonical query
    parsed = encounter({"foo": ["1"], "status": ["finished"], "_include": ["Encounter:subject"]})
    assert parsed.canonical() == "_count=20&status=finished"
    assert set(parsed.ignored) == {"foo", "_include"}
    # When strict / Then 400 naming it
    with pytest.raises(InvalidRequest, match="'foo'"):
        encounter({"foo": ["1"]}, strict=True)


def test_transport_parameters_are_left_to_the_http_layer() -> None:
    parsed = encounter({"_format": ["json"], "_pretty": ["true"]}, strict=True)
    assert parsed.canonical() == "_count=20"


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"date": ["ge2024-13-01"]}, "date"),
        ({"date": ["2024-01-01,"]}, "date"),
        ({"status": ["|"]}, "status"),
        ({"class": ["a|b|c"]}, "class"),
        ({"_id": ["not valid!"]}, "_id"),
        ({"_lastUpdated": ["xx2024"]}, "_lastUpdated"),
        ({"_count": ["-1"]}, "_count"),
        ({"_count": ["ten"]}, "_count"),
        ({"_count": ["1.5"]}, "_count"),
        ({"_count": ["10", "20"]}, "_count"),
        ({"_count": [""]}, "_count"),
        ({"_sort": ["status"]}, "_sort"),
        ({"_sort": ["date,-_lastUpdated"]}, "_sort"),
        ({"_summary": ["maybe"]}, "_summary"),
        ({"_total": ["all"]}, "_total"),
        ({"_page": [""]}, "_page"),
        ({"_count:x": ["1"]}, "_count:x"),
        ({"status:not": ["finished"]}, "status:not"),
        ({"date:missing": ["true"]}, "date:missing"),
        ({"subject": ["Patient/1\\"]}, "subject"),
    ],
)
def test_malformed_values_of_known_parameters_are_400(query: dict[str, list[str]], name: str) -> None:
    with pytest.raises(InvalidRequest, match=f"'{name}'"):
        encounter(query)


def test_control_characters_are_400_even_in_unknown_parameters() -> None:
    for query in (
        {"status": ["fin\x00ished"]},
        {"foo": ["a\nb"]},
        {"fo\x01o": ["1"]},
        {"date": ["2024\x7f"]},
    ):
        with pytest.raises(InvalidRequest, match="control characters"):
            encounter(query)


def test_count_defaults_caps_and_allows_zero() -> None:
    assert encounter({}).count == 20
    assert encounter({"_count": ["0"]}).count == 0
    assert encounter({"_count": ["100"]}).count == 100
    assert encounter({"_count": ["101"]}).count == 100
    assert encounter({"_count": ["9" * 5000]}).count == 100
    assert encounter({"_count": ["007"]}).count == 7


def test_result_parameters() -> None:
    parsed = encounter({"_sort": ["-date"], "_summary": ["count"], "_total": ["accurate"], "_page": ["tok"]})
    assert (parsed.sort, parsed.summary_count, parsed.total, parsed.page) == (
        "-date",
        True,
        "accurate",
        "tok",
    )
    assert parsed.canonical() == "_count=20&_sort=-date&_summary=count&_total=accurate"
    assert not encounter({"_summary": ["false"]}).summary_count
    # Unsupported _summary modes are ignored like unknown parameters, 400 when strict.
    assert encounter({"_summary": ["true"]}).ignored == ("_summary",)
    with pytest.raises(InvalidRequest, match="_summary"):
        encounter({"_summary": ["text"]}, strict=True)
    with pytest.raises(InvalidRequest, match="_sort"):
        patient({"_sort": ["date"]})


def test_empty_values_are_ignored() -> None:
    parsed = encounter({"status": [""], "date": []})
    assert not parsed.has("status") and not parsed.has("date")
    assert parsed.canonical() == "_count=20"


def test_canonical_is_stable_sorted_and_encoded() -> None:
    a = encounter({"status": ["finished"], "date": ["lt2024-02-01", "ge2024-01-01T10:00+01:00"]})
    b = encounter({"date": ["ge2024-01-01T10:00+01:00", "lt2024-02-01"], "status": ["finished"], "x": ["1"]})
    assert a.canonical() == b.canonical()
    assert a.canonical() == "_count=20&date=ge2024-01-01T10:00%2B01:00&date=lt2024-02-01&status=finished"
    assert a.query_key("Encounter") == "Encounter?" + a.canonical()
    assert encounter({"status": ["finished,cancelled"]}).canonical() != a.canonical()


def test_cost_limits() -> None:
    with pytest.raises(SearchTooCostly):
        encounter({"status": [",".join(["finished"] * (MAX_OR_VALUES + 1))]})
    with pytest.raises(SearchTooCostly):
        encounter({"date": ["ge2024"] * (MAX_AND_GROUPS + 1)})
    with pytest.raises(SearchTooCostly):
        encounter({f"p{i}": ["1"] for i in range(100)})
    with pytest.raises(InvalidRequest, match="longer"):
        encounter({"status": ["x" * 5000]})


def test_none_query_is_an_empty_search() -> None:
    assert parse_query(None, ENCOUNTER_PARAMETERS, False).canonical() == "_count=20"


def test_single_valued_mappings_are_read_as_one_value() -> None:
    parsed = parse_query({"status": "finished", "date": None}, ENCOUNTER_PARAMETERS, False)
    assert parsed.canonical() == "_count=20&status=finished"


def test_tables_reject_unknown_types_and_duplicates() -> None:
    with pytest.raises(ValueError, match="type"):
        SearchParameter("x", "text", "X.x", "doc")
    with pytest.raises(ValueError, match="twice"):
        parameter_table(
            SearchParameter("x", "token", "X.x", "doc"), SearchParameter("x", "token", "X.x", "doc")
        )


def test_tables_declare_the_issue_parameters() -> None:
    assert set(ENCOUNTER_PARAMETERS) == {
        "subject",
        "patient",
        "status",
        "date",
        "class",
        "type",
        "_id",
        "_lastUpdated",
    }
    assert set(PATIENT_PARAMETERS) == {
        "identifier",
        "family",
        "given",
        "name",
        "birthdate",
        "gender",
        "_id",
        "_lastUpdated",
    }
    assert ENCOUNTER_SORTS == ("date", "-date", "_lastUpdated", "-_lastUpdated")


keys = st.one_of(
    st.sampled_from(
        [
            *ENCOUNTER_PARAMETERS,
            "_count",
            "_sort",
            "_summary",
            "_total",
            "_page",
            "status:not",
            "subject:Patient",
        ]
    ),
    st.text(max_size=12),
)
values = st.lists(
    st.one_of(st.text(max_size=40), st.from_regex(r"\A(ge|lt|ap)?2024(-0[1-9](-1[0-9])?)?\Z")), max_size=3
)


@given(st.dictionaries(keys, values, max_size=6), st.booleans())
def test_any_query_parses_or_is_a_400(query: dict[str, list[str]], strict: bool) -> None:
    try:
        parsed = encounter(query, strict)
    except (InvalidRequest, SearchTooCostly):
        return
    assert 0 <= parsed.count <= 100
    canonical = parsed.canonical()
    # The canonical query parses back to itself.
    from urllib.parse import parse_qs

    again = encounter(parse_qs(canonical, keep_blank_values=True), strict)
    assert again.canonical() == canonical


@given(st.dictionaries(st.sampled_from([*PATIENT_PARAMETERS, "name:exact"]), values, max_size=4))
def test_any_patient_query_parses_or_is_a_400(query: dict[str, list[str]]) -> None:
    try:
        patient(query, True)
    except (InvalidRequest, SearchTooCostly):
        return
