"""PATCH, $validate, conditional reads and unsupported operations through the local gateway, and with
fhirpy (its ``patch`` sends a partial resource as ``application/json``, its ``is_valid`` posts to
``$validate``, its ``refresh`` sends ``If-None-Match``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from fhirpy import SyncFHIRClient

from fhir_api.fhir import fhirtime
from tests.http.conftest import ApiSession
from tests.http.route_calls import encounter_body, patient_body

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

Auth = Callable[..., dict[str, str]]


def _create(api: ApiSession, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(body["resourceType"], json=body, headers={**headers, "Content-Type": FHIR_JSON})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _patch(
    api: ApiSession,
    headers: dict[str, str],
    path: str,
    body: Any,
    content_type: str = JSON_PATCH,
    **extra: str,
) -> Any:
    sent = {"data": body} if isinstance(body, str) else {"json": body}  # text: numbers exactly as written
    return api.patch(path, **sent, headers={**headers, "Content-Type": content_type, **extra})


def _version(api: ApiSession, headers: dict[str, str], path: str) -> str:
    answer = api.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["meta"]["versionId"])


@pytest.fixture
def practitioner(auth: Auth) -> dict[str, str]:
    return auth("practitioner")


@pytest.fixture
def patient_id(api: ApiSession, practitioner: dict[str, str]) -> str:
    return str(_create(api, practitioner, patient_body("Patchable"))["id"])


@pytest.fixture
def encounter_path(api: ApiSession, practitioner: dict[str, str], patient_id: str) -> str:
    return f"Encounter/{_create(api, practitioner, encounter_body(patient_id))['id']}"


# -- PATCH --------------------------------------------------------------------------------------------


def test_a_json_patch_makes_the_next_version_like_an_update(
    api: ApiSession, practitioner: dict[str, str], encounter_path: str
) -> None:
    # Given a planned encounter (version 1)
    # When a JSON Patch tests the status, moves it on and adds a length whose decimal has a trailing zero
    operations = json.dumps(
        [
            {"op": "test", "path": "/status", "value": "planned"},
            {"op": "replace", "path": "/status", "value": "arrived"},
            {"op": "add", "path": "/length", "value": {"value": "LENGTH", "unit": "min"}},
            {"op": "add", "path": "/reasonCode", "value": [{"text": "a/b ~ c"}]},
            {"op": "copy", "from": "/reasonCode/0", "path": "/reasonCode/-"},
        ]
    ).replace('"LENGTH"', "30.50")
    answer = _patch(api, practitioner, encounter_path, operations, **{"If-Match": 'W/"1"'})
    # Then it is stored as version 2, answered like an update
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == 'W/"2"'
    assert answer.headers["Location"].endswith(f"/{encounter_path}/_history/2")
    body = answer.json()
    assert body["status"] == "arrived" and body["meta"]["versionId"] == "2"
    assert body["reasonCode"] == [{"text": "a/b ~ c"}, {"text": "a/b ~ c"}]
    # And the decimal keeps the digits it was sent with; version 1 stays readable
    assert '"value":30.50' in api.get(encounter_path, headers=practitioner).text.replace(" ", "")
    assert api.get(f"{encounter_path}/_history/1", headers=practitioner).json()["status"] == "planned"
    # And RFC 6901 escapes reach keys with / and ~ (a test that holds leaves the resource as it is)
    escaped = _patch(
        api, practitioner, encounter_path, [{"op": "test", "path": "/reasonCode/1/text", "value": "a/b ~ c"}]
    )
    assert escaped.status_code == 200 and escaped.headers["ETag"] == 'W/"3"'


@pytest.mark.parametrize(
    ("patch", "status", "said"),
    [
        ([{"op": "test", "path": "/status", "value": "finished"}], 422, "failed"),
        ([{"op": "remove", "path": "/period/end"}], 422, "does not exist"),
        ([{"op": "replace", "path": "/status", "value": "not-a-status"}], 422, "status"),
        ([{"op": "remove", "path": "/subject"}], 422, "subject"),
        ([{"op": "replace", "path": "/id", "value": "someone-else"}], 422, "id"),
        ([{"op": "replace", "path": "/resourceType", "value": "Patient"}], 422, "resourceType"),
        ([{"op": "replace", "path": "/class/code", "value": "amb"}], 422, "ActEncounterCode"),
        ({"op": "replace", "path": "/status", "value": "arrived"}, 400, "array"),
        ([{"op": "rename", "path": "/status"}], 400, "op must be"),
        ([{"op": "add", "path": "status", "value": "arrived"}], 400, "must start with"),
        ([{"op": "add", "path": "/status"}], 400, "needs a value"),
    ],
)
def test_a_patch_that_cannot_apply_or_breaks_the_resource_stores_nothing(
    api: ApiSession, practitioner: dict[str, str], encounter_path: str, patch: Any, status: int, said: str
) -> None:
    # When a patch is malformed (400) or leaves no valid encounter (422)
    answer = _patch(api, practitioner, encounter_path, patch)
    # Then the answer is an OperationOutcome that says why, and version 1 is still current
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert said in " ".join(issue.get("diagnostics", "") for issue in outcome["issue"])
    assert _version(api, practitioner, encounter_path) == "1"


def test_a_patch_honours_if_match_and_the_lifecycle(
    api: ApiSession, practitioner: dict[str, str], encounter_path: str
) -> None:
    finish = [{"op": "replace", "path": "/status", "value": "finished"}]
    # A stale If-Match is 412
    stale = _patch(api, practitioner, encounter_path, finish, **{"If-Match": 'W/"7"'})
    assert stale.status_code == 412, stale.text
    # A finished encounter cannot be reopened by a patch any more than by a PUT
    assert _patch(api, practitioner, encounter_path, finish).status_code == 200
    reopened = _patch(
        api, practitioner, encounter_path, [{"op": "replace", "path": "/status", "value": "in-progress"}]
    )
    assert reopened.status_code == 422, reopened.text
    assert "Encounter.status" in reopened.json()["issue"][0]["expression"]
    assert _version(api, practitioner, encounter_path) == "2"


def test_fhirpath_patch_and_other_bodies_are_refused_with_what_to_send(
    api: ApiSession, practitioner: dict[str, str], patient_id: str
) -> None:
    fhirpath_patch = {
        "resourceType": "Parameters",
        "parameter": [{"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]}],
    }
    for content_type in (FHIR_JSON, "application/json"):
        answer = _patch(api, practitioner, f"Patient/{patient_id}", fhirpath_patch, content_type)
        assert answer.status_code == 415, answer.text
        assert "application/json-patch+json" in answer.json()["issue"][0]["diagnostics"]
    xml = api.patch(
        f"Patient/{patient_id}", data="<x/>", headers={**practitioner, "Content-Type": "application/xml"}
    )
    assert xml.status_code == 415
    # A JSON Merge Patch must be an object
    assert _patch(api, practitioner, f"Patient/{patient_id}", [], MERGE_PATCH).status_code == 400
    assert _version(api, practitioner, f"Patient/{patient_id}") == "1"


def test_a_merge_patch_changes_only_what_it_names(
    api: ApiSession, practitioner: dict[str, str], patient_id: str
) -> None:
    answer = _patch(
        api,
        practitioner,
        f"Patient/{patient_id}",
        {"gender": "female", "name": None, "active": True},
        MERGE_PATCH,
    )
    # ``name: null`` removes the names; the rest is merged
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["gender"] == "female" and body["active"] is True and "name" not in body


def test_auditors_may_not_patch(api: ApiSession, auth: Auth, patient_id: str) -> None:
    answer = _patch(
        api, auth("auditor"), f"Patient/{patient_id}", [{"op": "add", "path": "/active", "value": False}]
    )
    assert answer.status_code == 403


def test_fhirpy_patches_a_patient(fhirpy_client: Callable[[str], SyncFHIRClient]) -> None:
    # Given a practitioner's fhirpy client and a patient it created
    client = fhirpy_client("practitioner")
    patient = client.resource("Patient", name=[{"family": "Fhirpy", "given": ["Patch"]}], gender="male")
    patient.save()
    # When it patches the patient (fhirpy sends the named fields as a partial resource)
    patched = client.patch("Patient", patient.id, birthDate="1980-02-29", gender="other")
    # Then the server merged them into version 2, names kept
    assert patched["meta"]["versionId"] == "2"
    assert patched["birthDate"] == "1980-02-29" and patched["gender"] == "other"
    assert patched["name"][0]["family"] == "Fhirpy"
    # And the resource's own patch works the same way
    patient.patch(active=False)
    assert client.reference("Patient", patient.id).to_resource()["active"] is False


# -- $validate ---------------------------------------------------------------------------------------


def _validate(
    api: ApiSession, headers: dict[str, str], resource_type: str, body: Any, query: str = ""
) -> Any:
    return api.post(
        f"{resource_type}/$validate{query}", json=body, headers={**headers, "Content-Type": FHIR_JSON}
    )


def _errors(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    assert outcome["resourceType"] == "OperationOutcome"
    return [issue for issue in outcome["issue"] if issue["severity"] in ("error", "fatal")]


def test_validate_answers_200_with_the_issues_and_stores_nothing(
    api: ApiSession, auth: Auth, patient_id: str
) -> None:
    auditor = auth("auditor")
    before = api.get(f"Encounter?subject=Patient/{patient_id}&_summary=count", headers=auditor).json()[
        "total"
    ]
    # A valid encounter: 200, no error
    valid = _validate(api, auditor, "Encounter", encounter_body(patient_id))
    assert valid.status_code == 200, valid.text
    assert _errors(valid.json()) == []
    # Invalid ones: still 200, each error naming its element, as a create would refuse them
    broken = {
        **encounter_body(patient_id),
        "status": "bogus",
        "period": {"start": "2024-02-01", "end": "2024-01-01"},
    }
    invalid = _validate(api, auditor, "Encounter", broken)
    assert invalid.status_code == 200
    assert any("Encounter.status" in issue.get("expression", []) for issue in _errors(invalid.json()))
    no_patient = _validate(api, auditor, "Encounter", encounter_body("no-such-patient"))
    assert [issue["expression"] for issue in _errors(no_patient.json())] == [["Encounter.subject"]]
    unsafe = {
        **patient_body("Unsafe"),
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script></div>',
        },
    }
    assert _errors(_validate(api, auditor, "Patient", unsafe).json())
    # And nothing was stored
    after = api.get(f"Encounter?subject=Patient/{patient_id}&_summary=count", headers=auditor).json()["total"]
    assert after == before


def test_validate_takes_parameters_with_mode_update_against_the_stored_version(
    api: ApiSession, practitioner: dict[str, str], auth: Auth, encounter_path: str
) -> None:
    stored = api.get(encounter_path, headers=practitioner).json()
    finish = api.put(
        encounter_path,
        json={**stored, "status": "finished"},
        headers={**practitioner, "Content-Type": FHIR_JSON},
    )
    assert finish.status_code == 200

    def parameters(resource: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": resource}, {"name": "mode", "valueCode": mode}],
        }

    reopen = {**stored, "status": "in-progress"}
    # As an update of the finished encounter, reopening it breaks the lifecycle
    as_update = _validate(api, auth("auditor"), "Encounter", parameters(reopen, "update"))
    assert as_update.status_code == 200, as_update.text
    assert [issue["expression"] for issue in _errors(as_update.json())] == [["Encounter.status"]]
    # As a create the same resource is fine
    assert _errors(_validate(api, auth("auditor"), "Encounter", parameters(reopen, "create")).json()) == []
    # An update of a resource that does not exist cannot be valid
    missing = _validate(
        api, auth("auditor"), "Encounter", parameters({**reopen, "id": "no-such-id"}, "update")
    )
    assert _errors(missing.json())[0]["code"] == "not-found"
    assert _version(api, practitioner, encounter_path) == "2"


@pytest.mark.parametrize(
    ("query", "parameters", "said"),
    [
        ("?mode=delete", None, "mode"),
        ("", [{"name": "mode", "valueCode": "delete"}], "mode"),
        ("", [{"name": "profile", "valueUri": "http://example.org/StructureDefinition/mine"}], "profile"),
        ("", [{"name": "resource", "valueString": "x"}], "resource"),
    ],
)
def test_validate_refuses_what_it_cannot_do(
    api: ApiSession, auth: Auth, patient_id: str, query: str, parameters: Any, said: str
) -> None:
    body: dict[str, Any] = encounter_body(patient_id)
    if parameters is not None:
        body = {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": body}, *parameters],
        }
        if parameters[0]["name"] == "resource":
            body["parameter"] = parameters
    answer = _validate(api, auth("auditor"), "Encounter", body, query)
    assert answer.status_code == 400, answer.text
    assert said in answer.json()["issue"][0]["diagnostics"]


def test_fhirpy_asks_the_server_whether_a_resource_is_valid(
    fhirpy_client: Callable[[str], SyncFHIRClient],
) -> None:
    client = fhirpy_client("auditor")
    assert client.resource("Patient", name=[{"family": "Valid"}], gender="female").is_valid() is True
    assert client.resource("Patient", gender="nonsense").is_valid() is False


# -- conditional read --------------------------------------------------------------------------------


@pytest.mark.parametrize("if_none_match", ['W/"1"', '"1"', "1", '"9", W/"1"', "*"])
def test_a_read_of_the_version_the_client_holds_is_304(
    api: ApiSession, practitioner: dict[str, str], patient_id: str, if_none_match: str
) -> None:
    answer = api.get(f"Patient/{patient_id}", headers={**practitioner, "If-None-Match": if_none_match})
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["ETag"] == 'W/"1"' and answer.headers["Last-Modified"]
    vread = api.get(
        f"Patient/{patient_id}/_history/1", headers={**practitioner, "If-None-Match": if_none_match}
    )
    assert vread.status_code == 304 and vread.content == b""


def test_a_read_after_a_change_is_200(api: ApiSession, practitioner: dict[str, str], patient_id: str) -> None:
    _patch(api, practitioner, f"Patient/{patient_id}", [{"op": "add", "path": "/active", "value": True}])
    answer = api.get(f"Patient/{patient_id}", headers={**practitioner, "If-None-Match": 'W/"1"'})
    assert answer.status_code == 200 and answer.json()["meta"]["versionId"] == "2"


def test_if_modified_since_compares_whole_seconds(
    api: ApiSession, practitioner: dict[str, str], patient_id: str
) -> None:
    read = api.get(f"Patient/{patient_id}", headers=practitioner)
    last_modified = read.headers["Last-Modified"]
    updated = fhirtime.parse_canonical(read.json()["meta"]["lastUpdated"])
    # The Last-Modified the server sent (its lastUpdated's second): not modified since
    same = api.get(f"Patient/{patient_id}", headers={**practitioner, "If-Modified-Since": last_modified})
    assert same.status_code == 304 and same.content == b""
    # A second earlier: modified since
    earlier = format_datetime(updated.replace(microsecond=0) - timedelta(seconds=1), usegmt=True)
    assert (
        api.get(f"Patient/{patient_id}", headers={**practitioner, "If-Modified-Since": earlier}).status_code
        == 200
    )
    # Not a date: ignored; If-None-Match wins over it
    assert (
        api.get(
            f"Patient/{patient_id}", headers={**practitioner, "If-Modified-Since": "yesterday"}
        ).status_code
        == 200
    )
    both = {**practitioner, "If-Modified-Since": last_modified, "If-None-Match": 'W/"9"'}
    assert api.get(f"Patient/{patient_id}", headers=both).status_code == 200


def test_fhirpy_refresh_keeps_a_current_copy(fhirpy_client: Callable[[str], SyncFHIRClient]) -> None:
    client = fhirpy_client("practitioner")
    patient = client.resource("Patient", name=[{"family": "Refresh"}])
    patient.save()
    # fhirpy's refresh sends If-None-Match with the version it holds; a 304 leaves its copy as it is
    patient.refresh()
    assert patient["name"][0]["family"] == "Refresh" and patient["meta"]["versionId"] == "1"


# -- operations this server does not implement ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", "Patient/{patient}/$everything", "$everything"),
        ("POST", "Patient/{patient}/$everything", "$everything"),
        ("POST", "$export", "$export"),
        ("GET", "Patient/$export", "$export"),
        ("POST", "Encounter/$meta", "$meta"),
        ("PUT", "Encounter/$meta", "$meta"),
    ],
)
def test_an_unsupported_operation_is_501_naming_it(
    api: ApiSession, practitioner: dict[str, str], patient_id: str, method: str, path: str, operation: str
) -> None:
    answer = api.request(
        method, path.format(patient=patient_id), json={}, headers={**practitioner, "Content-Type": FHIR_JSON}
    )
    assert answer.status_code == 501, answer.text
    outcome = answer.json()
    assert outcome["issue"][0]["code"] == "not-supported"
    assert operation in outcome["issue"][0]["diagnostics"]
    assert "use GET" not in answer.text


def test_validate_with_get_is_405_naming_post(api: ApiSession, practitioner: dict[str, str]) -> None:
    answer = api.get("Encounter/$validate", headers=practitioner)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


def test_validate_on_an_instance_says_where_it_is_served(
    api: ApiSession, practitioner: dict[str, str], encounter_path: str
) -> None:
    answer = api.post(
        f"{encounter_path}/$validate", json={}, headers={**practitioner, "Content-Type": FHIR_JSON}
    )
    assert answer.status_code == 501
    assert "POST /api/fhir/Encounter/$validate" in answer.json()["issue"][0]["diagnostics"]


def test_a_patch_that_would_grow_the_resource_past_the_body_limit_is_413(
    api: ApiSession, practitioner: dict[str, str], patient_id: str
) -> None:
    # A patch within the body limit whose copies make a resource beyond it (350 KB)
    text = "x" * 200_000
    grow = [
        {"op": "add", "path": "/name/0/text", "value": text},
        {"op": "copy", "from": "/name/0", "path": "/name/-"},
    ]
    answer = _patch(api, practitioner, f"Patient/{patient_id}", grow)
    assert answer.status_code == 413, answer.text[:300]
    assert _version(api, practitioner, f"Patient/{patient_id}") == "1"
