"""Search plans and the store's index table: what a resource's plan asks for is what its writes put in
the index the store reads, and every index the store maps a listing to is one template.yaml declares."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_api.resources.base import MATCHES_NOTHING, SearchPlan
from fhir_api.resources.encounter import EncounterDefinition
from fhir_api.resources.patient import PatientDefinition
from fhir_api.resources.search_parameters import (
    ENCOUNTER_PARAMETERS,
    ENCOUNTER_SORTS,
    PATIENT_PARAMETERS,
    PATIENT_SORTS,
)
from fhir_api.search.parameters import SearchQuery, parse_query
from fhir_api.settings import Settings
from fhir_api.store.indexes import INDEXES, IndexQuery, index_query
from fhir_api.store.types import EVERY

TABLES = {"Encounter": "EncountersTable", "Patient": "PatientsTable", "Subscription": "SubscriptionsTable"}
SHARDS = 8
ENCOUNTER = EncounterDefinition()
PATIENT = PatientDefinition()


def encounter_query(**params: str) -> SearchQuery:
    return parse_query({k: [v] for k, v in params.items()}, ENCOUNTER_PARAMETERS, True, ENCOUNTER_SORTS)


def patient_query(**params: str) -> SearchQuery:
    return parse_query({k: [v] for k, v in params.items()}, PATIENT_PARAMETERS, True, PATIENT_SORTS)


def read_of(plan: object) -> IndexQuery:
    """The index Query the store sends for ``plan``."""
    assert isinstance(plan, SearchPlan)
    return index_query(plan.listing, SHARDS)


def test_every_listing_is_served_by_an_index_the_template_declares(template: dict[str, Any]) -> None:
    for (resource_type, _), layout in INDEXES.items():
        table = template["Resources"][TABLES[resource_type]]["Properties"]
        declared = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
        index = declared[layout.index]
        keys = {key["KeyType"]: key["AttributeName"] for key in index["KeySchema"]}
        assert keys == {"HASH": layout.partition_attribute, "RANGE": layout.sort_attribute}
        projected = set(index["Projection"].get("NonKeyAttributes", []))
        wanted = {layout.owner_attribute, layout.end_attribute} - {None, "id"}
        assert wanted <= projected, layout.index


@pytest.mark.parametrize("resource_id", ["e-1", "0b7c6c1e-4a8e-4b52-9d7a-2f1f3f1f0a11", "x" * 64])
def test_an_encounter_is_written_where_its_searches_read(resource_id: str) -> None:
    # Given the index attributes an encounter is stored with
    resource = {
        "status": "finished",
        "subject": {"reference": "Patient/p-1"},
        "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00Z"},
    }
    stored = ENCOUNTER.index_attributes(resource, resource_id, Settings(index_shards=SHARDS))

    # When its subject, its status and no criterion at all are searched
    reads = [
        read_of(ENCOUNTER.plan(encounter_query(subject="Patient/p-1"))),
        read_of(ENCOUNTER.plan(encounter_query(status="finished"))),
        read_of(ENCOUNTER.plan(encounter_query(date="ge2024-03-01"))),
    ]

    # Then each search reads a partition holding the encounter, within its date bounds
    assert [read.index for read in reads] == ["subject-index", "status-index", "date-index"]
    for read in reads:
        assert stored[read.partition_attribute] in read.partitions
        assert read.low is None or read.low <= stored[read.sort_attribute]


def test_a_status_search_reads_every_shard_of_each_status() -> None:
    read = read_of(ENCOUNTER.plan(encounter_query(status="planned,arrived")))
    assert len(read.partitions) == 2 * SHARDS
    assert read.keys == ("planned",) * SHARDS + ("arrived",) * SHARDS


def test_every_encounter_is_listed_by_date_and_reversed_for_minus_date() -> None:
    plan = ENCOUNTER.plan(encounter_query(_sort="-date"))
    assert isinstance(plan, SearchPlan)
    assert plan.listing.by == EVERY and plan.listing.descending
    read = read_of(plan)
    assert not read.ascending and set(read.keys) == {EVERY}


@pytest.mark.parametrize(
    "query",
    [
        {"family": "mül"},
        {"given": "pet"},
        {"name": "muller-ch"},
        {"identifier": "urn:oid:1.2.36|MRN-12345"},
        {"identifier": "MRN-12345"},
        {"gender": "male"},
        {"birthdate": "1974"},
        {"_lastUpdated": "ge2020-01-01"},
    ],
)
def test_a_patient_is_written_where_its_searches_read(query: dict[str, str]) -> None:
    # Given the term items a patient is stored with
    resource = {
        "identifier": [{"system": "urn:oid:1.2.36", "value": "MRN-12345"}],
        "name": [{"family": "Müller-Chalmers", "given": ["Peter"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
    }
    terms = PATIENT.terms(resource, "p-1")

    # When the patient is searched for
    read = read_of(PATIENT.plan(patient_query(**query)))

    # Then one of its term items lies in a partition the search reads, within its bounds
    assert read.index == "term-index"

    def read_finds(term: Any) -> bool:
        if term.term not in read.partitions:
            return False
        position = read.partitions.index(term.term)
        low_ok = read.low is None or read.low <= term.value
        high_ok = read.high is None or term.value < read.high
        return (not read.prefixes or term.value.startswith(read.prefixes[position])) and low_ok and high_ok

    assert any(read_finds(term) for term in terms)


def test_contradictory_dates_read_nothing() -> None:
    assert ENCOUNTER.plan(encounter_query(date="ge2024-02-01")) is not MATCHES_NOTHING
    contradictory = parse_query({"date": ["2024-03", "2024-01"]}, ENCOUNTER_PARAMETERS, True, ENCOUNTER_SORTS)
    assert ENCOUNTER.plan(contradictory) is MATCHES_NOTHING
    births = parse_query({"birthdate": ["1990", "2000"]}, PATIENT_PARAMETERS, True, PATIENT_SORTS)
    assert PATIENT.plan(births) is MATCHES_NOTHING
