"""Date search (FHIR R4 search, "prefix" and "Date parameters"): prefixes matched against ranges.

A search value and a target are both half-open UTC ranges of canonical instants (``fhir_api.fhir.fhirtime``);
for an Encounter the target is its ``period`` (``period_range``: a missing end is ``MAX_INSTANT``, so an
encounter still going on overlaps every later date), for ``_lastUpdated`` it is one instant. With
search range ``[s_low, s_high)`` and target ``[t_low, t_high)`` the prefixes mean:

====  ==========================================================  ===============================
eq    the search range fully contains the target                  s_low <= t_low and t_high <= s_high
ne    the search range does not fully contain the target          not eq
gt    the range above the search value overlaps the target        t_high > s_high
lt    the range below the search value overlaps the target        t_low < s_low
ge    gt, or the search range fully contains the target           gt or eq
le    lt, or the search range fully contains the target           lt or eq
sa    the target starts after the search range (no overlap)       t_low >= s_high
eb    the target ends before the search range (no overlap)        t_high <= s_low
ap    the target overlaps the search range widened by the         t_low < w_high and t_high > w_low
      approximation tolerance
====  ==========================================================  ===============================

``ap`` tolerance: the spec's recommendation, 10% of the gap between now and the search value (zero when
now lies inside the value's range), added on both sides. The widened range is what
``DateCriterion.low``/``high`` hold for ``ap``.

Usage by the store/service::

    criterion = parse_date_param("ge2024-01-01")            # ValueError when malformed
    low, high = key_bounds(query.values("date"))             # bounds on periodStart (None = unbounded)
    ... KeyConditionExpression periodStart >= low / < high
    matches(criterion, item["periodStart"], item["periodEnd"])  # exact filter on every item read

Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fhir_api.fhir.fhirtime import MAX_INSTANT, MIN_INSTANT, parse_canonical, parse_range, to_canonical

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
AP_TOLERANCE_FRACTION = 0.1

# A '+' of an unencoded timezone offset arrives as a space once the query string is decoded.
_SPACE_OFFSET_RE = re.compile(r"(T[0-9:.]+) ([0-9]{2}:[0-9]{2})$")


@dataclass(frozen=True)
class DateCriterion:
    """One date search value: its prefix and the half-open range ``[low, high)`` it stands for.

    For ``ap`` the range is already widened by the approximation tolerance. ``raw`` is the value as
    the client sent it (for links).
    """

    prefix: str
    low: str
    high: str
    raw: str = ""


def _approximate(low: str, high: str, now: datetime) -> tuple[str, str]:
    start, end = parse_canonical(low), parse_canonical(high)
    if now < start:
        gap = start - now
    elif now >= end:
        gap = now - end
    else:
        gap = timedelta(0)
    tolerance = gap * AP_TOLERANCE_FRACTION
    try:
        widened_low = to_canonical(start - tolerance)
    except (OverflowError, ValueError):
        widened_low = MIN_INSTANT
    try:
        widened_high = min(to_canonical(end + tolerance), MAX_INSTANT)
    except (OverflowError, ValueError):
        widened_high = MAX_INSTANT
    return max(widened_low, MIN_INSTANT), widened_high


def parse_date_param(raw: str, now: datetime | None = None) -> DateCriterion:
    """Parse a date search value such as ``ge2024-01-01`` or ``2024-03-01T10:00Z``.

    No prefix means ``eq``. ``now`` (aware; default the current time) sets the ``ap`` tolerance.
    Raises ``ValueError`` naming the problem when the value is malformed.
    """
    text = raw if isinstance(raw, str) else ""
    prefix, value = "eq", text
    if text[:2] in PREFIXES:
        prefix, value = text[:2], text[2:]
    elif text[:2].isalpha():
        raise ValueError(f"unknown date prefix {text[:2]!r} (use one of {', '.join(PREFIXES)})")
    value = _SPACE_OFFSET_RE.sub(r"\1+\2", value)
    low, high = parse_range(value)
    if prefix == "ap":
        moment = now if now is not None else datetime.now(UTC)
        low, high = _approximate(low, high, moment)
    return DateCriterion(prefix, low, high, text)


def _contains(criterion: DateCriterion, target_low: str, target_high: str) -> bool:
    return criterion.low <= target_low and target_high <= criterion.high


def matches(criterion: DateCriterion, target_low: str, target_high: str) -> bool:
    """Whether a target range ``[target_low, target_high)`` satisfies the criterion (table above)."""
    prefix = criterion.prefix
    if prefix == "eq":
        return _contains(criterion, target_low, target_high)
    if prefix == "ne":
        return not _contains(criterion, target_low, target_high)
    if prefix == "gt":
        return target_high > criterion.high
    if prefix == "lt":
        return target_low < criterion.low
    if prefix == "ge":
        return target_high > criterion.high or _contains(criterion, target_low, target_high)
    if prefix == "le":
        return target_low < criterion.low or _contains(criterion, target_low, target_high)
    if prefix == "sa":
        return target_low >= criterion.high
    if prefix == "eb":
        return target_high <= criterion.low
    if prefix == "ap":
        return target_low < criterion.high and target_high > criterion.low
    raise ValueError(f"unknown date prefix {prefix!r}")


def matches_all(groups: Iterable[DateCriterion | Sequence[DateCriterion]], low: str, high: str) -> bool:
    """Whether a target satisfies every AND group (a group matches when any of its OR values does)."""
    for group in groups:
        options = (group,) if isinstance(group, DateCriterion) else group
        if not any(matches(option, low, high) for option in options):
            return False
    return True


def _start_bounds(criterion: DateCriterion) -> tuple[str | None, str | None]:
    """Bounds ``[low, high)`` on the target's start that every match of ``criterion`` respects."""
    prefix = criterion.prefix
    if prefix == "eq":
        # s_low <= t_low, and t_low < t_high <= s_high.
        return criterion.low, criterion.high
    if prefix in ("lt", "eb"):
        # eb: t_low < t_high <= s_low.
        return None, criterion.low
    if prefix in ("le", "ap"):
        return None, criterion.high
    if prefix == "sa":
        return criterion.high, None
    return None, None  # ne, gt, ge: a target may start at any time


def key_bounds(
    groups: Iterable[DateCriterion | Sequence[DateCriterion]],
) -> tuple[str | None, str | None]:
    """The tightest ``(low_inclusive, high_exclusive)`` bounds on the target's start (``periodStart``).

    ``groups`` are ANDed; each is one criterion or a sequence of ORed criteria (``SearchQuery.values``
    gives the latter). ``None`` means unbounded. The bounds never exclude a match; when
    ``low >= high`` nothing can match and the query can be skipped.
    """
    low: str | None = None
    high: str | None = None
    for group in groups:
        options = (group,) if isinstance(group, DateCriterion) else tuple(group)
        if not options:
            continue
        group_low, group_high = _group_bounds(options)
        if group_low is not None and (low is None or group_low > low):
            low = group_low
        if group_high is not None and (high is None or group_high < high):
            high = group_high
    return low, high


def _group_bounds(options: Sequence[DateCriterion]) -> tuple[str | None, str | None]:
    """The start bounds of an OR group: only as far as all of its options bound the start."""
    bounds = [_start_bounds(option) for option in options]
    lows = [low for low, _ in bounds]
    highs = [high for _, high in bounds]
    group_low = None if None in lows else min(low for low in lows if low is not None)
    group_high = None if None in highs else max(high for high in highs if high is not None)
    return group_low, group_high
