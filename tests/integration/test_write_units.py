"""What one create costs in DynamoDB write units by AWS's published rules, priced from the transaction the
function really sends to DynamoDB Local (``bench.capacity``, as ``make bench`` prices it)."""

from __future__ import annotations

from typing import Any

import pytest
from handler_calls import encounter_for, invoke

from bench.calls import CallRecorder
from bench.capacity import by_rules
from bench.data import sized_encounter
from fhir_api.settings import get_settings
from fhir_api.store.dynamo import dynamodb_client
from local import tables

# make bench's write_units_per_create: a create of a 1 KB encounter
BENCH_BODY_BYTES = 1024


def priced_create(ddb_tables: Any, template: dict[str, Any], document: dict[str, Any]) -> list[Any]:
    """The lines of the create's TransactWriteItems, priced by AWS's rules."""
    recorder = CallRecorder(dynamodb_client(get_settings()))
    with recorder.recording() as calls:
        answer = invoke("encounter_create", body=document)
    assert answer.status == 201, answer.body
    (transaction,) = [call for call in calls if call.operation == "TransactWriteItems"]
    properties = {
        ddb_tables.names[logical_id]: table for logical_id, table in tables.table_resources(template).items()
    }
    checked = {}
    for action in transaction.params["TransactItems"]:
        if "ConditionCheck" in action:
            check = action["ConditionCheck"]
            checked[check["TableName"]] = ddb_tables.client.get_item(
                TableName=check["TableName"], Key=check["Key"]
            )["Item"]
    return by_rules(transaction, properties, checked)


@pytest.fixture
def patient_id(ddb_tables: Any) -> str:
    answer = invoke("patient_create", body={"resourceType": "Patient", "name": [{"family": "Priced"}]})
    assert answer.status == 201, answer.body
    return str(answer.body["id"])


def test_a_1kb_encounter_is_created_for_nine_write_units(
    ddb_tables: Any, template: dict[str, Any], patient_id: str
) -> None:
    # When a 1 KB encounter is created (the bench's create)
    lines = priced_create(ddb_tables, template, sized_encounter(patient_id, BENCH_BODY_BYTES))

    # Then the transaction writes the current item (its three index entries) and checks the patient,
    # and writes no version copy: 4 + 3 + 2 units
    versions = ddb_tables.names["VersionsTable"]
    assert not [line for line in lines if versions in line.what]
    assert [line.units for line in lines] == [4, 1, 1, 1, 2]
    assert sum(line.units for line in lines) <= 9


def test_the_api_pages_example_is_created_for_seven_write_units(
    ddb_tables: Any, template: dict[str, Any], patient_id: str
) -> None:
    # When the API page's example encounter (under 1 KB) is created
    lines = priced_create(ddb_tables, template, encounter_for(patient_id))

    # Then the item, its three index entries and the check cost 2 + 3 + 2 units
    assert sum(line.units for line in lines) == 7


def test_a_visit_number_adds_its_term_item_and_index_entry(
    ddb_tables: Any, template: dict[str, Any], patient_id: str
) -> None:
    # When the API page's example is created with one visit number
    document = encounter_for(patient_id, identifier=[{"system": "urn:visit", "value": "V-1"}])
    lines = priced_create(ddb_tables, template, document)

    # Then the identifier costs its term item (a transactional put, 2) and its term-index entry (1):
    # 7 + 3 units; an encounter without identifiers stays at 7
    terms = [line.units for line in lines[5:]]
    assert terms == [2, 1]
    assert sum(line.units for line in lines) == 10
