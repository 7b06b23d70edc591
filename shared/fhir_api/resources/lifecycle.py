"""The Encounter status lifecycle: the one table of the status moves an update may make.

FHIR R4 Encounter.status (value set ``encounter-status``). The table (docs/validation.md):
planned -> arrived -> triaged -> in-progress <-> onleave -> finished, forward only, steps may be
skipped (so ``onleave`` sits after ``in-progress`` on the path and may be reached by skipping it);
``cancelled`` only from planned, arrived or triaged; ``finished`` and ``cancelled`` are final except
for ``entered-in-error``, which any status may become and which is final itself. ``unknown`` (the
sender does not know the state, e.g. migrated data) may become any known status, but no known status
may fall back to ``unknown``: that would throw information away. Keeping a status is not a move and
is always allowed. A create has no previous status, so any status is accepted on create.

Public API
----------
``STATUS_ORDER: tuple[str, ...]``
    Every Encounter status, in lifecycle order (for stable messages and documentation).
``STATUS_MOVES: Mapping[str, frozenset[str]]``
    Status -> the statuses an update may move it to (the table).
``allowed_moves(status: str) -> frozenset[str]``
    The statuses ``status`` may move to (empty for final or unrecognised statuses).
``can_move(old: str, new: str) -> bool``
    Whether an update may change the status from ``old`` to ``new`` (same status: always).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

STATUS_ORDER: tuple[str, ...] = (
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)

_ERROR = "entered-in-error"

STATUS_MOVES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "planned": frozenset(
            {"arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", _ERROR}
        ),
        "arrived": frozenset({"triaged", "in-progress", "onleave", "finished", "cancelled", _ERROR}),
        "triaged": frozenset({"in-progress", "onleave", "finished", "cancelled", _ERROR}),
        "in-progress": frozenset({"onleave", "finished", _ERROR}),
        "onleave": frozenset({"in-progress", "finished", _ERROR}),
        "finished": frozenset({_ERROR}),
        "cancelled": frozenset({_ERROR}),
        _ERROR: frozenset(),
        "unknown": frozenset(
            {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", _ERROR}
        ),
    }
)


def allowed_moves(status: str) -> frozenset[str]:
    """Return the statuses an Encounter with ``status`` may move to (empty when it is final)."""
    return STATUS_MOVES.get(status, frozenset())


def can_move(old: str, new: str) -> bool:
    """Say whether an update may change an Encounter's status from ``old`` to ``new``."""
    return old == new or new in allowed_moves(old)
