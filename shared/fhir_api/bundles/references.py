"""A transaction's local identities: ``urn:uuid:``/``urn:oid:`` fullUrls and the references to them.

FHIR R4 (http.html#trules): the server replaces every value that names an entry's fullUrl with the
resource's new identity, wherever it appears: ``Reference.reference``, elements of type uri or url,
and ``href``/``src`` in the narrative.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_api import errors
from fhir_api.fhir.issues import show

LOCAL_PREFIXES = ("urn:uuid:", "urn:oid:")
_UUID = re.compile(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_NARRATIVE_LINK = re.compile(r"""(\b(?:href|src)\s*=\s*)(["'])(urn:(?:uuid|oid):[^"']+)\2""")


def is_local(full_url: str | None) -> bool:
    """Whether ``full_url`` is a local identity a transaction resolves (urn:uuid or urn:oid)."""
    return bool(full_url) and str(full_url).startswith(LOCAL_PREFIXES)


def check_local(full_url: str, where: str) -> None:
    """A urn:uuid must be a UUID and a urn:oid an OID (FHIR's uuid and oid types)."""
    pattern = _UUID if full_url.startswith("urn:uuid:") else _OID
    if not pattern.fullmatch(full_url):
        raise errors.InvalidRequest(
            f"{where}.fullUrl {show(full_url)} is not a valid {full_url.split(':')[1]} URN.",
            expression=(f"{where}.fullUrl",),
        )


def rewrite(value: Any, identities: dict[str, str]) -> Any:
    """``value`` with every string naming a key of ``identities`` replaced by its value (``Patient/1``),
    and every narrative link to one too. Other values are kept as they are (decimals included)."""
    if not identities:
        return value
    if isinstance(value, dict):
        return {
            key: _rewrite_narrative(item, identities)
            if key == "div" and isinstance(item, str)
            else rewrite(item, identities)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [rewrite(item, identities) for item in value]
    if isinstance(value, str):
        return identities.get(value, value)
    return value


def _rewrite_narrative(div: str, identities: dict[str, str]) -> str:
    def replace(found: re.Match[str]) -> str:
        target = identities.get(found.group(3), found.group(3))
        return f"{found.group(1)}{found.group(2)}{target}{found.group(2)}"

    return _NARRATIVE_LINK.sub(replace, div)
