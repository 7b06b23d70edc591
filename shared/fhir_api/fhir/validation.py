"""Validation of Encounter and Patient resources: FHIR R4 structure, then this server's rules.

FHIR release R4 (4.0.1), through fhir.resources' R4B models (Encounter and Patient are the same in R4
and R4B). fhir.resources is imported inside the functions, so a function that never validates (the
read functions) does not pay for it at cold start; the data types a body does not use are not imported.

The body is walked along the models' element tables (names, JSON aliases, types, cardinalities and
choice groups all come from fhir.resources), because the models alone are too lax for a server: they
coerce (``"true"`` -> True, ``"2"`` -> 2, ``"1.5"`` -> a decimal), accept keys that are not FHIR
(``fhir_comments``, ``resource_type``, ``status__ext``), let nulls, empty arrays and objects through and
check no code bindings. A body the walk finds sound is then validated by the model itself.

Public API
----------
``validate_resource(resource_type: str, document: object) -> dict``
    Check a parsed JSON body against the FHIR model of ``resource_type``; return it exactly as sent,
    minus ``id`` and ``meta`` (the server sets them; a client's are ignored). Raises InvalidResource.
``check_encounter_rules(new: dict, previous: dict | None) -> None``
    This server's Encounter rules; ``previous`` is the stored version on update, None on create.
``check_patient_rules(new: dict, previous: dict | None, *, today: date | None = None) -> None``
    This server's Patient rules; ``today`` pins the date birthDate is compared with (tests).
``patient_reference_id(reference: object) -> str | None``
    The id of a literal ``Patient/{id}`` reference, None for anything else.
``REQUIRED_ELEMENTS: Mapping[str, tuple[str, ...]]``
    Elements this server requires beyond FHIR's own cardinalities.

What is refused, and with which answer
--------------------------------------
400 InvalidResource (the body is not a valid FHIR R4 resource of the expected type), every issue
naming its element by FHIRPath (``Encounter.period.start``, ``Patient.identifier[0].system``):

- a body that is not a JSON object; ``resourceType`` missing or not the expected type (issue code
  ``structure``/``required``);
- unknown elements, misspelled ones included, Python names of fhir.resources (``class_fhir``) and
  ``resourceType`` where no resource is (``structure``);
- JSON types that do not match FHIR's JSON format: a boolean must be ``true``/``false`` (not
  ``"true"``), integers must be JSON integers (not ``"2"``, ``2.0`` or ``true``), decimals JSON numbers
  (not strings), strings JSON strings, arrays where the element repeats and nowhere else (``value``);
- empty strings, objects and arrays, and ``null`` (FHIR forbids empty values; a ``null`` is only a
  placeholder in a repeating primitive whose ``_element`` sibling carries an extension at that index);
- values that break a primitive's FHIR regex: ``code``/``id``/``uri`` with leading, trailing or (for
  ``code``, more than single inner) whitespace, ids longer than 64, bad base64, dates, dateTimes,
  instants and times that do not match FHIR's regexes or are not real calendar dates (``2024-02-30``),
  a dateTime with a time but no zone;
- a narrative ``div`` that breaks txt-1 or txt-2 or carries active content (``fhir_api.fhir.narrative``),
  named by its path (``Patient.text.div``, ``Encounter.contained[0].text.div``);
- codes outside a REQUIRED binding (``fhir_api.fhir.terminology``): statuses, gender, telecom system/use,
  identifier/name/address use, ... (``code-invalid``);
- more than one type of a choice element (``deceasedBoolean`` with ``deceasedDateTime``), an extension
  with both or neither of a value and nested extensions (ext-1), a contained resource that itself
  contains resources (dom-2), an unknown contained ``resourceType``, objects nested absurdly deep;
- a missing required element (``required``): FHIR's own (``Encounter.status``, ``Encounter.class``) and
  this server's (``Encounter.subject``, see ``REQUIRED_ELEMENTS``). A cardinality breach is a structural
  fault, so it is 400 even for the elements this server adds; ``check_encounter_rules`` raises the same
  400 when called on a resource that skipped ``validate_resource``.

422 BusinessRuleViolation (a well-formed resource this server will not keep), code ``business-rule``:

- Encounter.subject not a literal ``Patient/{id}`` reference with a valid id (contained ``#p``,
  absolute URLs, versioned references, other resource types, identifier-only references,
  ``Reference.type`` other than Patient); whether the patient exists is the store's check;
- a Period whose end lies wholly before its start (``Encounter.period`` and the periods inside an
  Encounter); the values are compared as the time ranges they denote, so ``start 2024-03-15T10:00Z`` with
  ``end 2024-03-15`` is accepted (the end day contains the start), a date without a zone is read as UTC;
- Encounter.class (and classHistory.class) with the v3-ActCode system and a code outside
  ActEncounterCode (the R4 binding is extensible, so this is this server's rule, not FHIR's);
- a status move the lifecycle (``fhir_api.resources.lifecycle``) does not allow, with the allowed moves named;
- Patient.birthDate after today (today in the earliest time zone, UTC+14, so a birth recorded
  "today" anywhere is accepted);
- a ContactPoint (Patient.telecom, Patient.contact.telecom) with a value but no system (FHIR's cpt-2).

Identifiers without a value or without a system, and telecom values of any form, are valid R4 and
accepted. The rules refusing valid R4 are listed, with their reasons, in each resource module's
``SAFETY_RULES`` (``fhir_api.resources``).

A contained resource of another type is checked for structure (its model) but not for bindings and
rules of its own type beyond those of the data types it uses.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

from fhir_api.errors import BusinessRuleViolation, InvalidResource, Issue
from fhir_api.fhir import fhirtime, narrative, terminology
from fhir_api.resources import lifecycle

_PACKAGE = "fhir.resources.R4B"
_MODEL_MODULES: Mapping[str, str] = MappingProxyType(
    {"Encounter": "encounter", "Patient": "patient", "Subscription": "subscription"}
)

# The server sets these; a client's are dropped before validation (ignored, not refused).
SERVER_SET_ELEMENTS = ("id", "meta")

REQUIRED_ELEMENTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"Encounter": ("status", "class", "subject"), "Patient": (), "Subscription": ()}
)

# FHIR R4 primitive regexes (datatypes.html), anchored with fullmatch.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_CODE = re.compile(r"[^\s]+( [^\s]+)*")
_STRING = re.compile(r"[ \r\n\t\S]+")
_URI = re.compile(r"\S+")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BASE64 = re.compile(r"([0-9A-Za-z+/]{4})*([0-9A-Za-z+/]{2}==|[0-9A-Za-z+/]{3}=)?")
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?")
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME_PATTERNS: Mapping[str, tuple[re.Pattern[str], str]] = MappingProxyType(
    {
        "date": (re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?"), "YYYY, YYYY-MM or YYYY-MM-DD"),
        "dateTime": (
            re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_CLOCK}{_ZONE})?)?)?"),
            "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)",
        ),
        "instant": (
            re.compile(rf"{_YEAR}-{_MONTH}-{_DAY}T{_CLOCK}{_ZONE}"),
            "YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)",
        ),
    }
)
_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_PATIENT_REFERENCE = re.compile(r"Patient/(?P<id>[A-Za-z0-9\-.]{1,64})")

_INT32 = (-(2**31), 2**31 - 1)
_INTEGER_MINIMUM = {"integer": _INT32[0], "unsignedInt": 0, "positiveInt": 1}
_PERIOD_ELEMENTS = ("statusHistory", "classHistory", "participant", "location")
_UTC_PLUS_14 = dt.timedelta(hours=14)
_SHOWN = 60
_MAX_DEPTH = 64


# ---------------------------------------------------------------------------------------------
# Public functions


def validate_resource(resource_type: str, document: object) -> dict[str, Any]:
    """Validate ``document`` as a FHIR R4 ``resource_type``; return it as sent, minus ``id`` and ``meta``.

    Raises InvalidResource (400) naming every faulty element.
    """
    if resource_type not in _MODEL_MODULES:
        raise ValueError(f"no model for resource type {resource_type!r}")
    if not isinstance(document, dict):
        raise _invalid(
            resource_type,
            [
                Issue(
                    "structure",
                    f"the body must be a JSON object (a {resource_type} resource)",
                    (resource_type,),
                )
            ],
        )
    sent_type = document.get("resourceType")
    if sent_type != resource_type:
        where = (f"{resource_type}.resourceType",)
        if sent_type is None:
            issue = Issue("required", f"resourceType is missing; it must be {resource_type!r}", where)
        else:
            issue = Issue(
                "structure", f"resourceType must be {resource_type!r}, not {_show(sent_type)}", where
            )
        raise _invalid(resource_type, [issue])

    body = {key: value for key, value in document.items() if key not in SERVER_SET_ELEMENTS}
    model = _resource_model(resource_type)
    walker = _Walker()
    walker.resource(model, body, resource_type, contained=False)
    issues = list(walker.issues)
    issues.extend(_unless_known(issues, _missing_required(resource_type, body)))
    if not issues:
        # The walk covers what the model checks, in FHIR's words; the model stays as a second opinion
        # for a body the walk found sound (its messages would only repeat the walk's otherwise).
        issues = _model_issues(model, resource_type, body)
    if issues:
        raise _invalid(resource_type, issues)
    return body


def check_encounter_rules(new: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Apply this server's Encounter rules to ``new`` (``previous`` is the stored version on update).

    Raises InvalidResource (400) for a missing required element, BusinessRuleViolation (422) otherwise.
    """
    missing = _missing_required("Encounter", new)
    if missing:
        raise _invalid("Encounter", missing)
    issues = _subject_issues(new["subject"])
    issues += _period_issues(new.get("period"), "Encounter.period")
    for name in _PERIOD_ELEMENTS:
        for index, item in _items(new.get(name)):
            issues += _period_issues(item.get("period"), f"Encounter.{name}[{index}].period")
    issues += _class_issues(new.get("class"), "Encounter.class")
    for index, item in _items(new.get("classHistory")):
        issues += _class_issues(item.get("class"), f"Encounter.classHistory[{index}].class")
    if previous is not None:
        issues += _status_move_issues(previous.get("status"), new.get("status"))
    if issues:
        raise _business(issues)


