"""fhir_api.search.dates: date prefixes matched against target ranges, and index key bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_api.fhir.fhirtime import MAX_INSTANT, MIN_INSTANT, period_range
from fhir_api.search.dates import PREFIXES, DateCriterion, key_bounds, matches, matches_all, parse_date_param

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _match(param: str, period: dict[str, str] | None) -> bool:
    return matches(parse_date_param(param, NOW), *period_range(period))


JAN = {"start": "2024-01-10T09:00:00Z", "end": "2024-01-10T10:00:00Z"}  # inside January 2024
SPANNING = {"start": "2023-12-31T22:00:00Z", "end": "2024-01-01T02:00:00Z"}  # across the new year
OPEN = {"start": "2023-12-01T08:00:00Z"}  # no end yet: the patient is still here


@pytest.mark.parametrize(
    ("param", "period", "expected"),
    [
        ("2024-01", JAN, True),
        ("eq2024-01", JAN, True),
        ("eq2024-01-10", JAN, True),
        ("eq2024-01-11", JAN, False),
        ("eq2024", SPANNING, False),  # the year does not fully contain the period
        ("eq2024", OPEN, False),
        ("ne2024", SPANNING, True),
        ("ne2024-01", JAN, False),
        ("gt2023", SPANNING, True),  # the range above 2023 overlaps the period
        ("gt2024-01-10", JAN, False),
        ("gt2099", OPEN, True),  # an open end overlaps every later date
        ("lt2024", SPANNING, True),
        ("lt2024-01-10", JAN, False),
        ("lt2024-01-11", JAN, True),
        ("ge2024-01-10", JAN, True),
        ("ge2024-01-11", JAN, False),
        ("ge2030-01-01", OPEN, True),
        ("le2024-01-10", JAN, True),
        ("le2024-01-09", JAN, False),
        ("le2023-12-02", OPEN, True),
        # Starts inside the day and runs past it: neither below it nor contained in it (R4's wording).
        ("le2023-12-01", OPEN, False),
        ("le2023-11-30", OPEN, False),
        ("ge2023-12-01", {"start": "2023-11-30T23:00:00Z", "end": "2023-12-01T01:00:00Z"}, False),
        ("ge2023-11-30", {"start": "2023-11-30T23:00:00Z", "end": "2023-12-01T01:00:00Z"}, True),
        ("sa2024-01-09", JAN, True),
        ("sa2024-01-10", JAN, False),
        ("sa2023", SPANNING, False),
        ("eb2024-01-11", JAN, True),
        ("eb2024-01-10", JAN, False),
        ("eb2099", OPEN, False),
        ("ap2024-01-10", JAN, True),
        ("ap2023-12-31T22:30:00Z", SPANNING, True),
        ("2024-01-10T09:00:00Z", {"start": "2024-01-10T09:00:00Z", "end": "2024-01-10T09:00:00Z"}, True),
        ("2024-01-10T10:00+01:00", {"start": "2024-01-10T09:00:00Z", "end": "2024-01-10T09:00:30Z"}, True),
        ("gt2024-01-10T10:00 01:00", JAN, True),  # '+' decoded to a space
    ],
)
def test_prefixes_follow_the_fhir_range_rules(param: str, period: dict[str, str], expected: bool) -> None:
    # Given a search value and an encounter period / When matched / Then per FHIR R4 search ranges
    assert _match(param, period) is expected


def test_approximately_widens_by_ten_percent_of_the_gap_to_now() -> None:
    # Given a day ending 100 days before now: the tolerance is 10 days on each side
    criterion = parse_date_param("ap2024-02-21", NOW)
    # Then
    assert criterion.low == "2024-02-11T00:00:00.000000Z"
    assert criterion.high == "2024-03-03T00:00:00.000000Z"
    assert _match("ap2024-02-21", {"start": "2024-03-01T00:00:00Z", "end": "2024-03-01T01:00:00Z"})
    assert not _match("ap2024-02-21", {"start": "2024-03-05T00:00:00Z", "end": "2024-03-06T00:00:00Z"})


def test_approximately_now_has_no_extra_tolerance() -> None:
    criterion = parse_date_param("ap2024-06-01", NOW)
    assert (criterion.low, criterion.high) == ("2024-06-01T00:00:00.000000Z", "2024-06-02T00:00:00.000000Z")


def test_approximately_far_values_stay_within_the_instant_limits() -> None:
    low = parse_date_param("ap0001", NOW)
    high = parse_date_param("ap9999", NOW)
    assert low.low == MIN_INSTANT
    assert high.high == MAX_INSTANT


@pytest.mark.parametrize(
    "raw", ["", "eq", "xx2024", "GE2024", "ge", "ge2024-13", "2024-02-30", "ge 2024", "gt2024/01"]
)
def test_malformed_date_values_raise_value_error(raw: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_date_param(raw, NOW)


def test_key_bounds_per_prefix() -> None:
    # Given one criterion per prefix / Then the start bounds are the documented ones
    def bounds(raw: str) -> tuple[str | None, str | None]:
        return key_bounds([parse_date_param(raw, NOW)])

    jan_low, feb_low = "2024-01-01T00:00:00.000000Z", "2024-02-01T00:00:00.000000Z"
    assert bounds("eq2024-01") == (jan_low, feb_low)
    assert bounds("lt2024-01") == (None, jan_low)
    assert bounds("le2024-01") == (None, feb_low)
    assert bounds("sa2024-01") == (feb_low, None)
    assert bounds("eb2024-01") == (None, jan_low)
    assert bounds("gt2024-01") == (None, None)
    assert bounds("ge2024-01") == (None, None)
    assert bounds("ne2024-01") == (None, None)
    assert bounds("ap2024-01")[0] is None
    assert bounds("ap2024-01")[1] is not None and bounds("ap2024-01")[1] > feb_low  # type: ignore[operator]


def test_key_bounds_and_tightens_or_loosens() -> None:
    ge = parse_date_param("sa2024-01-01", NOW)
    lt = parse_date_param("lt2024-02-01", NOW)
    # AND of two criteria: both bounds
    assert key_bounds([ge, lt]) == ("2024-01-02T00:00:00.000000Z", "2024-02-01T00:00:00.000000Z")
    # OR inside one group: only what all options bound
    assert key_bounds([[ge, lt]]) == (None, None)
    eq1, eq2 = parse_date_param("2024-01", NOW), parse_date_param("2024-03", NOW)
    assert key_bounds([[eq1, eq2]]) == ("2024-01-01T00:00:00.000000Z", "2024-04-01T00:00:00.000000Z")
    assert key_bounds([]) == (None, None)


def test_matches_all_ands_groups_and_ors_values() -> None:
    low, high = period_range(JAN)
    ge, lt = parse_date_param("ge2024-01-01", NOW), parse_date_param("lt2024-02-01", NOW)
    miss = parse_date_param("2023", NOW)
    assert matches_all([ge, lt], low, high)
    assert matches_all([[miss, ge]], low, high)
    assert not matches_all([ge, miss], low, high)


def test_unknown_prefix_in_a_criterion_is_rejected() -> None:
    with pytest.raises(ValueError, match="prefix"):
        matches(DateCriterion("zz", MIN_INSTANT, MAX_INSTANT), MIN_INSTANT, MAX_INSTANT)


# Values at every precision, in a small window so that the generated ranges meet and overlap often.
search_values = st.builds(
    lambda prefix, day, hour, minute, precision: (
        prefix
        + ["2024", "2024-01", f"2024-01-{day:02d}", f"2024-01-{day:02d}T{hour:02d}:{minute:02d}Z"][precision]
    ),
    st.sampled_from(PREFIXES),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 3),
)
instants = st.one_of(
    st.none(),
    st.builds(
        lambda day, hour, minute: f"2024-01-{day:02d}T{hour:02d}:{minute:02d}:00Z",
        st.integers(1, 31),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
    st.sampled_from(["2023-12-31", "2024-02-01", "2024-01"]),
)


@given(st.lists(search_values, min_size=1, max_size=3), instants, instants)
def test_key_bounds_never_exclude_a_match(raws: list[str], start: str | None, end: str | None) -> None:
    # Given an encounter period (possibly open-ended) and ANDed criteria
    period = {key: value for key, value in (("start", start), ("end", end)) if value is not None}
    low, high = period_range(period)
    if low >= high:
        return
    criteria = [parse_date_param(raw, NOW) for raw in raws]
    # When the period matches every criterion
    if not all(matches(criterion, low, high) for criterion in criteria):
        return
    # Then its start lies within the key bounds
    bound_low, bound_high = key_bounds(criteria)
    assert bound_low is None or low >= bound_low
    assert bound_high is None or low < bound_high


@given(st.text(max_size=30))
def test_any_text_is_a_criterion_or_a_value_error(text: str) -> None:
    try:
        criterion = parse_date_param(text, NOW)
    except ValueError:
        return
    assert criterion.prefix in PREFIXES
    assert criterion.low <= criterion.high
