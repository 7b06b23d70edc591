"""Patches racing each other on DynamoDB Local: each is applied to the version it read and lands only
if that version is still current, so no patch silently undoes another."""

from __future__ import annotations

from collections import Counter
from typing import Any

from handler_calls import Answer, invoke
from test_races import concurrently, existing, history  # noqa: F401  (existing is a fixture)

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def test_eight_patches_at_once_never_lose_one_another(existing: dict[str, str]) -> None:  # noqa: F811
    # Given an encounter with an empty list of reasons, and eight writers each appending their own
    encounter_id = existing["encounter"]
    start = [{"op": "add", "path": "/reasonCode", "value": [{"text": "referral"}]}]
    assert (
        invoke("encounter_patch", path_params={"id": encounter_id}, body=start, headers=JSON_PATCH).status
        == 200
    )

    def append(index: int) -> Answer:
        patch = [{"op": "add", "path": "/reasonCode/-", "value": {"text": f"writer {index}"}}]
        return invoke("encounter_patch", path_params={"id": encounter_id}, body=patch, headers=JSON_PATCH)

    # When they all patch it at once
    answers = concurrently(8, append)

    # Then each answer is a 200 or a 409 the client may retry, never a 5xx
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {200, 409}, statuses
    assert statuses[200] >= 1
    # And each winner's version is the version it read plus its own reason: nothing was overwritten
    versions: dict[str, Any] = {v["meta"]["versionId"]: v for v in history(encounter_id)}
    assert len(versions) == 2 + statuses[200]
    for answer in answers:
        if answer.status == 200:
            before = versions[str(int(answer.body["meta"]["versionId"]) - 1)]["reasonCode"]
            assert answer.body["reasonCode"][:-1] == before
    latest = versions[str(len(versions))]["reasonCode"]
    assert len(latest) == 1 + statuses[200] and len({reason["text"] for reason in latest}) == len(latest)


def test_a_patch_with_a_stale_if_match_changes_nothing(existing: dict[str, str]) -> None:  # noqa: F811
    encounter_id = existing["encounter"]
    patch = [{"op": "replace", "path": "/status", "value": "finished"}]
    first = invoke(
        "encounter_patch",
        path_params={"id": encounter_id},
        body=patch,
        headers={**JSON_PATCH, "If-Match": 'W/"1"'},
    )
    assert first.status == 200, first.body
    again = invoke(
        "encounter_patch",
        path_params={"id": encounter_id},
        body=patch,
        headers={**JSON_PATCH, "If-Match": 'W/"1"'},
    )
    assert again.status == 412, again.body
    assert [version["meta"]["versionId"] for version in history(encounter_id)] == ["2", "1"]