def check_patient_rules(
    new: dict[str, Any], previous: dict[str, Any] | None, *, today: dt.date | None = None
) -> None:
    """Apply this server's Patient rules to ``new``; no rule depends on ``previous`` (kept for symmetry).

    ``today`` defaults to the current date in the earliest time zone (UTC+14).
    Raises BusinessRuleViolation (422); a malformed birthDate is InvalidResource (400).
    """
    issues: list[Issue] = []
    birth_date = new.get("birthDate")
    if birth_date is not None:
        issues += _birth_date_issues(birth_date, today or (dt.datetime.now(dt.UTC) + _UTC_PLUS_14).date())
    for index, contact_point in _items(new.get("telecom")):
        issues += _contact_point_issues(contact_point, f"Patient.telecom[{index}]")
    for index, contact in _items(new.get("contact")):
        for inner, contact_point in _items(contact.get("telecom")):
            issues += _contact_point_issues(contact_point, f"Patient.contact[{index}].telecom[{inner}]")
    if issues:
        raise _business(issues)


def patient_reference_id(reference: object) -> str | None:
    """Return the id of a literal ``Patient/{id}`` reference string, None for any other value."""
    if not isinstance(reference, str):
        return None
    match = _PATIENT_REFERENCE.fullmatch(reference)
    return match.group("id") if match else None


