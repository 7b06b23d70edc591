"""The Encounter status lifecycle table against the rules of docs/validation.md."""

from __future__ import annotations

import itertools

import pytest

from fhir_api.fhir.terminology import ENCOUNTER_STATUS
from fhir_api.resources.lifecycle import STATUS_MOVES, STATUS_ORDER, allowed_moves, can_move

# docs/validation.md's path: planned -> arrived -> triaged -> in-progress <-> onleave -> finished
PATH = ("planned", "arrived", "triaged", "in-progress", "onleave", "finished")
STATUSES = sorted(ENCOUNTER_STATUS.codes)


def test_the_table_covers_every_encounter_status() -> None:
    # When / Then the table has a row for each code of the value set, and names only its codes
    assert set(STATUS_MOVES) == ENCOUNTER_STATUS.codes
    assert set(STATUS_ORDER) == ENCOUNTER_STATUS.codes
    assert set().union(*STATUS_MOVES.values()) <= ENCOUNTER_STATUS.codes


@pytest.mark.parametrize("status", STATUSES)
def test_keeping_a_status_is_always_allowed(status: str) -> None:
    # When / Then no move is no change
    assert can_move(status, status)
    assert status not in allowed_moves(status)


@pytest.mark.parametrize(("old", "new"), list(itertools.combinations(PATH, 2)))
def test_forward_moves_along_the_path_are_allowed_skipping_steps(old: str, new: str) -> None:
    # When / Then any later step may follow any earlier one
    assert can_move(old, new)


@pytest.mark.parametrize(("earlier", "later"), list(itertools.combinations(PATH, 2)))
def test_backward_moves_are_refused_except_back_from_leave(earlier: str, later: str) -> None:
    # When / Then of all moves from a later step to an earlier one, only onleave -> in-progress is allowed
    assert can_move(later, earlier) == ((later, earlier) == ("onleave", "in-progress"))


@pytest.mark.parametrize("status", [status for status in STATUSES if status != "entered-in-error"])
def test_anything_may_become_entered_in_error(status: str) -> None:
    # When / Then every status may be marked as entered in error
    assert can_move(status, "entered-in-error")


@pytest.mark.parametrize("status", ["finished", "cancelled", "entered-in-error"])
def test_final_statuses_only_become_entered_in_error(status: str) -> None:
    # When / Then a final status moves nowhere but entered-in-error (which moves nowhere)
    expected = frozenset() if status == "entered-in-error" else frozenset({"entered-in-error"})
    assert allowed_moves(status) == expected


@pytest.mark.parametrize("status", STATUSES)
def test_cancelled_only_from_planned_arrived_triaged_or_unknown(status: str) -> None:
    # When / Then cancelling is for encounters that have not started
    expected = status in ("planned", "arrived", "triaged", "unknown", "cancelled")
    assert can_move(status, "cancelled") == expected


@pytest.mark.parametrize("status", STATUSES)
def test_unknown_may_become_anything_but_nothing_becomes_unknown(status: str) -> None:
    # When / Then unknown resolves to a known status, never the other way
    assert can_move("unknown", status)
    assert can_move(status, "unknown") == (status == "unknown")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("planned", "finished", True),
        ("triaged", "onleave", True),
        ("in-progress", "onleave", True),
        ("onleave", "in-progress", True),
        ("onleave", "finished", True),
        ("finished", "in-progress", False),
        ("in-progress", "planned", False),
        ("in-progress", "cancelled", False),
        ("onleave", "cancelled", False),
        ("cancelled", "planned", False),
        ("entered-in-error", "finished", False),
    ],
)
def test_examples(old: str, new: str, expected: bool) -> None:
    # When / Then
    assert can_move(old, new) is expected


def test_an_unrecognised_status_moves_nowhere() -> None:
    # When / Then a status outside the table has no moves, but keeping it is no move
    assert allowed_moves("bogus") == frozenset()
    assert not can_move("bogus", "finished")
    assert can_move("bogus", "bogus")
