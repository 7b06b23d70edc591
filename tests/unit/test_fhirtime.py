"""fhir_api.fhir.fhirtime: FHIR date/dateTime/instant values as half-open UTC ranges."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_api.fhir.fhirtime import (
    MAX_INSTANT,
    MIN_INSTANT,
    canonical_now,
    has_fhir_form,
    http_date,
    parse_canonical,
    parse_range,
    period_range,
    to_canonical,
)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2024", "2024-01-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z"),
        ("2024-02", "2024-02-01T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z"),
        ("2024-12", "2024-12-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z"),
        ("2024-02-29", "2024-02-29T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z"),
        ("2024-03-01T10:00Z", "2024-03-01T10:00:00.000000Z", "2024-03-01T10:01:00.000000Z"),
        ("2024-03-01T10:00", "2024-03-01T10:00:00.000000Z", "2024-03-01T10:01:00.000000Z"),
        ("2024-03-01T10:00:05Z", "2024-03-01T10:00:05.000000Z", "2024-03-01T10:00:06.000000Z"),
        ("2024-03-01T10:00:05.25Z", "2024-03-01T10:00:05.250000Z", "2024-03-01T10:00:05.250001Z"),
        ("2024-03-01T10:00:05.1234567Z", "2024-03-01T10:00:05.123456Z", "2024-03-01T10:00:05.123457Z"),
        ("2024-03-01T01:30:00+02:00", "2024-02-29T23:30:00.000000Z", "2024-02-29T23:30:01.000000Z"),
        ("2024-12-31T23:30:00-05:00", "2025-01-01T04:30:00.000000Z", "2025-01-01T04:30:01.000000Z"),
        ("2024-06-30T23:59:60Z", "2024-06-30T23:59:59.000000Z", "2024-07-01T00:00:00.000000Z"),
        ("0001", MIN_INSTANT, "0002-01-01T00:00:00.000000Z"),
        ("9999", "9999-01-01T00:00:00.000000Z", MAX_INSTANT),
        ("9999-12-31", "9999-12-31T00:00:00.000000Z", MAX_INSTANT),
    ],
)
def test_parse_range_covers_the_precision_of_the_value(value: str, low: str, high: str) -> None:
    # Given a FHIR date value / When parsed / Then its precision defines the range
    assert parse_range(value) == (low, high)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "24",
        "2024-13",
        "2024-00",
        "2023-02-29",
        "2024-02-30",
        "2024-04-31",
        "0000",
        "2024-01-01T24:00Z",
        "2024-01-01T10:60Z",
        "2024-01-01T10Z",
        "2024-01-01T10:00:61Z",
        "2024-01-01T10:00+15:00",
        "2024-01-01T10:00+01:60",
        "2024-01-01 10:00Z",
        "2024-01-01T10:00:00.Z",
        "2024-01-01z",
        "2024-01-01T10:00z",
        "0001-01-01T00:30+01:00",
        "9999-12-31T23:30-01:00",
        "٢٠٢٤",
        "2024-01-01T10:00:00Z ",
    ],
)
def test_parse_range_rejects_malformed_values(value: str) -> None:
    # Given a malformed value / When parsed / Then a ValueError says so
    with pytest.raises(ValueError, match=r"."):
        parse_range(value)


def test_parse_range_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="not a FHIR date"):
        parse_range(20240101)  # type: ignore[arg-type]


def test_period_range_open_ends_reach_min_and_max() -> None:
    # Given periods with and without ends / Then missing bounds become MIN/MAX
    assert period_range(None) == (MIN_INSTANT, MAX_INSTANT)
    assert period_range({}) == (MIN_INSTANT, MAX_INSTANT)
    assert period_range({"start": "2024-01-01T10:00:00Z"}) == ("2024-01-01T10:00:00.000000Z", MAX_INSTANT)
    assert period_range({"end": "2024-01-02"}) == (MIN_INSTANT, "2024-01-03T00:00:00.000000Z")
    assert period_range({"start": "2024-01-01", "end": "2024-01-01T12:00:00+01:00"}) == (
        "2024-01-01T00:00:00.000000Z",
        "2024-01-01T11:00:01.000000Z",
    )


def test_period_range_rejects_malformed_periods() -> None:
    with pytest.raises(ValueError, match="Period"):
        period_range("2024")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="month"):
        period_range({"start": "2024-13-01"})


def test_canonical_now_is_a_canonical_instant_of_now() -> None:
    # When / Then
    now = canonical_now()
    assert len(now) == 27
    assert abs(parse_canonical(now) - datetime.now(UTC)) < timedelta(seconds=5)


def test_to_canonical_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone"):
        to_canonical(datetime(2024, 1, 1))


@given(st.text(max_size=40))
def test_parse_range_of_any_text_is_a_range_or_a_value_error(text: str) -> None:
    try:
        low, high = parse_range(text)
    except ValueError:
        return
    assert len(low) == len(high) == 27
    assert MIN_INSTANT <= low < high <= MAX_INSTANT


date_like = st.from_regex(
    r"\A[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?\Z"
)


@given(date_like)
def test_parse_range_of_date_shaped_text_is_a_range_or_a_value_error(text: str) -> None:
    try:
        low, high = parse_range(text)
    except ValueError:
        return
    assert MIN_INSTANT <= low < high <= MAX_INSTANT
    assert parse_canonical(low) <= parse_canonical(high)


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)))
def test_an_instant_round_trips_to_a_one_microsecond_range(moment: datetime) -> None:
    # Given an instant written with microseconds
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")
    # When / Then
    low, high = parse_range(text)
    assert low == to_canonical(moment)
    assert high == to_canonical(moment + timedelta(microseconds=1))


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)))
def test_an_instants_http_date_is_the_one_the_email_module_writes(moment: datetime) -> None:
    # An answer's Last-Modified, as RFC 9110 writes it (whole seconds, GMT)
    assert http_date(to_canonical(moment)) == format_datetime(moment, usegmt=True)


def test_an_http_date_names_the_weekday_of_a_leap_day() -> None:
    assert http_date("2024-02-29T23:59:59.999999Z") == "Thu, 29 Feb 2024 23:59:59 GMT"


# FHIR R4's own regexes (datatypes.html), the oracle for the written forms.
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH_DAY = r"-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
SPEC_FORMS = {
    "date": re.compile(rf"{_YEAR}({_MONTH_DAY})?)?"),
    "dateTime": re.compile(rf"{_YEAR}({_MONTH_DAY}({_TIME}{_ZONE})?)?)?"),
    "instant": re.compile(rf"{_YEAR}{_MONTH_DAY}){_TIME}{_ZONE}"),
}


@pytest.mark.parametrize(
    ("fhir_type", "value", "written_so"),
    [
        ("date", "2024", True),
        ("date", "2024-03-15", True),
        ("date", "2024-03-15T10:00:00Z", False),
        ("dateTime", "2024-03-15", True),
        ("dateTime", "2024-03-15T10:00:00.5+14:00", True),
        ("dateTime", "2024-03-15T10:00Z", False),  # a search may stop at the minute, a resource may not
        ("dateTime", "2024-03-15T10:00:00", False),  # a time needs its zone
        ("instant", "2024-03-15T10:00:00Z", True),
        ("instant", "2024-03-15", False),
    ],
)
def test_has_fhir_form_holds_a_value_to_its_type(fhir_type: str, value: str, written_so: bool) -> None:
    # When / Then the precision decides, on the one grammar parse_range reads
    assert has_fhir_form(fhir_type, value) is written_so
    parse_range(value)


@st.composite
def written_values(draw: st.DrawFn) -> str:
    """Real moments at every precision a resource or a search may write, each part optional in turn."""
    text = f"{draw(st.integers(1, 9999)):04d}"
    for part in (st.integers(1, 12), st.integers(1, 28)):
        if draw(st.booleans()):
            return text
        text += f"-{draw(part):02d}"
    if draw(st.booleans()):
        return text
    text += f"T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    if draw(st.booleans()):
        text += f":{draw(st.integers(0, 60)):02d}"
        if draw(st.booleans()):
            text += "." + draw(st.text("0123456789", min_size=1, max_size=12))
    zone = draw(st.sampled_from(["", "Z", "+14:00", "-13:59", "+05:30", "-00:00"]))
    return text + zone


@given(st.sampled_from(sorted(SPEC_FORMS)), st.one_of(written_values(), date_like))
def test_the_written_forms_are_fhirs_own_regexes(fhir_type: str, text: str) -> None:
    # Given a date-shaped text that names a real moment
    try:
        parse_range(text)
    except ValueError:
        return
    # Then it has the type's form exactly when FHIR's regex for the type matches it
    assert has_fhir_form(fhir_type, text) is bool(SPEC_FORMS[fhir_type].fullmatch(text))
