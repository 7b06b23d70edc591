"""The fhir package's boundaries: fhir.resources read in one module, fhir/ never importing resources/,
a read function's cold start loading neither the models, nor the validation walk, nor JSON Patch, and
a write validating on the element tables without importing the models."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "fhir_api"
MODEL_LIBRARIES = ("fhir.resources", "fhir_core", "pydantic")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
    return found


def _is_under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def test_only_the_models_module_imports_fhir_resources() -> None:
    # Given every module of the shared layer
    readers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(_is_under(module, MODEL_LIBRARIES) for module in _imports(path))
    }

    # Then one module reads fhir.resources, fhir_core and pydantic: an upgrade is checked there
    assert readers == {"fhir/models.py"}


def test_the_fhir_package_does_not_import_the_resource_types() -> None:
    # Given the modules of fhir/ (FHIR as data; resources/ builds on it, never the reverse)
    backwards = {
        path.name: sorted(module for module in _imports(path) if _is_under(module, ("fhir_api.resources",)))
        for path in (PACKAGE / "fhir").glob("*.py")
    }

    # Then none imports resources/
    assert {name: modules for name, modules in backwards.items() if modules} == {}


def _loaded_by(probe: str) -> list[str]:
    """The modules a fresh process has imported once it has run ``probe``."""
    result = subprocess.run(
        [sys.executable, "-c", probe + "\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def test_a_read_function_starts_without_the_models_or_the_validation_walk() -> None:
    # Given a fresh process that imports what a read function imports
    loaded = _loaded_by(
        "from fhir_api.api.handler import make_handler\n"
        "from fhir_api.resources import DEFINITIONS\n"
        "make_handler('encounter_read')\n"
    )

    # Then neither the models, nor the walk, nor the rules of a write were loaded
    assert [module for module in loaded if _is_under(module, MODEL_LIBRARIES)] == []
    for module in (
        "fhir_api.fhir.validation",
        "fhir_api.fhir.structure",
        "fhir_api.fhir.models",
        "fhir_api.resources.encounter_rules",
        "fhir_api.resources.patient_rules",
        "fhir_api.fhir.patching",  # JSON Patch: loaded by a PATCH only
    ):
        assert module not in loaded


def test_a_write_validates_without_importing_the_models() -> None:
    # Given a fresh process that validates an encounter with a contained resource, as a create does
    loaded = _loaded_by(
        "from fhir_api.fhir.validation import validate_resource\n"
        "validate_resource('Encounter', {'resourceType': 'Encounter', 'status': 'finished',\n"
        "    'class': {'system': 'http://terminology.hl7.org/CodeSystem/v3-ActCode', 'code': 'AMB'},\n"
        "    'subject': {'reference': 'Patient/p1'}, 'contained': [{'resourceType': 'Observation',\n"
        "    'id': 'o1', 'status': 'final', 'code': {'text': 'x'}}]})\n"
    )

    # Then the walk ran on the generated element tables: neither fhir.resources nor pydantic was imported
    assert "fhir_api.fhir.structure" in loaded
    assert [module for module in loaded if _is_under(module, MODEL_LIBRARIES)] == []
