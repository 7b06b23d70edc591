"""A Bundle as sent: its envelope and limits, each entry's request against the route table, errors
re-rooted at the entry, and local identities (urn:uuid, urn:oid) rewritten wherever they appear."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from fhir_api import errors
from fhir_api.api.http import Request
from fhir_api.api.outcome import status_of
from fhir_api.bundles import references
from fhir_api.bundles.entries import at_entry, read_bundle
from fhir_api.fhir import fhirjson
from fhir_api.settings import Settings

BASE = "https://fhir.example.org/Prod/api/fhir"
PATIENT_URN = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"


def request(bundle: Any, content_type: str = "application/fhir+json") -> Request:
    body = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode()
    return Request("POST", "/api/fhir", {}, {}, {"content-type": content_type}, body, "r-1", "u-1", (), BASE)


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(method: str, url: str, resource: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"request": {"method": method, "url": url}, **extra}
    if resource is not None:
        found["resource"] = resource
    return found


PATIENT = {"resourceType": "Patient", "name": [{"family": "Chalmers"}]}


def refusal(sent: Any, settings: Settings | None = None) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as raised:
        read_bundle(request(sent), settings or Settings())
    return raised.value


# -- the envelope ------------------------------------------------------------------------------------


def test_only_a_transaction_or_batch_bundle_is_taken() -> None:
    error = refusal(bundle("collection"))
    assert status_of(error) == 400 and error.expression == ("Bundle.type",)
    error = refusal(PATIENT)
    assert status_of(error) == 400 and error.expression == ("Bundle.resourceType",)


def test_more_entries_than_the_setting_is_413_naming_both_counts() -> None:
    read = entry("GET", "Patient/p-1")
    error = refusal(bundle("batch", *[read] * 4), Settings(max_bundle_entries=3))
    assert status_of(error) == 413
    assert "4 entries" in error.diagnostics and "at most 3" in error.diagnostics


def test_a_body_over_the_bundle_limit_is_413() -> None:
    settings = Settings(max_bundle_bytes=64 * 1024)
    big = {**PATIENT, "text": {"status": "generated", "div": "x" * 70_000}}
    error = refusal(bundle("transaction", entry("POST", "Patient", big)), settings)
    assert status_of(error) == 413 and "MAX_BUNDLE_BYTES" in error.diagnostics


def test_a_bundle_may_be_larger_than_one_resource_may() -> None:
    # Given a Bundle over MAX_BODY_BYTES (one resource's limit) but under MAX_BUNDLE_BYTES
    settings = Settings()
    padding = "x" * (settings.max_body_bytes // 2)
    patients = [entry("POST", "Patient", {**PATIENT, "text": {"div": padding}}) for _ in range(3)]
    # When it is read, then all its entries are there
    assert len(read_bundle(request(bundle("batch", *patients)), settings).entries) == 3


def test_each_resource_is_held_to_one_resources_limit() -> None:
    # Given a Bundle whose second resource is over MAX_BODY_BYTES (the Bundle itself is not)
    settings = Settings(max_body_bytes=1024)
    big = {**PATIENT, "text": {"status": "generated", "div": "x" * 2000}}
    entries = (entry("POST", "Patient", PATIENT), entry("POST", "Patient", big))
    # Then a transaction is 413 naming that resource, and a batch answers that entry alone with 413
    error = refusal(bundle("transaction", *entries), settings)
    assert status_of(error) == 413 and error.expression == ("Bundle.entry[1].resource",)
    small, large = read_bundle(request(bundle("batch", *entries)), settings).entries
    assert small.refused is None
    assert large.refused is not None and status_of(large.refused) == 413


def test_a_bundle_must_be_fhir_json() -> None:
    with pytest.raises(errors.UnsupportedMediaType):
        read_bundle(request(bundle("batch"), "application/xml"), Settings())


# -- entries and their routes ------------------------------------------------------------------------


def test_entries_take_the_route_their_request_would_take_on_its_own() -> None:
    read = read_bundle(
        request(
            bundle(
                "transaction",
                entry("POST", "Patient", PATIENT, fullUrl=PATIENT_URN),
                entry("PUT", "Patient/p-1", {**PATIENT, "id": "p-1"}),
                entry("GET", f"{BASE}/Encounter?subject=Patient/p-1&status=finished"),
                entry("GET", "Encounter/e-1/_history/2"),
            )
        ),
        Settings(),
    )
    functions = [item.route.function if item.route else None for item in read.entries]
    assert functions == ["patient_create", "patient_update", "encounter_search", "encounter_vread"]
    assert read.entries[2].query == {"subject": ["Patient/p-1"], "status": ["finished"]}
    assert read.entries[3].path_params == {"id": "e-1", "vid": "2"}
    assert read.entries[0].full_url == PATIENT_URN


@pytest.mark.parametrize(
    ("sent", "expression", "words"),
    [
        (entry("GET", "Subscription"), "Bundle.entry[0].request.url", "Subscription has its own endpoint"),
        (entry("GET", "AuditEvent/a-1"), "Bundle.entry[0].request.url", "AuditEvent has its own endpoint"),
        (entry("GET", "Observation/o-1"), "Bundle.entry[0].request.url", "not a resource type"),
        (entry("HEAD", "Patient/p-1"), "Bundle.entry[0].request.method", "not supported"),
        (entry("POST", "Patient"), "Bundle.entry[0].resource", "required for POST"),
        (entry("POST", "Encounter", PATIENT), "Bundle.entry[0].resource.resourceType", "names Encounter"),
        (entry("PUT", "Patient", PATIENT), "Bundle.entry[0].request.url", "conditional update"),
        (entry("POST", "Patient?name=x", PATIENT), "Bundle.entry[0].request.url", "takes no query"),
        (
            entry("GET", "https://other.example.org/fhir/Patient/p-1"),
            "Bundle.entry[0].request.url",
            "another server",
        ),
        (entry("GET", "Patient/p-1", PATIENT), "Bundle.entry[0].resource", "must be absent"),
        ({"resource": PATIENT}, "Bundle.entry[0].request", "request is required"),
    ],
)
def test_a_bad_entry_refuses_a_transaction_naming_it(
    sent: dict[str, Any], expression: str, words: str
) -> None:
    error = refusal(bundle("transaction", sent))
    assert status_of(error) == 400
    assert error.expression == (expression,)
    assert words in error.diagnostics and error.diagnostics.startswith("Bundle.entry[0]")


def test_a_bad_entry_of_a_batch_is_kept_to_be_answered_alone() -> None:
    read = read_bundle(
        request(bundle("batch", entry("GET", "Subscription"), entry("GET", "Patient/p-1"))), Settings()
    )
    refused, good = read.entries
    assert refused.refused is not None and status_of(refused.refused) == 400
    assert good.refused is None and good.route is not None and good.route.function == "patient_read"


def test_two_entries_with_one_full_url_are_refused() -> None:
    twice = entry("POST", "Patient", PATIENT, fullUrl=PATIENT_URN)
    error = refusal(bundle("transaction", twice, twice))
    assert error.expression == ("Bundle.entry[1].fullUrl",)


# -- errors at the entry -------------------------------------------------------------------------------


def test_an_error_is_re_rooted_at_its_entry_and_keeps_its_status() -> None:
    # Given the errors an entry's interaction raises on its own
    rule = errors.BusinessRuleViolation("period ends before it starts", expression=("Encounter.period.end",))
    search = errors.InvalidRequest("unknown parameter", expression=("status:text",))
    whole = errors.InvalidRequest("not an Encounter", expression=("Encounter",))

    # When they are answered for entry 2, then each names the entry's resource or request
    moved = at_entry(rule, 2, "Encounter")
    assert isinstance(moved, errors.BusinessRuleViolation) and status_of(moved) == 422
    assert moved.expression == ("Bundle.entry[2].resource.period.end",)
    assert moved.diagnostics == "Bundle.entry[2]: period ends before it starts"
    assert moved.write_index == 2
    assert at_entry(search, 2, "Encounter").expression == ("Bundle.entry[2].request.url",)
    assert at_entry(whole, 2, "Encounter").expression == ("Bundle.entry[2].resource",)
    # And the original error is left as it was
    assert rule.expression == ("Encounter.period.end",)


# -- local identities ----------------------------------------------------------------------------------


def test_every_value_naming_a_local_identity_is_rewritten() -> None:
    # Given an encounter naming a patient of the same Bundle in a reference, a uri and its narrative
    encounter = fhirjson.loads(
        json.dumps(
            {
                "resourceType": "Encounter",
                "text": {
                    "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{PATIENT_URN}">P</a></div>'
                },
                "subject": {"reference": PATIENT_URN, "display": f"not {PATIENT_URN}"},
                "extension": [{"url": "http://example.org/x", "valueUri": PATIENT_URN}],
                "participant": [{"individual": {"reference": "Practitioner/pr-1"}}],
            }
        ).replace('"url": "http://example.org/x",', '"url": "http://example.org/x", "valueDecimal": 1.50,')
    )

    # When the identities are rewritten
    rewritten = references.rewrite(encounter, {PATIENT_URN: "Patient/p-9"})

    # Then each value that is the urn is the new reference; text that only mentions it is kept
    assert rewritten["subject"] == {"reference": "Patient/p-9", "display": f"not {PATIENT_URN}"}
    assert rewritten["extension"][0]["valueUri"] == "Patient/p-9"
    assert 'href="Patient/p-9"' in rewritten["text"]["div"]
    assert rewritten["participant"] == encounter["participant"]
    # And decimals keep their digits
    assert fhirjson.dumps(rewritten["extension"][0]["valueDecimal"]) == "1.50"
    assert isinstance(rewritten["extension"][0]["valueDecimal"], Decimal)


@pytest.mark.parametrize("full_url", ["urn:uuid:not-a-uuid", "urn:oid:1.2.x", "urn:oid:3.1"])
def test_a_malformed_local_identity_is_400(full_url: str) -> None:
    with pytest.raises(errors.InvalidRequest) as raised:
        references.check_local(full_url, "Bundle.entry[1]")
    assert raised.value.expression == ("Bundle.entry[1].fullUrl",)


def test_urn_oids_are_local_identities_too() -> None:
    assert references.is_local("urn:oid:1.2.36.146.595.217.0.1")
    references.check_local("urn:oid:1.2.36.146.595.217.0.1", "Bundle.entry[0]")
    assert not references.is_local("http://example.org/fhir/Patient/1")