# ---------------------------------------------------------------------------------------------
# Errors


def _invalid(resource_type: str, issues: list[Issue]) -> InvalidResource:
    return InvalidResource(
        diagnostics=_summary(f"The {resource_type} is not valid FHIR R4", issues),
        expression=issues[0].expression,
        issues=issues,
    )


def _business(issues: list[Issue]) -> BusinessRuleViolation:
    return BusinessRuleViolation(
        diagnostics=_summary("The resource breaks a rule of this server", issues),
        expression=issues[0].expression,
        issues=issues,
    )


def _summary(headline: str, issues: list[Issue]) -> str:
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{headline}: {issues[0].diagnostics}{more}"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _unless_known(known: list[Issue], found: Iterable[Issue]) -> list[Issue]:
    seen = {expression for issue in known for expression in issue.expression}
    return [issue for issue in found if not seen.intersection(issue.expression)]


# ---------------------------------------------------------------------------------------------
# The fhir.resources models


@dataclass(frozen=True)
class _Element:
    """One element of a FHIR type, as the JSON format spells it."""

    name: str
    many: bool
    fhir_type: str  # a primitive's name ("code", "dateTime"), else the complex type's name
    type_path: str | None  # "fhir.resources.R4B.reference.Reference" for a complex type, None for a primitive
    choice: str | None  # "deceased" for deceasedBoolean / deceasedDateTime
    required: bool  # minimum cardinality 1 (for a choice: one of its types is required)

    @property
    def primitive(self) -> bool:
        return self.type_path is None

    @property
    def model(self) -> Any:
        """The model class of a complex type, imported on first use: most are never needed."""
        return _import_model(self.type_path) if self.type_path is not None else None

    @property
    def definition_tail(self) -> str | None:
        """A data type's own name (it is defined on its own); None for a backbone element."""
        if self.type_path is None:
            return None
        module, name = self.type_path.rsplit(".", 1)
        return name if module.rsplit(".", 1)[-1] == name.lower() else None


