"""The fhir.resources R4B models, as the structure walk needs them: the only module that reads them.

FHIR release R4 (4.0.1), through fhir.resources' R4B package (Encounter and Patient are the same in
R4 and R4B). Everything that depends on fhir.resources, fhir_core or pydantic internals is here, so an
upgrade of ``fhir.resources`` (pinned) is checked in one place. They are imported inside the functions:
a function that never validates does not load them, and the data types a body does not use are not
imported.

Interface:

- ``Model``: a model class, opaque outside this module.
- ``resource_model(resource_type)``: the model of a type this server serves (ValueError otherwise);
  ``contained_model(name)``: any R4 resource's, for ``contained``; ``element_model()``: ``Element``,
  for a primitive's ``_name`` sibling; ``resource_type_of(model)``.
- ``elements(model)``: the model's elements by JSON name, as ``Element`` (type, cardinality, choice).
- ``model_issues(model, resource_type, body)``: the model's own verdict on a body, as issues.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from types import MappingProxyType
from typing import Any, TypeAlias

from fhir_api.errors import Issue

Model: TypeAlias = Any  # a fhir.resources model class

_PACKAGE = "fhir.resources.R4B"
_MODEL_MODULES: Mapping[str, str] = MappingProxyType(
    {"Encounter": "encounter", "Patient": "patient", "Subscription": "subscription"}
)
_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")


@dataclass(frozen=True)
class Element:
    """One element of a FHIR type, as the JSON format spells it."""

    name: str
    many: bool
    fhir_type: str  # a primitive's name ("code", "dateTime"), else the complex type's name
    type_path: str | None  # "fhir.resources.R4B.reference.Reference" for a complex type, None for a primitive
    choice: str | None  # "deceased" for deceasedBoolean / deceasedDateTime
    required: bool  # minimum cardinality 1 (for a choice: one of its types is required)
    summary: bool = False  # FHIR's isSummary: part of the resource's summary (``_summary=true``)

    # Cached: the structure walk asks these of every element of every body it checks.
    @cached_property
    def primitive(self) -> bool:
        """True for a primitive (a JSON string, number or boolean with an optional ``_`` sibling)."""
        return self.type_path is None

    @property
    def model(self) -> Model:
        """The model class of a complex type, imported on first use: most are never needed."""
        return _import_model(self.type_path) if self.type_path is not None else None

    @cached_property
    def definition_tail(self) -> str | None:
        """A data type's own name (it is defined on its own); None for a backbone element."""
        if self.type_path is None:
            return None
        module, name = self.type_path.rsplit(".", 1)
        return name if module.rsplit(".", 1)[-1] == name.lower() else None


def resource_model(resource_type: str) -> Model:
    """The model of a resource type this server serves; ValueError for any other."""
    import importlib

    if resource_type not in _MODEL_MODULES:
        raise ValueError(f"no model for resource type {resource_type!r}")
    module = importlib.import_module(f"{_PACKAGE}.{_MODEL_MODULES[resource_type]}")
    return getattr(module, resource_type)


def resource_type_of(model: Model) -> str:
    """The ``resourceType`` a resource model stands for."""
    return str(model.get_resource_type())


@cache
def element_model() -> Model:
    """The model of a primitive's ``_element`` sibling (id and extensions, like any Element)."""
    from fhir.resources.R4B.element import Element as ElementModel

    return ElementModel


@lru_cache(maxsize=256)
def contained_model(name: str) -> Model | None:
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
def elements(model: Model) -> Mapping[str, Element]:
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

    found: dict[str, Element] = {}
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
        found[name] = Element(
            name=name,
            many=is_list_type(field),
            fhir_type=fhir_type,
            type_path=target,
            choice=choice if isinstance(choice, str) else None,
            required=required,
            summary=bool(extra.get("summary_element_property")),
        )
    return MappingProxyType(found)


@lru_cache(maxsize=512)
def _import_model(type_path: str) -> Model:
    import importlib

    module, name = type_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def model_issues(model: Model, resource_type: str, body: dict[str, Any]) -> list[Issue]:
    """What the model itself refuses in ``body``, each issue naming its element by FHIRPath: the
    reference the walk is tested against (writes do not run it, see ``validation.validate_resource``)."""
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
