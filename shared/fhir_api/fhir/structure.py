"""FHIR R4's JSON format, element by element: the walk behind ``validate_resource``'s 400s.

The body is walked along FHIR's element tables (``fhir_api.fhir.models``, generated from the fhir.resources
models), because the models alone are too lax for a server: they coerce (``"true"`` -> True, ``"2"`` -> 2),
accept keys that are not FHIR (``fhir_comments``, ``resource_type``, ``status__ext``), let nulls, empty
arrays and objects through and check no code bindings. What is refused: docs/validation.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fhir_api.errors import Issue
from fhir_api.fhir import fhirtime, models, narrative, terminology
from fhir_api.fhir.ids import FHIR_ID
from fhir_api.fhir.issues import show
from fhir_api.fhir.models import Element, Model

# FHIR R4 primitive regexes (datatypes.html), anchored with fullmatch; dates are fhirtime's.
_CODE = re.compile(r"[^\s]+( [^\s]+)*")
_STRING = re.compile(r"[ \r\n\t\S]+")
_URI = re.compile(r"\S+")
# A JSON escape such as \ud800 may name half of a surrogate pair alone: no Unicode character.
_SURROGATE = re.compile("[\ud800-\udfff]")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BASE64 = re.compile(r"([0-9A-Za-z+/]{4})*([0-9A-Za-z+/]{2}==|[0-9A-Za-z+/]{3}=)?")
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?")

_INT32 = (-(2**31), 2**31 - 1)
_INTEGER_MINIMUM = {"integer": _INT32[0], "unsignedInt": 0, "positiveInt": 1}
_MAX_DEPTH = 64


def structure_issues(model: Model, body: dict[str, Any], resource_type: str) -> list[Issue]:
    """Every fault of ``body`` against FHIR R4's JSON format for ``model``, named by FHIRPath."""
    walker = _Walker()
    walker.resource(model, body, resource_type, contained=False)
    return walker.issues


