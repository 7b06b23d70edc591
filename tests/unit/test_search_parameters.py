"""fhir_api.search.parameters: parsing a search query against the parameter tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fhir_api.errors import InvalidRequest, SearchTooCostly
from fhir_api.resources.search_parameters import (
    ENCOUNTER_PARAMETERS,
    ENCOUNTER_SORTS,
    PATIENT_PARAMETERS,
    PATIENT_SORTS,
)
from fhir_api.search.dates import DateCriterion
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


def encounter(query: dict[str, list[str]], strict: bool = True) -> SearchQuery:
    return parse_query(query, ENCOUNTER_PARAMETERS, strict, sorts=ENCOUNTER_SORTS, now=NOW)


def patient(query: dict[str, list[str]], strict: bool = True) -> SearchQuery:
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


UNSUPPORTED_KEYS = [
    "foo",
    "patient.name",  # a chain
    "subject:Patient.name",  # a chain behind a type modifier
    "_has:Observation:patient:code",
    "_include",
    "_revinclude",
    "_elements",
    "_contained",
    "status:text",
    "status:not",
    "date:missing",
    "subject:missing",
    "_count:x",
]


@pytest.mark.parametrize("key", UNSUPPORTED_KEYS)
def test_what_the_server_does_not_search_by_is_refused_naming_it(key: str) -> None:
    # Given a search with one parameter, modifier, chain or result parameter the server does not support
    query = {"subject": ["Patient/p-1"], key: ["Muller"]}

    # When it is parsed with the default (strict) handling
    with pytest.raises(InvalidRequest) as raised:
        encounter(query)

    # Then one issue names it and lists what Encounter supports
    [issue] = raised.value.issues
    assert (issue.severity, issue.code, issue.expression) == ("error", "not-supported", (key,))
    assert f"'{key}'" in issue.diagnostics
    assert "subject, subject:Patient, patient, patient:Patient, status, date" in issue.diagnostics


def test_every_unsupported_parameter_gets_its_own_issue() -> None:
    with pytest.raises(InvalidRequest) as raised:
        encounter({"patient.name": ["Muller"], "_include": ["Encounter:subject"], "status": ["finished"]})
    assert [issue.expression for issue in raised.value.issues] == [("_include",), ("patient.name",)]


def test_one_issue_per_parameter_however_many_codes() -> None:
    # Ten occurrences of twenty made-up codes each give one issue, not two hundred
    made_up = [",".join(f"code-{n}-{m}" for m in range(MAX_OR_VALUES)) for n in range(MAX_AND_GROUPS)]
    with pytest.raises(InvalidRequest) as raised:
        encounter({"status": made_up})
    [issue] = raised.value.issues
    assert issue.expression == ("status",)
    assert "'code-0-0'" in issue.diagnostics and "'code-9-19'" in issue.diagnostics


@pytest.mark.parametrize("key", UNSUPPORTED_KEYS)
def test_lenient_handling_leaves_it_out_with_a_warning(key: str) -> None:
    # When the same search is parsed leniently
    parsed = encounter({"subject": ["Patient/p-1"], key: ["Muller"]}, strict=False)

    # Then the criteria it understands stay, the rest is out of the self link and reported as a warning
    assert parsed.values("subject") == [["p-1"]]
    assert parsed.canonical() == "_count=20&subject=Patient/p-1"
    [warning] = parsed.warnings
    assert (warning.severity, warning.expression) == ("warning", (key,))
    assert "ignored" in warning.diagnostics


def test_unsupported_summary_modes_are_refused_or_left_out() -> None:
    with pytest.raises(InvalidRequest, match="_summary=text"):
        encounter({"_summary": ["text"]})
    parsed = encounter({"_summary": ["true"]}, strict=False)
    assert not parsed.summary_count
    assert [warning.expression for warning in parsed.warnings] == [("_summary",)]


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
        ({"subject": ["Patient/1\\"]}, "subject"),
    ],
)
def test_malformed_values_of_known_parameters_are_400(query: dict[str, list[str]], name: str) -> None:
    # Under either handling: a malformed value is an error, not something to leave out
    for strict in (True, False):
        with pytest.raises(InvalidRequest, match=f"'{name}'") as raised:
            encounter(query, strict)
        assert raised.value.expression == (name,)


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
    with pytest.raises(InvalidRequest, match="_sort"):
        patient({"_sort": ["date"]})


def test_total_method_is_read_as_total() -> None:
    # fhirpy's count() sends _count=0&_totalMethod=count
    assert encounter({"_count": ["0"], "_totalMethod": ["count"]}).canonical() == "_count=0&_total=accurate"
    assert encounter({"_totalMethod": ["none"], "_total": ["none"]}).total == "none"
    for query in ({"_totalMethod": ["all"]}, {"_totalMethod": ["count"], "_total": ["none"]}):
        with pytest.raises(InvalidRequest, match="_totalMethod"):
            encounter(query)


def test_a_parameter_without_a_value_is_refused_or_left_out() -> None:
    # An empty patient would otherwise answer with every patient's encounters
    with pytest.raises(InvalidRequest, match="'patient' has no value") as raised:
        encounter({"patient": [""]})
    assert raised.value.issues[0].expression == ("patient",)
    parsed = encounter({"status": [""], "date": []}, strict=False)
    assert not parsed.has("status") and not parsed.has("date")
    assert parsed.canonical() == "_count=20"
    assert [warning.expression for warning in parsed.warnings] == [("status",)]


@pytest.mark.parametrize(
    ("search", "query", "code"),
    [
        (encounter, {"status": ["made-up"]}, "made-up"),
        (encounter, {"status": ["planned,made-up,other"]}, "made-up"),
        (encounter, {"status": ["FINISHED"]}, "FINISHED"),  # codes are case-sensitive
        (encounter, {"status": ["http://hl7.org/fhir/encounter-status|made-up"]}, "made-up"),
        (patient, {"gender": ["x"]}, "x"),
    ],
)
def test_a_code_outside_the_required_value_set_is_refused(
    search: Any, query: dict[str, list[str]], code: str
) -> None:
    # When a bound token carries a code its value set does not have
    with pytest.raises(InvalidRequest) as raised:
        search(query)

    # Then the issue names the parameter and the code, and lists the codes
    issue = raised.value.issues[0]
    name = next(iter(query))
    assert (issue.code, issue.expression) == ("code-invalid", (name,))
    assert f"'{code}'" in issue.diagnostics
    assert ("in-progress" if name == "status" else "female") in issue.diagnostics


def test_lenient_handling_drops_unknown_codes_and_an_emptied_list_matches_nothing() -> None:
    # Given made-up codes beside a real one, and made-up codes alone
    mixed = encounter({"status": ["made-up,finished,other"]}, strict=False)
    alone = encounter({"status": ["made-up,other"]}, strict=False)

    # Then only the real code is searched for (and in the self link), with a warning per code
    assert mixed.values("status") == [[TokenValue(None, "finished")]]
    assert mixed.canonical() == "_count=20&status=finished"
    [warning] = mixed.warnings
    assert (warning.code, warning.expression) == ("code-invalid", ("status",))
    assert "'made-up', 'other' are not status codes" in warning.diagnostics
    # And a list left empty stays a criterion no encounter meets (it never widens to every status)
    assert alone.has("status") and alone.values("status") == [[]]
    assert alone.canonical() == "_count=20&status=made-up,other"


def test_codes_of_another_system_are_valid_and_match_nothing() -> None:
    parsed = encounter({"status": ["http://example.org/other|made-up"], "class": ["made-up"]})
    assert parsed.values("status") == [[TokenValue("http://example.org/other", "made-up")]]
    assert parsed.warnings == ()


def test_canonical_is_stable_sorted_and_encoded() -> None:
    a = encounter({"status": ["finished"], "date": ["lt2024-02-01", "ge2024-01-01T10:00+01:00"]})
    b = encounter(
        {"date": ["ge2024-01-01T10:00+01:00", "lt2024-02-01"], "status": ["finished"], "x": ["1"]},
        strict=False,
    )
    assert a.canonical() == b.canonical()
    assert a.canonical() == "_count=20&date=ge2024-01-01T10:00%2B01:00&date=lt2024-02-01&status=finished"
    assert a.query_key("Encounter") == "Encounter?" + a.canonical()
    assert encounter({"status": ["finished,cancelled"]}).canonical() != a.canonical()


@given(
    st.text(
        st.sampled_from("aZ09-._~:|,/%&=+ #?é") | st.characters(blacklist_categories=("Cc", "Cs")),
        max_size=40,
    )
)
def test_canonical_encodes_any_value_as_url_quoting_does(value: str) -> None:
    """Values with nothing to encode skip the encoder; every value reads as the encoder writes it."""
    try:
        parsed = encounter({"identifier": [value]})
    except InvalidRequest:
        assume(False)  # not a value a search can hold (an empty item in a list)
    written = [group.raw for group in parsed.groups.get("identifier", [])]
    expected = sorted([("_count", "20"), *(("identifier", raw) for raw in written)])
    assert parsed.canonical() == "&".join(
        f"{quote(k, safe=':')}={quote(v, safe=',|:/')}" for k, v in expected
    )


def test_cost_limits() -> None:
    encounter({"_id": [",".join(["a"] * MAX_OR_VALUES)]})
    with pytest.raises(SearchTooCostly) as too_many_values:
        encounter({"status": [",".join(["finished"] * (MAX_OR_VALUES + 1))]})
    assert too_many_values.value.expression == ("status",)
    with pytest.raises(SearchTooCostly) as too_many_repeats:
        encounter({"date": ["ge2024"] * (MAX_AND_GROUPS + 1)})
    assert too_many_repeats.value.expression == ("date",)
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
        "identifier",
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


@pytest.mark.parametrize(
    ("prefer", "lenient"),
    [
        (None, False),
        ("", False),
        ("handling=strict", False),
        ("handling=lenient", True),
        ("return=minimal, handling=lenient", True),
        ("HANDLING = Lenient", True),
        ('handling="lenient"', True),
        ("handling=lenient; x=1", True),
        ("handling=strict, handling=lenient", False),  # RFC 7240: the first one counts
        ("handling=sloppy", False),
        ("respond-async, wait=10", False),
    ],
)
def test_the_prefer_header_asks_for_lenient_handling_explicitly(prefer: str | None, lenient: bool) -> None:
    from fhir_api.api.headers import prefers_lenient_handling

    assert prefers_lenient_handling(prefer) is lenient
