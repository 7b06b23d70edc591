"""The element tables of FHIR's types, as the structure walk needs them; the only module that reads
the fhir.resources models.

FHIR release R4 (4.0.1), through fhir.resources' R4B package (Encounter and Patient are the same in
R4 and R4B). The walk reads ``element_tables.json`` beside this module: every element of every type a
resource can hold (name, cardinality, type, choice, minimum cardinality, ``isSummary``), generated from
the pinned fhir.resources by ``make element-tables`` (``write_element_tables``). A function that writes
loads that file (a few ms) instead of importing the pydantic models (about 250 ms of a cold start,
decision 0031); tests/unit/test_element_tables.py holds the file equal to what the models give, so an
upgrade of ``fhir.resources`` is checked here.

Interface:

- ``Model``: a type's key in the tables (``encounter.Encounter``), opaque outside this module.
- ``resource_model(resource_type)``: the model of a type this server serves (ValueError otherwise);
  ``contained_model(name)``: any R4 resource's, for ``contained``; ``element_model()``: ``Element``,
  for a primitive's ``_name`` sibling; ``resource_type_of(model)``.
- ``elements(model)``: the model's elements by JSON name, as ``Element`` (type, cardinality, choice).
- ``model_issues(model, resource_type, body)``: the pydantic model's own verdict on a body, as issues
  (the reference the walk is tested against; it imports fhir.resources).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

from fhir_api.errors import Issue

Model: TypeAlias = str  # a type's key in the element tables: its fhir.resources module and class

_PACKAGE = "fhir.resources.R4B"
TABLES_PATH = Path(__file__).with_name("element_tables.json")
_SERVED = ("Encounter", "Patient", "Subscription")
_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")


@dataclass(frozen=True)
class Element:
    """One element of a FHIR type, as the JSON format spells it."""

    name: str
    many: bool
    fhir_type: str  # a primitive's name ("code", "dateTime"), else the complex type's name
    type_path: str | None  # the complex type's key ("reference.Reference"), None for a primitive
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
        """The model of a complex type (its key); a primitive has none."""
        if self.type_path is None:
            raise ValueError(f"{self.name} is a primitive: it has no model")
        return self.type_path

    @cached_property
    def definition_tail(self) -> str | None:
        """A data type's own name (it is defined on its own); None for a backbone element."""
        if self.type_path is None:
            return None
        module, name = self.type_path.rsplit(".", 1)
        return name if module.rsplit(".", 1)[-1] == name.lower() else None


@cache
def _tables() -> Mapping[str, Any]:
    tables: Mapping[str, Any] = json.loads(TABLES_PATH.read_text(encoding="utf-8"))
    return tables


def resource_model(resource_type: str) -> Model:
    """The model of a resource type this server serves; ValueError for any other."""
    if resource_type not in _SERVED:
        raise ValueError(f"no model for resource type {resource_type!r}")
    return str(_tables()["resources"][resource_type])


def resource_type_of(model: Model) -> str:
    """The ``resourceType`` a resource model stands for (its class name)."""
    return model.rsplit(".", 1)[-1]


def element_model() -> Model:
    """The model of a primitive's ``_element`` sibling (id and extensions, like any Element)."""
    return "element.Element"


def contained_model(name: str) -> Model | None:
    """The model of a contained resource by its resourceType, None when there is no such resource."""
    if not _RESOURCE_NAME.fullmatch(name):
        return None
    found = _tables()["resources"].get(name)
    return str(found) if found is not None else None


@cache
def elements(model: Model) -> Mapping[str, Element]:
    """The elements of a model by JSON name (``class``, not fhir.resources' ``class_fhir``)."""
    rows = _tables()["types"][model]
    return MappingProxyType(
        {
            name: Element(name, bool(many), fhir_type, type_path, choice, bool(required), bool(summary))
            for name, many, fhir_type, type_path, choice, required, summary in rows
        }
    )


# -- from the fhir.resources models: the tables' source, and the walk's reference in tests ----------


def element_tables_from_models() -> dict[str, Any]:
    """The element tables as the pinned fhir.resources models give them: every resource (for
    ``contained``), ``Element``, and every type they reach."""
    import fhir.resources.R4B.fhirtypes as fhirtypes

    resources = {}
    for attribute in dir(fhirtypes):
        name = attribute.removesuffix("Type")
        klass = _resource_class(name) if attribute.endswith("Type") else None
        if klass is not None:
            resources[name] = _key(klass)
    types: dict[str, list[list[Any]]] = {}
    pending = [element_model(), *resources.values()]
    while pending:
        key = pending.pop()
        if key in types:
            continue
        rows = _class_elements(_import_model(f"{_PACKAGE}.{key}"))
        types[key] = rows
        # Contained resources are looked up by their resourceType, not through Resource's elements.
        pending.extend(row[3] for row in rows if row[3] is not None and row[2] != "Resource")
    return {"resources": dict(sorted(resources.items())), "types": dict(sorted(types.items()))}


def write_element_tables(path: Path = TABLES_PATH) -> None:
    """Write ``element_tables_from_models()`` to ``path`` (``make element-tables``), one type per line
    so that a regeneration reads as a diff of the types it changed."""
    tables = element_tables_from_models()

    def compact(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    lines = [f"{compact(key)}:{compact(rows)}" for key, rows in tables["types"].items()]
    types = ",\n".join(lines)
    path.write_text(f'{{"resources":{compact(tables["resources"])},\n"types":{{\n{types}\n}}}}\n', "utf-8")


def _resource_class(name: str) -> Any:
    if not _RESOURCE_NAME.fullmatch(name) or name in ("Resource", "DomainResource"):
        return None
    import fhir.resources.R4B as r4b

    try:
        klass = r4b.get_fhir_model_class(name)
    except ValueError:
        return None
    return klass if klass.has_resource_base() else None


def _key(klass: Any) -> str:
    return f"{klass.__module__}.{klass.__name__}".removeprefix(_PACKAGE + ".")


def _class_elements(klass: Any) -> list[list[Any]]:
    """A model class's elements as table rows: name, many, type, the complex type's key (or None),
    choice, required, summary (the flags as 0 and 1)."""
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

    rows: list[list[Any]] = []
    for field_name, field in klass.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue  # fhir_comments and the ``__ext`` fields are not FHIR elements
        target = complex_type(field.annotation)
        fhir_type = target.rsplit(".", 1)[-1] if target is not None else get_fhir_type_name(field)
        choice = extra.get("one_of_many")
        required = field.is_required() or bool(
            extra.get("element_required") or extra.get("one_of_many_required")
        )
        rows.append(
            [
                field.alias or field_name,
                int(is_list_type(field)),
                fhir_type,
                target.removeprefix(_PACKAGE + ".") if target is not None else None,
                choice if isinstance(choice, str) else None,
                int(required),
                int(bool(extra.get("summary_element_property"))),
            ]
        )
    return rows


@lru_cache(maxsize=512)
def _import_model(type_path: str) -> Any:
    import importlib

    module, name = type_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def model_issues(model: Model, resource_type: str, body: dict[str, Any]) -> list[Issue]:
    """What the pydantic model itself refuses in ``body``, each issue naming its element by FHIRPath:
    the reference the walk is tested against (writes do not run it, see ``validation.validate_resource``)."""
    from pydantic import ValidationError

    try:
        _import_model(f"{_PACKAGE}.{model}").model_validate(body)
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