def load_model(resource_type: str) -> None:
    """Import the FHIR model of ``resource_type`` now rather than at the first validation."""
    _resource_model(resource_type)


def _resource_model(resource_type: str) -> Any:
    import importlib

    return getattr(importlib.import_module(f"{_PACKAGE}.{_MODEL_MODULES[resource_type]}"), resource_type)


@cache
def _element_model() -> Any:
    """The model of a primitive's ``_element`` sibling (id and extensions, like any Element)."""
    from fhir.resources.R4B.element import Element

    return Element


@lru_cache(maxsize=256)
def _any_resource_model(name: str) -> Any:
    """The model of a contained resource by its resourceType, None when there is no such resource."""
    if not _RESOURCE_NAME.fullmatch(name) or name in ("Resource", "DomainResource"):
        return None
    import fhir.resources.R4B as r4b

    try:
        model = r4b.get_fhir_model_class(name)
    except ValueError:
        return None
    return model if model.has_resource_base() else None


@cache
def _elements(model: Any) -> Mapping[str, _Element]:
    """The elements of a model by JSON name (aliases, so ``class`` and not ``class_fhir``)."""
    from fhir_core.types import FhirBase
    from fhir_core.utils import get_fhir_type_name, is_list_type

    def complex_type(annotation: Any) -> Any:
        if isinstance(annotation, type) and issubclass(annotation, FhirBase):
            return str(annotation._model_klass)  # the class path; importing it waits until needed
        for argument in getattr(annotation, "__args__", ()):
            found = complex_type(argument)
            if found is not None:
                return found
        return None

    elements: dict[str, _Element] = {}
    for field_name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue  # fhir_comments and the ``__ext`` fields are not FHIR elements
        name = field.alias or field_name
        target = complex_type(field.annotation)
        fhir_type = target.rsplit(".", 1)[-1] if target is not None else get_fhir_type_name(field)
        choice = extra.get("one_of_many")
        required = field.is_required() or bool(
            extra.get("element_required") or extra.get("one_of_many_required")
        )
        elements[name] = _Element(
            name=name,
            many=is_list_type(field),
            fhir_type=fhir_type,
            type_path=target,
            choice=choice if isinstance(choice, str) else None,
            required=required,
        )
    return MappingProxyType(elements)


@lru_cache(maxsize=512)
def _import_model(type_path: str) -> Any:
    import importlib

    module, name = type_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _model_issues(model: Any, resource_type: str, body: dict[str, Any]) -> list[Issue]:
    from pydantic import ValidationError

    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [_model_issue(resource_type, error) for error in exc.errors()]
    return []


def _model_issue(resource_type: str, error: Mapping[str, Any]) -> Issue:
    path = resource_type
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "class_fhir":
            path += ".class"
        elif part == "resource_type":
            path += ".resourceType"
        elif isinstance(part, str) and _ELEMENT_NAME.fullmatch(part.lstrip("_")):
            # FHIRPath names a primitive's extensions (``_status``) under the primitive itself.
            path += "." + part.lstrip("_").removesuffix("__ext")
        # other parts name pydantic's validators (``function-wrap[...]``), not elements
    kind = error["type"]
    if kind == "extra_forbidden":
        return Issue("structure", f"{path}: unknown element", (path,))
    if kind in ("missing", "model_field_validation.missing"):
        return Issue("required", f"{path}: required element is missing", (path,))
    return Issue("value", f"{path}: {error['msg']}", (path,))


def _missing_required(resource_type: str, body: Mapping[str, Any]) -> list[Issue]:
    issues = []
    for name in REQUIRED_ELEMENTS[resource_type]:
        if body.get(name) is None:
            path = f"{resource_type}.{name}"
            issues.append(Issue("required", f"{path} is required", (path,)))
    return issues


# ---------------------------------------------------------------------------------------------
# The walk: FHIR's JSON format, element by element, against the model's element table


