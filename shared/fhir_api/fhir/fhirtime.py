"""FHIR R4 date, dateTime and instant values as half-open UTC ranges ``[low, high)``.

Every bound is a canonical instant: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, always 27 characters, so
bounds compare correctly as plain strings (the index sort keys ``periodStart``/``periodEnd`` and
``lastUpdated`` are such strings).

A value's precision defines its range (FHIR R4 search, "Date parameters"): ``2024`` is the whole year,
``2024-03`` the month, ``2024-03-01`` the day, ``2024-03-01T10:00Z`` the minute, ``...T10:00:05Z`` the
second, and a value with fractional seconds is one instant (the range ends one microsecond later;
digits beyond microseconds are dropped).

Decisions:

- Dates without a time, and times without a timezone (search values may omit it), are read as UTC.
- A leap second (``:60``) is read as the last second of its minute (``:59``).
- The instant after ``9999-12-31T23:59:59.999999Z`` cannot be written; ranges that would end there end
  at ``MAX_INSTANT`` instead (one microsecond short, of no consequence for clinical data).
- Anything that is not a FHIR date/dateTime/instant, or names a day that does not exist (month 13,
  February 30), or falls outside years 1..9999 once converted to UTC, raises ``ValueError``.

Public API: ``parse_range``, ``period_range``, ``has_fhir_form``, ``FHIR_FORMS``, ``canonical_now``,
``to_canonical``, ``parse_canonical``, ``MIN_INSTANT``, ``MAX_INSTANT``. This module holds the one
date/dateTime grammar of the code base. Standard library only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

MIN_INSTANT = "0001-01-01T00:00:00.000000Z"
MAX_INSTANT = "9999-12-31T23:59:59.999999Z"

_UTC = UTC
_MAX_DATETIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=_UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

# ASCII digits only: ``\d`` would accept other scripts' digits, which int() reads happily.
_VALUE_RE = re.compile(
    r"(?P<year>[0-9]{4})"
    r"(?:-(?P<month>[0-9]{2})"
    r"(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,12}))?)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?"
    r")?)?)?"
)
# FHIR R4's date, dateTime and instant (datatypes.html) are the grammar above at fixed precisions: a date
# stops at the day; a dateTime stops there or has a time with seconds and a zone; an instant has all.
# Searches may also write minutes without seconds and leave the zone out. The value ranges (month 13,
# hour 24, offset +15:00, February 30) are parse_range's to refuse.
FHIR_FORMS: Mapping[str, str] = MappingProxyType(
    {
        "date": "YYYY, YYYY-MM or YYYY-MM-DD",
        "dateTime": "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)",
        "instant": "YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)",
    }
)
_CANONICAL_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def has_fhir_form(fhir_type: str, value: str) -> bool:
    """Whether ``value`` is written as FHIR R4's ``fhir_type`` (a key of ``FHIR_FORMS``) must be; a
    value with the form may still name no real moment (``parse_range`` says)."""
    match = _VALUE_RE.fullmatch(value)
    if match is None:
        return False
    has_time = match["hour"] is not None
    full_time = match["second"] is not None and match["tz"] is not None
    if fhir_type == "date":
        return not has_time
    if fhir_type == "dateTime":
        return not has_time or full_time
    if fhir_type == "instant":
        return has_time and full_time
    raise ValueError(f"not a FHIR date type: {fhir_type!r}")


def to_canonical(moment: datetime) -> str:
    """Format an aware datetime as a canonical UTC instant (27 characters)."""
    if moment.tzinfo is None:
        raise ValueError("a canonical instant needs a timezone-aware datetime")
    utc = moment.astimezone(_UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def parse_canonical(instant: str) -> datetime:
    """Read a canonical instant back as an aware UTC datetime; ``ValueError`` if it is not one."""
    if not isinstance(instant, str) or not _CANONICAL_RE.fullmatch(instant):
        raise ValueError(f"not a canonical instant (YYYY-MM-DDTHH:MM:SS.ffffffZ): {instant!r}")
    # Fixed positions (the pattern just matched): several times faster than strptime on every answer.
    return datetime(
        int(instant[0:4]),
        int(instant[5:7]),
        int(instant[8:10]),
        int(instant[11:13]),
        int(instant[14:16]),
        int(instant[17:19]),
        int(instant[20:26]),
        tzinfo=_UTC,
    )


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(instant: str) -> str:
    """A canonical instant as an HTTP date (RFC 9110's IMF-fixdate, whole seconds):
    ``Thu, 26 Nov 2026 15:18:31 GMT``. Written by position: every answer about a version carries one."""
    moment = parse_canonical(instant)
    return (
        f"{_WEEKDAYS[moment.weekday()]}, {instant[8:10]} {_MONTHS[moment.month - 1]} {instant[0:4]} "
        f"{instant[11:19]} GMT"
    )


def canonical_now() -> str:
    """The current time as a canonical instant."""
    return to_canonical(datetime.now(_UTC))


def _timezone(text: str | None) -> timezone:
    if text is None or text == "Z":
        return _UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    # FHIR's own pattern: offsets from -14:00 to +14:00, minutes below 60.
    if minutes > 59 or hours > 14 or (hours == 14 and minutes != 0):
        raise ValueError(f"timezone offset out of range: {text}")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _add_capped(moment: datetime, step: timedelta | None, *, months: int = 0) -> str:
    """``moment`` moved forward by ``step`` (or whole months), as a canonical string capped at MAX."""
    try:
        if months:
            total = moment.year * 12 + (moment.month - 1) + months
            year, month = divmod(total, 12)
            if year > 9999:
                return MAX_INSTANT
            return to_canonical(moment.replace(year=year, month=month + 1))
        assert step is not None
        result = moment + step
    except OverflowError:
        return MAX_INSTANT
    return MAX_INSTANT if result > _MAX_DATETIME else to_canonical(result)


def parse_range(value: str) -> tuple[str, str]:
    """The half-open UTC range ``[low, high)`` a FHIR date/dateTime/instant covers, by its precision.

    Raises ``ValueError`` with a message naming the problem for anything malformed.
    """
    if not isinstance(value, str):
        raise _not_a_date(value)
    return _parse_range(value)


# A write reads the same dates more than once (the structure check, the rules, the index attributes).
@functools.lru_cache(maxsize=1024)
def _parse_range(value: str) -> tuple[str, str]:
    match = _VALUE_RE.fullmatch(value)
    if match is None:
        raise _not_a_date(value)
    parts = match.groupdict()
    year = int(parts["year"])
    if year < 1:
        raise ValueError(f"year out of range (0001..9999): {value!r}")
    if parts["month"] is None:
        year_start = datetime(year, 1, 1, tzinfo=_UTC)
        return to_canonical(year_start), _add_capped(year_start, None, months=12)
    month = int(parts["month"])
    if not 1 <= month <= 12:
        raise ValueError(f"month out of range (01..12): {value!r}")
    if parts["day"] is None:
        month_start = datetime(year, month, 1, tzinfo=_UTC)
        return to_canonical(month_start), _add_capped(month_start, None, months=1)
    try:
        day_start = datetime(year, month, int(parts["day"]), tzinfo=_UTC)
    except ValueError as exc:
        raise ValueError(f"no such day ({exc}): {value!r}") from None
    if parts["hour"] is None:
        return to_canonical(day_start), _add_capped(day_start, timedelta(days=1))
    hour, minute = int(parts["hour"]), int(parts["minute"])
    if hour > 23 or minute > 59:
        raise ValueError(f"time out of range (00:00..23:59): {value!r}")
    second = 0 if parts["second"] is None else int(parts["second"])
    if second > 60:
        raise ValueError(f"seconds out of range (00..60): {value!r}")
    fraction = parts["fraction"]
    microsecond = int((fraction + "000000")[:6]) if fraction else 0
    local = datetime(
        year, month, day_start.day, hour, minute, min(second, 59), microsecond, tzinfo=_timezone(parts["tz"])
    )
    try:
        low_moment = local.astimezone(_UTC)
        low = to_canonical(low_moment)
    except (OverflowError, ValueError):
        raise ValueError(f"date out of range once converted to UTC: {value!r}") from None
    if low_moment.year > 9999 or low > MAX_INSTANT:
        raise ValueError(f"date out of range once converted to UTC: {value!r}")
    if parts["second"] is None:
        step = timedelta(minutes=1)
    elif fraction:
        step = _ONE_MICROSECOND
    else:
        step = timedelta(seconds=1)
    return low, _add_capped(low_moment, step)


def _not_a_date(value: object) -> ValueError:
    return ValueError(
        f"not a FHIR date or dateTime: {str(value)[:64]!r} "
        "(expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|+hh:mm])"
    )


def period_range(period: dict[str, Any] | None) -> tuple[str, str]:
    """The range a FHIR Period covers: from its start's low to its end's high.

    A missing start gives ``MIN_INSTANT``; a missing end gives ``MAX_INSTANT`` (an encounter still
    going on overlaps every later date). Raises ``ValueError`` for a malformed start or end.
    """
    if period is None:
        return MIN_INSTANT, MAX_INSTANT
    try:
        start, end = period.get("start"), period.get("end")
    except AttributeError:
        raise ValueError("a Period must be an object") from None
    low = MIN_INSTANT if start is None else parse_range(start)[0]
    high = MAX_INSTANT if end is None else parse_range(end)[1]
    return low, high
