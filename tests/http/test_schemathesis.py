"""Property-based hostile input from openapi.yaml (schemathesis) against the local API with a valid
token: for every operation, data that fits the description and data that breaks it. No answer is a 5xx,
every answer conforms to openapi.yaml, and every error is an OperationOutcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local import issuer
from local.stack import LocalStack

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Bounded so that the whole run (13 operations, two modes) stays well under two minutes.
MAX_EXAMPLES = 40
TIMEOUT_SECONDS = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

SCHEMA = schemathesis.openapi.from_path(str(OPENAPI_PATH))
OPERATIONS = [
    (path, method.upper())
    for path, item in yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))["paths"].items()
    for method in item
    if method in HTTP_METHODS
]


@pytest.fixture(scope="module")
def known(local_stack: LocalStack) -> dict[str, str]:
    """Ids of resources that exist (a patient and its encounter), so reads and updates reach real data."""
    headers = {"Authorization": f"Bearer {issuer.mint('admin')}", "Content-Type": "application/fhir+json"}
    patient = requests.post(
        f"{local_stack.base_url}/Patient",
        headers=headers,
        data=json.dumps({"resourceType": "Patient", "name": [{"family": "Fuzzed"}]}),
        timeout=TIMEOUT_SECONDS,
    )
    assert patient.status_code == 201, patient.text
    encounter = requests.post(
        f"{local_stack.base_url}/Encounter",
        headers=headers,
        data=json.dumps(
            {
                "resourceType": "Encounter",
                "status": "planned",
                "class": {"system": ACT_CODE, "code": "AMB"},
                "subject": {"reference": f"Patient/{patient.json()['id']}"},
            }
        ),
        timeout=TIMEOUT_SECONDS,
    )
    assert encounter.status_code == 201, encounter.text
    return {"Patient": patient.json()["id"], "Encounter": encounter.json()["id"]}


def check_outcome(response: Any, case: schemathesis.Case) -> None:
    """Every error answer is a FHIR OperationOutcome with at least one issue."""
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    assert body.get("resourceType") == "OperationOutcome", (
        f"{case.method} {case.formatted_path} answered {response.status_code} without an OperationOutcome: "
        f"{response.content[:300]!r}"
    )
    assert body.get("issue"), body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_operation_survives_generated_input(
    local_stack: LocalStack, known: dict[str, str], path: str, method: str, mode: GenerationMode
) -> None:
    # Given the operation as openapi.yaml describes it, an admin's token and resources that exist
    operation = SCHEMA[path][method]
    resource_type = path.split("/")[3] if path.count("/") >= 3 else None
    headers = {"Authorization": f"Bearer {issuer.mint('admin')}"}
    if local_stack.gateway is not None:
        local_stack.gateway.activate()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), aim_at_known=st.booleans())
    def run(case: schemathesis.Case, aim_at_known: bool) -> None:
        # The token is valid on every request, so that generated data reaches the functions.
        case.headers = {**(case.headers or {}), **headers}
        if aim_at_known and resource_type in known and case.path_parameters and "id" in case.path_parameters:
            case.path_parameters["id"] = known[resource_type]
            if "vid" in case.path_parameters:
                case.path_parameters["vid"] = "1"
        if aim_at_known and isinstance(case.body, dict) and isinstance(case.body.get("subject"), dict):
            case.body["subject"] = {"reference": f"Patient/{known['Patient']}"}

        # When the generated request is sent
        response = case.call(base_url=local_stack.root_url, headers=headers, timeout=TIMEOUT_SECONDS)

        # Then it is no 5xx, it conforms to openapi.yaml, and an error is an OperationOutcome
        case.validate_response(response, checks=CHECKS, headers=headers)
        check_outcome(response, case)

    run()
