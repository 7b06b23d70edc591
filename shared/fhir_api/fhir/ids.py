"""FHIR R4 resource ids and the literal references that carry them: the one definition of an id.

An id is 1 to 64 of ``A-Z a-z 0-9 - .`` (R4 datatypes, ``id``). Standard library only.
"""

from __future__ import annotations

import re

ID_PATTERN = r"[A-Za-z0-9\-.]{1,64}"
FHIR_ID = re.compile(ID_PATTERN)  # use with fullmatch


def reference_id(reference: object, resource_type: str) -> str | None:
    """The id of a relative literal reference ``{resource_type}/{id}``; None for any other value
    (another type, a versioned or absolute reference, a bad id, not a string)."""
    if not isinstance(reference, str):
        return None
    kind, _, rest = reference.partition("/")
    return rest if kind == resource_type and FHIR_ID.fullmatch(rest) else None