class _Walker:
    """Collects the issues of one document; fhir.resources' lax coercions make this walk necessary."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.depth = 0

    def add(self, code: str, path: str, message: str) -> None:
        self.issues.append(Issue(code, f"{path}: {message}", (path,)))

    def resource(self, model: Any, data: dict[str, Any], path: str, *, contained: bool) -> None:
        resource_type = str(model.get_resource_type())
        if contained and "contained" in data:
            self.add(
                "invariant", f"{path}.contained", "a contained resource cannot contain resources (dom-2)"
            )
        self.walk_object(model, data, path, resource_type, resource=True)

    def walk_object(
        self, model: Any, data: dict[str, Any], path: str, definition: str, *, resource: bool
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
        self, model: Any, data: dict[str, Any], path: str, definition: str, *, resource: bool
    ) -> None:
        elements = _elements(model)
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
        self, elements: Mapping[str, _Element], data: dict[str, Any], path: str, choices: dict[str, list[str]]
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

    def element(self, element: _Element, value: object, sibling: object, path: str, definition: str) -> None:
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

    def item(self, element: _Element, value: object, path: str, definition: str) -> None:
        name = element.name
        if element.primitive:
            problem = _primitive_problem(element.fhir_type, value)
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
            self.add("structure", path, f"must be a JSON object (a {element.fhir_type}), not {_show(value)}")
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
        model = _any_resource_model(name) if isinstance(name, str) else None
        if model is None:
            self.add("structure", f"{path}.resourceType", f"{_show(name)} is not a FHIR R4 resource type")
            return
        self.resource(model, value, path, contained=True)

    def extension_sibling(self, element: _Element, value: object, primitive: object, path: str) -> None:
        """The ``_name`` sibling of a primitive: its id and extensions, one per value when it repeats."""
        model = _element_model()
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
                self.add("code-invalid", path, f"{_show(value)} is not a MIME type (BCP 13)")
            return
        value_set = terminology.binding_for(definition)
        if value_set is not None and value not in value_set:
            codes = ", ".join(sorted(value_set.codes))
            self.add(
                "code-invalid",
                path,
                f"{_show(value)} is not a code of {value_set.name} ({value_set.url}); one of: {codes}",
            )


def _unknown(key: str, elements: Mapping[str, _Element]) -> str:
    import difflib

    names = [name for name, element in elements.items()]
    names += ["_" + name for name, element in elements.items() if element.primitive]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown element {key!r}{hint}"


def _primitive_problem(fhir_type: str, value: object) -> str | None:
    """What is wrong with a primitive's JSON value, None when nothing is."""
    if fhir_type == "boolean":
        return (
            None if isinstance(value, bool) else f"must be true or false (a JSON boolean), not {_show(value)}"
        )
    if fhir_type in _INTEGER_MINIMUM:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be a JSON integer ({fhir_type}), not {_show(value)}"
        if not _INTEGER_MINIMUM[fhir_type] <= value <= _INT32[1]:
            return f"{value} is out of range for {fhir_type}"
        return None
    if fhir_type == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return f"must be a JSON number (decimal), not {_show(value)}"
        if isinstance(value, (float, Decimal)) and not math.isfinite(value):
            return "must be a finite number"
        return None
    if not isinstance(value, str):
        return f"must be a JSON string ({fhir_type}), not {_show(value)}"
    if value == "":
        return "an empty string is not a FHIR value; leave the element out"
    return _string_problem(fhir_type, value)


def _time_problem(fhir_type: str, value: str) -> str | None:
    pattern, form = _TIME_PATTERNS[fhir_type]
    if not pattern.fullmatch(value):
        return f"{_show(value)} is not a FHIR {fhir_type} ({form})"
    try:
        fhirtime.parse_range(value)  # the calendar: no February 30
    except ValueError:
        return f"{_show(value)} is not a real {fhir_type} (no such day, or out of range)"
    return None


def _string_problem(fhir_type: str, value: str) -> str | None:
    if fhir_type in _TIME_PATTERNS:
        return _time_problem(fhir_type, value)
    pattern = {
        "code": _CODE,
        "id": _ID,
        "uri": _URI,
        "url": _URI,
        "canonical": _URI,
        "oid": _OID,
        "uuid": _UUID,
        "time": _TIME,
    }.get(fhir_type, _STRING)
    if fhir_type == "base64Binary":
        if _BASE64.fullmatch(re.sub(r"\s+", "", value)):
            return None
        return "is not base64"
    if pattern.fullmatch(value):
        return None
    if fhir_type in ("code", "id", "uri", "url", "canonical") and value != value.strip():
        return f"{_show(value)} has leading or trailing whitespace, which a FHIR {fhir_type} cannot have"
    return f"{_show(value)} is not a valid FHIR {fhir_type}"


# ---------------------------------------------------------------------------------------------
# Encounter rules