class _Walker:
    """Collects the issues of one document; fhir.resources' lax coercions make this walk necessary."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.depth = 0

    def add(self, code: str, path: str, message: str) -> None:
        self.issues.append(Issue(code, f"{path}: {message}", (path,)))

    def resource(self, model: Model, data: dict[str, Any], path: str, *, contained: bool) -> None:
        resource_type = models.resource_type_of(model)
        if contained and "contained" in data:
            self.add(
                "invariant", f"{path}.contained", "a contained resource cannot contain resources (dom-2)"
            )
        self.walk_object(model, data, path, resource_type, resource=True)

    def walk_object(
        self, model: Model, data: dict[str, Any], path: str, definition: str, *, resource: bool
    ) -> None:
        if not data:
            self.add("value", path, "an element cannot be empty")
            return
        if self.depth >= _MAX_DEPTH:
            # No resource nests this deep; stopping here keeps the walk far from the recursion limit.
            self.add("structure", path, f"nested more than {_MAX_DEPTH} objects deep")
            return
        self.depth += 1
        try:
            self.walk_elements(model, data, path, definition, resource=resource)
        finally:
            self.depth -= 1

    def walk_elements(
        self, model: Model, data: dict[str, Any], path: str, definition: str, *, resource: bool
    ) -> None:
        elements = models.elements(model)
        choices: dict[str, list[str]] = {}
        for key, value in data.items():
            if resource and key == "resourceType":
                continue
            element = elements.get(key[1:] if key.startswith("_") else key)
            if element is None or (key.startswith("_") and not element.primitive):
                self.add("structure", f"{path}.{key}", _unknown(key, elements))
                continue
            if key.startswith("_"):
                self.extension_sibling(element, value, data.get(element.name), f"{path}.{element.name}")
                continue
            if element.choice is not None:
                choices.setdefault(element.choice, []).append(key)
            self.element(element, value, data.get("_" + key), f"{path}.{key}", definition)
        for choice, names in choices.items():
            if len(names) > 1:
                self.add("structure", f"{path}.{choice}", f"only one of {', '.join(names)} may be present")
        if definition == "Extension" and ("value" in choices) == ("extension" in data):
            self.add(
                "invariant", path, "an extension has a value[x] or nested extensions, one of the two (ext-1)"
            )
        self.required(elements, data, path, choices)

    def required(
        self, elements: Mapping[str, Element], data: dict[str, Any], path: str, choices: dict[str, list[str]]
    ) -> None:
        """FHIR's minimum cardinalities; a primitive may stand in with only its ``_`` extension sibling."""
        for name, element in elements.items():
            if not element.required:
                continue
            if element.choice is not None:
                if element.choice not in choices:
                    choices[element.choice] = []  # reported once, for the first of its types
                    self.add("required", f"{path}.{element.choice}", "required element is missing")
            elif name not in data and (not element.primitive or "_" + name not in data):
                self.add("required", f"{path}.{name}", "required element is missing")

    def element(self, element: Element, value: object, sibling: object, path: str, definition: str) -> None:
        if value is None:
            self.add("value", path, "null is not a FHIR value; leave the element out")
            return
        if not element.many:
            if isinstance(value, list):
                self.add("structure", path, "this element does not repeat: an array is not allowed")
            else:
                self.item(element, value, path, definition)
            return
        if not isinstance(value, list):
            self.add("structure", path, "this element repeats: it must be a JSON array")
            return
        if not value:
            self.add("value", path, "an array cannot be empty")
            return
        for index, item in enumerate(value):
            if item is None:
                # A null only holds the place of a value whose extension sits in the ``_`` sibling.
                held = isinstance(sibling, list) and index < len(sibling) and sibling[index] is not None
                if not element.primitive or not held:
                    self.add("value", f"{path}[{index}]", "null is not a FHIR value")
                continue
            self.item(element, item, f"{path}[{index}]", definition)

    def item(self, element: Element, value: object, path: str, definition: str) -> None:
        name = element.name
        if element.primitive:
            problem = primitive_problem(element.fhir_type, value)
            if problem is not None:
                self.add("value", path, problem)
            elif element.fhir_type == "xhtml" and isinstance(value, str):
                refused = narrative.xhtml_problem(value)
                if refused is not None:
                    self.add(refused[0], path, refused[1])
            else:
                self.binding(f"{definition}.{name}", value, path)
            return
        if not isinstance(value, dict):
            self.add("structure", path, f"must be a JSON object (a {element.fhir_type}), not {show(value)}")
            return
        if element.fhir_type == "Resource":
            self.contained(value, path)
            return
        self.walk_object(
            element.model, value, path, element.definition_tail or f"{definition}.{name}", resource=False
        )

    def contained(self, value: dict[str, Any], path: str) -> None:
        name = value.get("resourceType")
        if name is None:
            self.add("required", f"{path}.resourceType", "a contained resource needs its resourceType")
            return
        model = models.contained_model(name) if isinstance(name, str) else None
        if model is None:
            self.add("structure", f"{path}.resourceType", f"{show(name)} is not a FHIR R4 resource type")
            return
        self.resource(model, value, path, contained=True)

    def extension_sibling(self, element: Element, value: object, primitive: object, path: str) -> None:
        """The ``_name`` sibling of a primitive: its id and extensions, one per value when it repeats."""
        model = models.element_model()
        if not element.many:
            if not isinstance(value, dict):
                self.add("structure", path, "the _ sibling of a primitive must be a JSON object")
            else:
                self.walk_object(model, value, path, "Element", resource=False)
            return
        if not isinstance(value, list) or not value:
            self.add(
                "structure", path, "the _ sibling of a repeating primitive must be a non-empty JSON array"
            )
            return
        if isinstance(primitive, list) and len(primitive) != len(value):
            self.add("structure", path, "the _ sibling must have one entry (or null) per value")
        entry: object
        for index, entry in enumerate(value):
            if entry is None:
                # With the values present, a null in both at one index is reported with the values.
                if not isinstance(primitive, list):
                    self.add("value", f"{path}[{index}]", "an extension cannot be null without its value")
            elif not isinstance(entry, dict):
                self.add("structure", f"{path}[{index}]", "the _ sibling's entries must be JSON objects")
            else:
                self.walk_object(model, entry, f"{path}[{index}]", "Element", resource=False)

    def binding(self, definition: str, value: object, path: str) -> None:
        if definition == "Attachment.contentType":
            if isinstance(value, str) and not terminology.is_mime_type(value):
                self.add("code-invalid", path, f"{show(value)} is not a MIME type (BCP 13)")
            return
        value_set = terminology.binding_for(definition)
        if value_set is not None and value not in value_set:
            codes = ", ".join(sorted(value_set.codes))
            self.add(
                "code-invalid",
                path,
                f"{show(value)} is not a code of {value_set.name} ({value_set.url}); one of: {codes}",
            )


