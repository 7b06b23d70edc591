"""Encounter search through the handler, on moto and DynamoDB Local."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from handler_calls import (
    call,
    create_encounter,
    create_patient,
    follow_all,
    next_link,
    search,
)

from fhir_api.settings import reset_settings

pytestmark = pytest.mark.usefixtures("backend")

AMB = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
EMER = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"}


@pytest.fixture
def clinic() -> dict[str, Any]:
    """Two patients and their encounters at known times."""
    alice, bob = create_patient("Alice"), create_patient("Bob")
    made = {
        "a_march": create_encounter(
            alice, period={"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T09:30:00Z"}
        ),
        "a_open": create_encounter(alice, status="in-progress", period={"start": "2024-01-10T08:00:00Z"}),
        "a_2023": create_encounter(
            alice, period={"start": "2023-06-01T10:00:00Z", "end": "2023-06-01T11:00:00Z"}, **{"class": EMER}
        ),
        "b_march": create_encounter(
            bob, period={"start": "2024-03-15T14:00:00Z", "end": "2024-03-16T10:00:00Z"}
        ),
        "b_planned": create_encounter(bob, status="planned", period=None, type=None),
    }
    return {"alice": alice, "bob": bob, **{name: encounter["id"] for name, encounter in made.items()}}


def test_subject_accepts_patient_reference_or_id_and_patient(clinic: dict[str, Any]) -> None:
    expected = {clinic["a_march"], clinic["a_open"], clinic["a_2023"]}
    assert set(follow_all("Encounter", subject=f"Patient/{clinic['alice']}")) == expected
    assert set(follow_all("Encounter", subject=clinic["alice"])) == expected
    assert set(follow_all("Encounter", patient=clinic["alice"])) == expected


def test_status_tokens_respect_their_code_system(clinic: dict[str, Any]) -> None:
    finished = {clinic[name] for name in ("a_march", "a_2023", "b_march")}
    assert set(follow_all("Encounter", status="http://hl7.org/fhir/encounter-status|finished")) == finished
    assert follow_all("Encounter", status="http://example.org/other|finished") == []
    assert follow_all("Encounter", status="http://example.org/other|") == []
    assert len(follow_all("Encounter", status="http://hl7.org/fhir/encounter-status|")) == 5


def test_status_comma_means_or(clinic: dict[str, Any]) -> None:
    assert set(follow_all("Encounter", status="planned,in-progress")) == {
        clinic["a_open"],
        clinic["b_planned"],
    }
    assert set(follow_all("Encounter", status="finished", subject=clinic["bob"])) == {clinic["b_march"]}


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        (["2024-03-15"], {"a_march"}),  # eq: the period lies within the day (b_march ends the next day)
        (["2024-03"], {"a_march", "b_march"}),
        # ge is gt or eq: b_march starts the day before and ends inside the day, so it is neither
        (["ge2024-03-16"], {"a_open"}),  # the open period matches every later date
        (["gt2030"], {"a_open"}),
        (["lt2024"], {"a_2023"}),
        (["le2024-01-10"], {"a_2023"}),  # a_open starts inside the day but never ends: neither lt nor eq
        (["le2024-01-11"], {"a_2023", "a_open"}),
        (["sa2024-03-15T12:00:00Z"], {"b_march"}),
        (["eb2024-01-01"], {"a_2023"}),
        (["ne2024-03-15"], {"a_open", "a_2023", "b_march"}),
        (["ap2024-03-15"], {"a_march", "b_march", "a_open"}),
        # "what touched the 15th": the day's own, the one spanning midnight and the one still open
        (["ge2024-03-15", "lt2024-03-16"], {"a_march", "b_march", "a_open"}),
        (["ge2023-01-01", "le2023-12-31"], {"a_2023"}),
    ],
)
def test_date_prefixes_and_precisions_follow_the_fhir_range_rules(
    clinic: dict[str, Any], date: list[str], expected: set[str]
) -> None:
    found = set(follow_all("Encounter", date=date))
    assert found == {clinic[name] for name in expected}
    # The same through the subject index
    for patient in ("alice", "bob"):
        mine = {clinic[name] for name in expected if name.startswith(patient[0])}
        assert set(follow_all("Encounter", subject=clinic[patient], date=date)) == mine


def test_contradictory_dates_match_nothing(clinic: dict[str, Any]) -> None:
    # Ends before 2020 and starts after 2030: no period can do both
    answer = search("Encounter", date=["eb2020", "sa2030"])
    assert answer.status == 200, answer.text
    assert (answer.body["total"], answer.body.get("entry")) == (0, None)
    assert search("Encounter", date=["eb2020", "sa2030"], _summary="count").body["total"] == 0


def test_class_and_type_tokens(clinic: dict[str, Any]) -> None:
    snomed = "http://snomed.info/sct"
    assert set(follow_all("Encounter", **{"class": "EMER"})) == {clinic["a_2023"]}
    assert set(follow_all("Encounter", **{"class": f"{EMER['system']}|EMER"})) == {clinic["a_2023"]}
    with_type = {clinic[name] for name in ("a_march", "a_open", "a_2023", "b_march")}
    assert set(follow_all("Encounter", type=f"{snomed}|185349003")) == with_type
    assert set(follow_all("Encounter", type="185349003")) == with_type
    assert set(follow_all("Encounter", type=f"{snomed}|")) == with_type
    assert follow_all("Encounter", type="http://other|185349003") == []


def test_id_and_last_updated(clinic: dict[str, Any]) -> None:
    assert follow_all("Encounter", _id=clinic["a_open"]) == [clinic["a_open"]]
    assert len(follow_all("Encounter", _lastUpdated="ge2020-01-01")) == 5
    assert follow_all("Encounter", _lastUpdated="lt2020-01-01") == []


def test_paging_returns_every_match_once_with_signed_next_links(clinic: dict[str, Any]) -> None:
    # Given 5 encounters, read 2 at a time over the sharded date index
    first = search("Encounter", _count="2")
    assert first.status == 200
    links = {link["relation"]: link["url"] for link in first.body["link"]}
    assert links["self"].endswith("/api/fhir/Encounter?_count=2")
    assert "_page=" in links["next"]
    assert "total" not in first.body  # counting would read past the page

    # Then following next links gives each encounter exactly once, in date order
    found = follow_all("Encounter", _count="2")
    assert sorted(found) == sorted(
        clinic[name] for name in ("a_march", "a_open", "a_2023", "b_march", "b_planned")
    )
    assert found[0] == clinic["b_planned"]  # no period: it sorts first
    assert found[1] == clinic["a_2023"]


def test_sort_orders(clinic: dict[str, Any]) -> None:
    ascending = follow_all("Encounter", subject=clinic["alice"], _sort="date")
    descending = follow_all("Encounter", subject=clinic["alice"], _sort="-date")
    updated = follow_all("Encounter", subject=clinic["alice"], _sort="-_lastUpdated", _count="1")
    assert ascending == [clinic["a_2023"], clinic["a_open"], clinic["a_march"]]
    assert descending == list(reversed(ascending))
    assert updated == [clinic["a_2023"], clinic["a_open"], clinic["a_march"]]


def test_summary_count_and_total(clinic: dict[str, Any]) -> None:
    counted = search("Encounter", status="finished", _summary="count")
    assert counted.body["total"] == 3
    assert "entry" not in counted.body
    assert search("Encounter", _count="0").body["total"] == 5
    assert search("Encounter", _total="accurate", _count="1").body["total"] == 5
    assert search("Encounter", subject=clinic["bob"]).body["total"] == 2


def test_unknown_parameters_are_refused_unless_lenient(clinic: dict[str, Any]) -> None:
    # By default (and with Prefer: handling=strict) an unknown parameter is a 400 naming it
    for headers in ({}, {"Prefer": "handling=strict"}):
        strict = call(
            "encounter_search",
            "GET",
            "/api/fhir/Encounter",
            query={"subject": [clinic["bob"]], "colour": ["blue"]},
            headers=headers,
        )
        assert strict.status == 400, strict.text
        assert strict.body["resourceType"] == "OperationOutcome"
        assert strict.body["issue"][0]["expression"] == ["colour"]
    # With Prefer: handling=lenient it is left out of the search and of the self link, with a warning
    lenient = call(
        "encounter_search",
        "GET",
        "/api/fhir/Encounter",
        query={"subject": [clinic["bob"]], "colour": ["blue"]},
        headers={"Prefer": "handling=lenient"},
    )
    assert lenient.status == 200, lenient.text
    assert "colour" not in lenient.body["link"][0]["url"]
    matches = [entry for entry in lenient.body["entry"] if entry["search"]["mode"] == "match"]
    assert {entry["resource"]["id"] for entry in matches} == {clinic["b_march"], clinic["b_planned"]}
    assert lenient.body["total"] == 2  # the outcome entry is not a match
    outcome = lenient.body["entry"][-1]
    assert outcome["search"] == {"mode": "outcome"}
    assert outcome["resource"]["issue"][0]["expression"] == ["colour"]


def test_made_up_status_codes_are_refused_before_any_read(
    clinic: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a record of every index Query and resource read
    from fhir_api.store.dynamo import Store

    reads: list[str] = []
    query_partition, many = Store.query_partition, Store.many

    def recorded_query(self: Store, *args: Any, **kwargs: Any) -> Any:
        reads.append("query")
        return query_partition(self, *args, **kwargs)

    def recorded_many(self: Store, *args: Any, **kwargs: Any) -> Any:
        reads.append("many")
        return many(self, *args, **kwargs)

    monkeypatch.setattr(Store, "query_partition", recorded_query)
    monkeypatch.setattr(Store, "many", recorded_many)
    made_up = ",".join(f"made-up-{n}" for n in range(20))

    # When made-up codes are searched for, strictly and leniently
    strict = search("Encounter", status=made_up)
    lenient = call(
        "encounter_search",
        "GET",
        "/api/fhir/Encounter",
        query={"status": [made_up]},
        headers={"Prefer": "handling=lenient"},
    )

    # Then the strict search is a 400, the lenient one matches nothing, and neither read anything
    assert strict.status == 400
    assert strict.body["issue"][0]["code"] == "code-invalid"
    assert lenient.status == 200
    assert [entry["search"]["mode"] for entry in lenient.body["entry"]] == ["outcome"]
    [issue] = lenient.body["entry"][0]["resource"]["issue"]
    assert issue["expression"] == ["status"] and "'made-up-19'" in issue["diagnostics"]
    assert reads == []
    # And a made-up code beside a real one is dropped, the real one still searched
    mixed = call(
        "encounter_search",
        "GET",
        "/api/fhir/Encounter",
        query={"status": ["made-up,planned"]},
        headers={"Prefer": "handling=lenient"},
    )
    assert [entry["resource"].get("id") for entry in mixed.body["entry"]] == [clinic["b_planned"], None]


@pytest.mark.parametrize(
    "params",
    [
        {"date": "2024-13-01"},
        {"date": "xx2024"},
        {"_count": "-1"},
        {"_count": "ten"},
        {"_sort": "status"},
        {"status": "a\x00b"},
        {"_page": "forged"},
    ],
)
def test_malformed_values_are_400(clinic: dict[str, Any], params: dict[str, str]) -> None:
    answer = search("Encounter", **params)
    assert answer.status == 400, answer.text
    assert answer.body["resourceType"] == "OperationOutcome"


def test_a_page_token_is_bound_to_its_query(clinic: dict[str, Any]) -> None:
    # Given a next link of one query
    link = next_link(search("Encounter", _count="1").body)
    assert link is not None
    token = parse_qs(urlsplit(link).query)["_page"][0]

    # When it is used with another query, or edited
    other = search("Encounter", subject=clinic["alice"], _count="1", _page=token)
    edited = search("Encounter", _count="1", _page=token[:-2] + ("AA" if not token.endswith("AA") else "BB"))

    # Then both are refused
    assert other.status == 400
    assert edited.status == 400


def test_a_count_or_sort_that_would_read_too_much_is_refused(
    clinic: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a read budget lower than the thirteen encounters stored
    for _ in range(8):
        create_encounter(clinic["alice"], status="planned", period=None)
    monkeypatch.setenv("SEARCH_READ_BUDGET", "10")
    reset_settings()

    # When a search must count or sort all of them
    counted = search("Encounter", _summary="count")
    sorted_ = search("Encounter", _sort="-_lastUpdated")

    # Then it is refused as too costly, and a narrower one still answers
    for answer in (counted, sorted_):
        assert answer.status == 400, answer.text
        assert answer.body["issue"][0]["code"] == "too-costly"
    assert search("Encounter", subject=clinic["bob"], _sort="-_lastUpdated").status == 200
