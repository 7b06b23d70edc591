"""The element tables the structure walk reads are what the pinned fhir.resources models give
(tests/unit/test_fhir_layers.py: a write reads them without importing the models)."""

from __future__ import annotations

import json

from fhir_api.fhir import models


def test_the_tables_are_those_of_the_pinned_models() -> None:
    # Given the tables as shipped, and as the installed fhir.resources gives them now
    shipped = json.loads(models.TABLES_PATH.read_text(encoding="utf-8"))
    generated = models.element_tables_from_models()

    # Then they are the same (after an upgrade of fhir.resources: make element-tables)
    assert shipped == generated
    # And they hold every R4 resource a body may contain, with the types they reach
    assert {"Encounter", "Patient", "Subscription", "Observation", "Bundle"} <= set(shipped["resources"])
    assert {"encounter.EncounterStatusHistory", "reference.Reference", "element.Element"} <= set(
        shipped["types"]
    )


def test_an_element_reads_as_the_models_declare_it() -> None:
    encounter = models.elements(models.resource_model("Encounter"))

    # The JSON name (not fhir.resources' class_fhir), cardinality, type, summary flag
    assert encounter["class"] == models.Element("class", False, "Coding", "coding.Coding", None, True, True)
    assert encounter["statusHistory"].many and encounter["statusHistory"].definition_tail is None
    assert models.elements(encounter["subject"].model)["reference"].fhir_type == "string"
    assert models.resource_type_of(models.contained_model("Observation") or "") == "Observation"
    assert models.contained_model("DomainResource") is None and models.contained_model("Nothing") is None