def _items(value: object) -> Iterable[tuple[int, dict[str, Any]]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


_SUBJECT_EXPECTED = "the subject must be a Patient of this server, as 'Patient/{id}'"


def _subject_issues(subject: object) -> list[Issue]:
    path = "Encounter.subject"
    if not isinstance(subject, dict):
        return [Issue("business-rule", f"{path}: {_SUBJECT_EXPECTED}", (path,))]
    issues = []
    kind = subject.get("type")
    if kind is not None and kind != "Patient":
        where = f"{path}.type"
        issues.append(Issue("business-rule", f"{where}: {_SUBJECT_EXPECTED}, not a {kind}", (where,)))
    reference = subject.get("reference")
    problem = _subject_reference_problem(reference)
    if problem is not None:
        where = f"{path}.reference" if reference is not None else path
        issues.append(Issue("business-rule", f"{where}: {problem}", (where,)))
    return issues


def _subject_reference_problem(reference: object) -> str | None:
    expected = _SUBJECT_EXPECTED
    if reference is None:
        return f"{expected}; a reference without 'reference' (identifier or display only) is not accepted"
    if not isinstance(reference, str):
        return expected
    if patient_reference_id(reference) is not None:
        return None
    if reference.startswith("#"):
        return f"{expected}; a contained patient ({_show(reference)}) is not accepted"
    if _ABSOLUTE_URI.fullmatch(reference):
        return f"{expected}; an absolute reference ({_show(reference)}) is not accepted"
    kind, _, rest = reference.partition("/")
    if kind != "Patient":
        return f"{expected}, not a {kind} reference ({_show(reference)})"
    if "/_history/" in reference:
        return f"{expected}; a versioned reference ({_show(reference)}) is not accepted"
    return f"{expected}; {_show(rest)} is not a valid id (1-64 of A-Z a-z 0-9 - .)"


def _period_issues(period: object, path: str) -> list[Issue]:
    if not isinstance(period, dict):
        return []
    start, end = period.get("start"), period.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return []
    try:
        start_low = fhirtime.parse_range(start)[0]
        end_high = fhirtime.parse_range(end)[1]
    except ValueError:
        return []  # malformed values are validate_resource's to report
    # The end is before the start only when all the time it may denote is: "2024-03-15" ends after
    # "2024-03-15T10:00:00Z" starts. Canonical instants compare as strings.
    if end_high <= start_low:
        where = f"{path}.end"
        return [Issue("business-rule", f"{where} ({end}) is before {path}.start ({start})", (where,))]
    return []


def _class_issues(coding: object, path: str) -> list[Issue]:
    if not isinstance(coding, dict) or coding.get("system") != terminology.V3_ACT_CODE:
        return []
    code = coding.get("code")
    codes = terminology.ACT_ENCOUNTER_CODES
    if code is None or code in codes:
        return []
    where = f"{path}.code"
    message = (
        f"{where}: {_show(code)} is not an ActEncounterCode ({codes.url}); "
        f"with system {terminology.V3_ACT_CODE} use one of: {', '.join(sorted(codes.codes))}"
    )
    return [Issue("business-rule", message, (where,))]


def _status_move_issues(old: object, new: object) -> list[Issue]:
    if not isinstance(old, str) or not isinstance(new, str) or lifecycle.can_move(old, new):
        return []
    moves = lifecycle.allowed_moves(old)
    allowed = ", ".join(status for status in lifecycle.STATUS_ORDER if status in moves)
    message = f"status cannot move from {old} to {new}; allowed: {allowed or f'none ({old} is final)'}"
    return [Issue("business-rule", message, ("Encounter.status",))]


# ---------------------------------------------------------------------------------------------
# Patient rules


def _birth_date_issues(value: object, today: dt.date) -> list[Issue]:
    path = "Patient.birthDate"
    problem = _primitive_problem("date", value)
    if problem is not None:
        raise _invalid("Patient", [Issue("value", f"{path}: {problem}", (path,))])
    earliest_day = fhirtime.parse_range(str(value))[0][:10]
    if earliest_day > today.isoformat():
        return [Issue("business-rule", f"{path}: {value} is in the future", (path,))]
    return []


def _contact_point_issues(contact_point: Mapping[str, Any], path: str) -> list[Issue]:
    # FHIR's cpt-2. Formats are not checked: a number that looks odd is still the one the patient gave.
    if contact_point.get("system") is None and contact_point.get("value") is not None:
        where = f"{path}.system"
        return [Issue("business-rule", f"{where}: a telecom with a value needs a system (cpt-2)", (where,))]
    return []
