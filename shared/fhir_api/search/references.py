"""Reference search values (FHIR R4 search, "reference"): ``Patient/{id}``, ``{id}``, and this server's
own absolute URLs, which stand for the relative reference (a client may copy a ``fullUrl`` into a
search). Other servers' URLs are refused: no resource here can point at them.

Standard library only (plus this package's ids).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fhir_api.fhir.ids import FHIR_ID as ID_RE

if TYPE_CHECKING:
    from fhir_api.search.parameters import SearchParameter


def local_references(
    query: Mapping[str, Sequence[str]], parameters: Mapping[str, SearchParameter], base_url: str
) -> dict[str, list[str]]:
    """``query`` with each reference value written as an absolute URL of this server
    (``{base_url}/Patient/{id}``, as a ``fullUrl`` is) turned into the relative reference it stands for.
    Absolute URLs of other servers stay as they are, for ``parse_reference`` to refuse."""
    prefix = base_url.rstrip("/") + "/"
    local: dict[str, list[str]] = {}
    for key, given in query.items():
        values = [given] if isinstance(given, str) else list(given)
        name, _, modifier = key.partition(":")
        parameter = parameters.get(name)
        if parameter is not None and parameter.type == "reference" and "." not in modifier:
            values = [_own_base(prefix).sub(r"\1", value) if prefix in value else value for value in values]
        local[key] = values
    return local


@functools.lru_cache(maxsize=8)  # one or two bases per deployment
def _own_base(prefix: str) -> re.Pattern[str]:
    # At the start of a value or of an item of its OR list (after a comma that is not escaped).
    return re.compile(r"(^|(?<!\\),)" + re.escape(prefix))


def parse_reference(raw: str, parameter: SearchParameter, modifier: str) -> str:
    """A reference search value -> the target id. ``Type/{id}`` or ``{id}`` (or ``:Type`` + ``{id}``)."""
    targets = parameter.target or ("Patient",)
    if "/" in raw:
        parts = raw.split("/")
        if len(parts) != 2 or ":" in parts[0]:
            raise ValueError(f"expected {targets[0]}/{{id}} or {{id}}, got {raw[:64]!r}")
        resource_type, ident = parts
        if resource_type not in targets or (modifier and resource_type != modifier):
            raise ValueError(f"must reference {' or '.join(targets)}, not {resource_type}")
    else:
        ident = raw
    if not ID_RE.fullmatch(ident):
        raise ValueError(f"not a valid id: {ident[:64]!r}")
    return ident
