"""FHIR R4's subsets of a resource (search page 3.1.1.5.8 ``_summary``, 3.1.1.5.9 ``_elements``).

Which elements are in a resource's summary, and which are mandatory, comes from the FHIR models
(``models.elements``: FHIR's ``isSummary`` flags and minimum cardinalities), never from a list typed
here. Subsetting works on top-level elements: an element kept is kept whole. ``resourceType``, ``id``
and ``meta`` are always kept, and so are the mandatory elements (FHIR: servers SHOULD return them);
a primitive's ``_name`` sibling (its extensions) follows it. A subsetted resource carries the
``SUBSETTED`` tag in ``meta.tag``, so that nobody takes it for the whole record.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_api.fhir import models

SUBSETTED_TAG = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
ALWAYS_KEPT = frozenset({"resourceType", "id", "meta"})
SUMMARY_MODES = ("true", "text", "data")


@cache
def element_names(resource_type: str) -> frozenset[str]:
    """The names ``_elements`` may list for ``resource_type``: its top-level elements as JSON spells
    them, a choice's base name (``deceased`` for ``deceasedBoolean``) and ``resourceType`` (fhirpy's
    ``elements()`` adds it to every list)."""
    found = models.elements(models.resource_model(resource_type)).values()
    names = {element.name for element in found} | {element.choice for element in found if element.choice}
    return frozenset(names | ALWAYS_KEPT)


def subset(
    document: dict[str, Any], resource_type: str, summary: str | None, elements: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """``document`` reduced to the ``_summary`` mode (true, text, data) or the ``_elements`` named, and
    tagged ``SUBSETTED``; None when neither is asked (the resource is shown whole)."""
    if summary not in SUMMARY_MODES and not elements:
        return None
    declared = models.elements(models.resource_model(resource_type))

    def kept(name: str) -> bool:
        element = declared.get(name[1:] if name.startswith("_") else name)
        if name in ALWAYS_KEPT or (element is not None and element.required):
            return True
        if summary == "data":
            return name not in ("text", "_text")
        if summary == "text":
            return element is not None and element.name == "text"
        if summary == "true":
            return element is not None and element.summary
        return element is not None and (element.name in elements or element.choice in elements)

    result = {name: value for name, value in document.items() if kept(name)}
    meta = dict(result.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(
        tag.get("code") == "SUBSETTED" and tag.get("system") == SUBSETTED_TAG["system"] for tag in tags
    ):
        tags.append(dict(SUBSETTED_TAG))
    meta["tag"] = tags
    result["meta"] = meta
    return result
