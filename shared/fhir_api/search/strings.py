"""String search (FHIR R4 search, "string"): case- and accent-insensitive starts-with matching.

The same ``normalize_text`` must produce the stored search terms (the Patient ``term-index``
``termValue``) and the search value, so ``begins_with(termValue, normalize_text(value))`` finds them:
``normalize_text("Zoë ") == normalize_text("ZOE") == "zoe"``.

Standard library only.
"""

from __future__ import annotations

import unicodedata


def normalize_text(text: str) -> str:
    """Casefold, strip accents (NFKD without combining marks) and collapse whitespace."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    # casefold can yield characters that decompose further (and NFKD can change case).
    again = unicodedata.normalize("NFKD", stripped.casefold())
    plain = "".join(char for char in again if not unicodedata.combining(char))
    return " ".join(plain.split())


def exact(value: str, target: str) -> bool:
    """The ``:exact`` modifier: the whole string, case and accents included."""
    return value == target


NAME_PARTS: dict[str, tuple[str, ...]] = {
    "family": ("family",),
    "given": ("given",),
    "name": ("family", "given", "prefix", "suffix", "text"),
}


def name_terms(names: object, parameter: str) -> set[str]:
    """The normalized terms a Patient's ``name`` list offers to ``parameter`` (family, given or name).

    Each element's whole text and each of its words is a term, so ``name=berg`` finds
    "van der Berg" and ``given=ann`` finds "Mary Ann". A value matches a patient when some term
    starts with ``normalize_text(value)``; the store writes one search-term item per term.
    """
    parts = NAME_PARTS[parameter]
    terms: set[str] = set()
    if not isinstance(names, list):
        return terms
    for name in names:
        if not isinstance(name, dict):
            continue
        for part in parts:
            element = name.get(part)
            texts = element if isinstance(element, list) else [element]
            for text in texts:
                if not isinstance(text, str):
                    continue
                whole = normalize_text(text)
                if whole:
                    terms.add(whole)
                    terms.update(whole.split(" "))
    return terms
