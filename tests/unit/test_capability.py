"""fhir_api.api.capability: the CapabilityStatement, generated from the route, role and parameter tables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from fhir_api.api.capability import VALIDATE_DEFINITION, capability_statement
from fhir_api.resources import DEFINITIONS, encounter, patient
from fhir_api.resources.base import SafetyRule
from fhir_api.resources.search_parameters import ENCOUNTER_PARAMETERS, PATIENT_PARAMETERS
from fhir_api.routes import ROLE_INTERACTIONS, ROUTES
from fhir_api.search.parameters import SearchParameter

SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
BASE = "https://fhir.example.org/api/fhir"


@dataclass(frozen=True)
class Definition:
    """A stand-in with the attributes the statement reads from a resource definition."""

    resource_type: str
    search_parameters: Mapping[str, SearchParameter]
    conditional_create: bool
    conditional_update: bool
    safety_rules: tuple[SafetyRule, ...] = ()
    chained_parameters: Mapping[str, Mapping[str, SearchParameter]] = field(default_factory=dict)
    includes: Mapping[str, str] = field(default_factory=dict)
    revincludes: Mapping[str, tuple[str, str]] = field(default_factory=dict)


RESOURCES = [
    Definition("Encounter", ENCOUNTER_PARAMETERS, True, True, encounter.SAFETY_RULES),
    Definition("Patient", PATIENT_PARAMETERS, True, True, patient.SAFETY_RULES),
]
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_statement_is_a_valid_r4_capability_statement() -> None:
    # When
    statement = capability_statement(BASE + "/", RESOURCES)
    # Then it validates against the FHIR model and says the essentials
    model = CapabilityStatement.model_validate(statement)
    assert model.fhirVersion == "4.0.1"
    assert statement["status"] == "active" and statement["kind"] == "instance"
    assert statement["format"] == ["json", "application/fhir+json"]
    assert statement["implementation"]["url"] == BASE
    assert statement["software"]["name"] == "encounter-api"


def test_interactions_come_from_the_route_table() -> None:
    statement = capability_statement(BASE, RESOURCES)
    for resource in statement["rest"][0]["resource"]:
        served = {route.interaction for route in ROUTES if route.resource_type == resource["type"]}
        # Operations are listed as operations, not as interactions (FHIR's TypeRestfulInteraction)
        assert {entry["code"] for entry in resource["interaction"]} == served - {"operation"}
        assert [operation["name"] for operation in resource["operation"]] == ["validate"]
        assert resource["operation"][0]["definition"] == VALIDATE_DEFINITION
        assert resource["conditionalRead"] == "full-support"
        assert resource["versioning"] == "versioned-update"
        assert resource["readHistory"] is True
        assert resource["updateCreate"] is False
        # Conditional update by identifier; conditional delete is not offered
        assert resource["conditionalUpdate"] is True
        assert resource["conditionalDelete"] == "not-supported"
        assert "delete" in {entry["code"] for entry in resource["interaction"]}
        assert "searchInclude" not in resource


def test_search_parameters_come_from_the_tables() -> None:
    statement = capability_statement(BASE, RESOURCES)
    by_type = {resource["type"]: resource for resource in statement["rest"][0]["resource"]}
    for definition in RESOURCES:
        params = by_type[definition.resource_type]["searchParam"]
        assert [param["name"] for param in params] == list(definition.search_parameters)
        for param in params:
            table = definition.search_parameters[param["name"]]
            assert (param["type"], param["documentation"]) == (table.type, table.documentation)
            assert param["definition"] == table.definition
    assert by_type["Patient"]["conditionalCreate"] is True
    assert by_type["Encounter"]["conditionalCreate"] is True


def test_security_describes_every_role_from_the_role_table() -> None:
    security = capability_statement(BASE, RESOURCES, cors=True)["rest"][0]["security"]
    assert security["cors"] is True
    assert security["service"][0]["coding"][0]["code"] == "OAuth"
    for role, interactions in ROLE_INTERACTIONS.items():
        line = next(line for line in security["description"].splitlines() if line.startswith(f"- `{role}`"))
        assert {code.strip() for code in line.split(":", 1)[1].split(",")} == set(interactions)


def test_date_can_be_fixed() -> None:
    assert capability_statement(BASE, RESOURCES, date="2024-01-01")["date"] == "2024-01-01"


def test_each_resource_documents_its_clinical_safety_rules() -> None:
    # When the statement is built from the served resource definitions
    statement = capability_statement(BASE, list(DEFINITIONS.values()))

    # Then each resource's documentation lists every rule of its table, one line each, and nothing else
    for resource in statement["rest"][0]["resource"]:
        rules = DEFINITIONS[resource["type"]].safety_rules
        lines = [line for line in resource["documentation"].splitlines() if line.startswith("- ")]
        assert lines == [f"- {rule.describe()}" for rule in rules]
        assert rules and all(rule.element.startswith(resource["type"]) for rule in rules)
        assert all(rule.status in (400, 409, 422) and rule.reason for rule in rules)


def test_includes_revincludes_and_chains_are_advertised() -> None:
    # When the statement is built from the served resource definitions
    statement = capability_statement(BASE, list(DEFINITIONS.values()))
    resources = {resource["type"]: resource for resource in statement["rest"][0]["resource"]}
    encounter_entry, patient_entry = resources["Encounter"], resources["Patient"]

    # Then Encounter includes its patient and Patient revincludes its encounters, nothing more
    assert encounter_entry["searchInclude"][:2] == ["Encounter:subject", "Encounter:patient"]
    assert "searchRevInclude" not in encounter_entry
    assert patient_entry["searchRevInclude"][:2] == ["Encounter:subject", "Encounter:patient"]
    assert "searchInclude" not in patient_entry
    # And the chains are documented on the resource and on the reference parameters
    assert "`patient.identifier`" in encounter_entry["documentation"]
    assert "`subject.birthdate`" in encounter_entry["documentation"]
    subject = next(param for param in encounter_entry["searchParam"] if param["name"] == "subject")
    assert "subject.{identifier, name, family, given, birthdate}" in subject["documentation"]
    # And the rest documentation explains POST _search, _summary and _elements
    documentation = statement["rest"][0]["documentation"]
    assert "POST [type]/_search" in documentation and "SUBSETTED" in documentation
    # And the statement is still valid R4
    CapabilityStatement.model_validate(statement)


def test_the_readme_lists_exactly_the_clinical_safety_rules_of_the_code() -> None:
    # Given the README's section on clinical-safety rules
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Clinical-safety rules\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert section is not None, "README.md has no '## Clinical-safety rules' section"
    listed = [line for line in section.group(1).splitlines() if line.startswith("- ")]

    # Then it lists each rule of every resource table, in order, word for word
    expected = [
        f"- {rule.describe()}" for definition in DEFINITIONS.values() for rule in definition.safety_rules
    ]
    assert listed == expected


def test_the_statement_says_search_handling_is_strict_by_default() -> None:
    documentation = capability_statement(BASE, RESOURCES)["rest"][0]["documentation"]
    assert "strict by default" in documentation
    assert "`Prefer: handling=lenient`" in documentation
    assert "at most 20 comma-separated values" in documentation


def test_security_advertises_smart_and_its_token_endpoint_when_configured() -> None:
    # Given a deployment naming its OAuth token endpoint, and one naming none
    with_endpoint = capability_statement(
        BASE, RESOURCES, token_endpoint="https://auth.example.org/oauth2/token"
    )
    without = capability_statement(BASE, RESOURCES)

    # Then both say SMART-on-FHIR; only the first carries SMART's oauth-uris extension, and it stays valid R4
    for statement in (with_endpoint, without):
        codings = statement["rest"][0]["security"]["service"][0]["coding"]
        assert {"system": SERVICE_SYSTEM, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"} in codings
    (extension,) = with_endpoint["rest"][0]["security"]["extension"]
    assert extension == {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [{"url": "token", "valueUri": "https://auth.example.org/oauth2/token"}],
    }
    assert "extension" not in without["rest"][0]["security"]
    CapabilityStatement.model_validate(with_endpoint)


def test_the_served_statement_lists_subscription_for_admins_with_its_rest_hook_rules() -> None:
    # Given the statement of the resources this server serves
    from fhir_api.resources import DEFINITIONS

    statement = capability_statement(BASE, list(DEFINITIONS.values()))
    CapabilityStatement.model_validate(statement)
    subscription = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription")
    # Then Subscription is created, read, updated and searched, with no history
    assert [entry["code"] for entry in subscription["interaction"]] == [
        "read",
        "update",
        "create",
        "search-type",
    ]
    assert subscription["readHistory"] is False
    assert {parameter["name"] for parameter in subscription["searchParam"]} == {
        "status",
        "type",
        "_id",
        "_lastUpdated",
    }
    # And its documentation says what it delivers on, and the security section who may use it
    assert "rest-hook" in subscription["documentation"]
    assert "- `Subscription`: `admin` only" in statement["rest"][0]["security"]["description"]


def test_transaction_and_batch_are_system_interactions_of_the_bundle_route() -> None:
    # Given the statement, and the route POST [base] in the route table
    rest = capability_statement(BASE, RESOURCES)["rest"][0]
    assert any(route.interaction == "transaction" and route.resource_type is None for route in ROUTES)

    # Then rest.interaction lists transaction and batch, each saying how its entries are processed
    by_code = {interaction["code"]: interaction["documentation"] for interaction in rest["interaction"]}
    assert set(by_code) == {"transaction", "batch"}
    assert "one DynamoDB transaction" in by_code["transaction"]
    assert "response.outcome" in by_code["batch"]
    # And every role may send a Bundle (its entries are checked one by one)
    assert all({"transaction", "batch"} <= interactions for interactions in ROLE_INTERACTIONS.values())
