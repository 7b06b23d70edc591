"""Token search values (FHIR R4 search, "token"): ``code``, ``system|code``, ``system|`` and ``|code``.

=============  ==================================================================
``code``       the code (or identifier value) in any system, or in none
``system|code``  that code in that system
``|code``      that code with no system at all
``system|``    any code in that system
=============  ==================================================================

Codes, systems and identifier values compare exactly (case-sensitive), as FHIR defines them. A ``|``
or ``,`` inside a value is escaped with a backslash (``\\|``, ``\\,``).

Usage::

    token = parse_token("http://terminology.hl7.org/CodeSystem/v3-ActCode|EMER")   # ValueError if bad
    token_matches(token, encounter["class"])            # Coding
    token_matches(token, concept)                        # CodeableConcept: any of its codings
    token_matches(token, identifier)                     # Identifier: system + value
    code_matches(token, "finished", ENCOUNTER_STATUS_SYSTEM)   # a plain code element

Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ESCAPE = "\\"


def split_escaped(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` where it is not escaped by a backslash; escapes stay in the parts."""
    if ESCAPE not in text:
        return text.split(separator)
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == ESCAPE:
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """Remove FHIR escapes (``\\,`` ``\\|`` ``\\$`` ``\\\\``); a lone final backslash: ValueError."""
    if ESCAPE not in text:
        return text
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            out.append(char)
            escaped = False
        elif char == ESCAPE:
            escaped = True
        else:
            out.append(char)
    if escaped:
        raise ValueError("a search value ends with a lone backslash")
    return "".join(out)


@dataclass(frozen=True)
class TokenValue:
    """A parsed token: ``system`` None = any system, "" = no system; ``code`` None = any code."""

    system: str | None
    code: str | None

    def matches(self, system: str | None, code: str | None) -> bool:
        """Whether a (system, code) pair of the resource satisfies this token."""
        if self.code is not None and code != self.code:
            return False
        if self.system is None:
            return True
        if self.system == "":
            return not system
        return system == self.system


def parse_token(raw: str) -> TokenValue:
    """Parse one token search value (no commas: split OR values first). ``ValueError`` when malformed."""
    parts = split_escaped(raw, "|")
    if len(parts) > 2:
        raise ValueError(f"a token has at most one '|' (system|code): {raw[:64]!r}")
    if len(parts) == 1:
        code = unescape(parts[0])
        if not code:
            raise ValueError("a token needs a code")
        return TokenValue(None, code)
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise ValueError("a token needs a system or a code, not just '|'")
    return TokenValue(system, code or None)


def code_matches(token: TokenValue, code: str | None, system: str | None = None) -> bool:
    """Match a plain ``code`` element (Encounter.status, Patient.gender); ``system`` is its code system."""
    if code is None:
        return False
    return token.matches(system, code)


def coding_matches(token: TokenValue, coding: Mapping[str, Any] | None) -> bool:
    """Match a Coding."""
    if not isinstance(coding, Mapping):
        return False
    return token.matches(coding.get("system"), coding.get("code"))


def concept_matches(token: TokenValue, concept: Mapping[str, Any] | None) -> bool:
    """Match a CodeableConcept: true when any of its codings matches."""
    if not isinstance(concept, Mapping):
        return False
    codings = concept.get("coding") or []
    return any(coding_matches(token, coding) for coding in codings if isinstance(coding, Mapping))


def identifier_matches(token: TokenValue, identifier: Mapping[str, Any] | None) -> bool:
    """Match an Identifier (its ``system`` and ``value``)."""
    if not isinstance(identifier, Mapping):
        return False
    return token.matches(identifier.get("system"), identifier.get("value"))


def token_matches(token: TokenValue, element: Any) -> bool:
    """Match a Coding, CodeableConcept or Identifier dict, or a list of them (any element matching)."""
    if isinstance(element, list):
        return any(token_matches(token, item) for item in element)
    if not isinstance(element, Mapping):
        return False
    if "coding" in element:
        return concept_matches(token, element)
    if "value" in element:
        return identifier_matches(token, element)
    return coding_matches(token, element)