def _unknown(key: str, elements: Mapping[str, Element]) -> str:
    import difflib

    names = [name for name, element in elements.items()]
    names += ["_" + name for name, element in elements.items() if element.primitive]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown element {key!r}{hint}"


def primitive_problem(fhir_type: str, value: object) -> str | None:
    """What is wrong with a primitive's JSON value, None when nothing is."""
    if fhir_type == "boolean":
        return (
            None if isinstance(value, bool) else f"must be true or false (a JSON boolean), not {show(value)}"
        )
    if fhir_type in _INTEGER_MINIMUM:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be a JSON integer ({fhir_type}), not {show(value)}"
        if not _INTEGER_MINIMUM[fhir_type] <= value <= _INT32[1]:
            return f"{value} is out of range for {fhir_type}"
        return None
    if fhir_type == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return f"must be a JSON number (decimal), not {show(value)}"
        if isinstance(value, (float, Decimal)) and not math.isfinite(value):
            return "must be a finite number"
        return None
    if not isinstance(value, str):
        return f"must be a JSON string ({fhir_type}), not {show(value)}"
    if value == "":
        return "an empty string is not a FHIR value; leave the element out"
    return _string_problem(fhir_type, value)


def _time_problem(fhir_type: str, value: str) -> str | None:
    if not fhirtime.has_fhir_form(fhir_type, value):
        return f"{show(value)} is not a FHIR {fhir_type} ({fhirtime.FHIR_FORMS[fhir_type]})"
    try:
        fhirtime.parse_range(value)  # the ranges and the calendar: no month 13, no February 30
    except ValueError:
        return f"{show(value)} is not a real {fhir_type} (no such day, or out of range)"
    return None


# The pattern of each string type with one of its own (the others: any string of FHIR's characters).
_PATTERNS = {
    "code": _CODE,
    "id": FHIR_ID,
    "uri": _URI,
    "url": _URI,
    "canonical": _URI,
    "oid": _OID,
    "uuid": _UUID,
    "time": _TIME,
}


def _string_problem(fhir_type: str, value: str) -> str | None:
    if _SURROGATE.search(value):
        return f"{show(value)} holds an unpaired UTF-16 surrogate, which is not a Unicode character"
    if fhir_type in fhirtime.FHIR_FORMS:
        return _time_problem(fhir_type, value)
    pattern = _PATTERNS.get(fhir_type, _STRING)
    if fhir_type == "base64Binary":
        if _BASE64.fullmatch(re.sub(r"\s+", "", value)):
            return None
        return "is not base64"
    if pattern.fullmatch(value):
        return None
    if fhir_type in ("code", "id", "uri", "url", "canonical") and value != value.strip():
        return f"{show(value)} has leading or trailing whitespace, which a FHIR {fhir_type} cannot have"
    return f"{show(value)} is not a valid FHIR {fhir_type}"
