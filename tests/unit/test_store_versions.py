"""Store.version where DynamoDB's eventually consistent reads lag: the current item is read first, and a
copy missing from a lagging read is read again consistently once the current item shows that its version
was superseded."""

from __future__ import annotations

from typing import Any

from fhir_api.settings import Settings
from fhir_api.store.dynamo import Store

SETTINGS = Settings()
KEY = "Encounter/e1"


def stored_item(version: int, status: str) -> dict[str, Any]:
    text = f'{{"resourceType":"Encounter","id":"e1","meta":{{"versionId":"{version}"}},"status":"{status}"}}'
    return {
        "versionId": {"N": str(version)},
        "lastUpdated": {"S": f"2024-03-15T09:00:0{version}.000000Z"},
        "resource": {"S": text},
    }


class LaggingClient:
    """Encounter e1 at version ``current``, copies of the versions below it; an eventually consistent
    read of the versions table has not yet seen the newest copy."""

    def __init__(self, current: int) -> None:
        self.current = current
        self.calls: list[tuple[str, bool]] = []

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        self.calls.append((TableName, ConsistentRead))
        if TableName == SETTINGS.encounters_table:
            return {"Item": {"id": Key["id"], **stored_item(self.current, "arrived")}}
        version = int(Key["versionId"]["N"])
        lagging = not ConsistentRead and version == self.current - 1
        if Key["resourceKey"]["S"] != KEY or version >= self.current or lagging:
            return {}
        return {"Item": {**Key, **stored_item(version, "planned")}}


def test_a_copy_a_lagging_read_misses_is_read_again_consistently() -> None:
    # Given version 2 current and version 1's copy just written (a lagging read does not see it yet)
    client = LaggingClient(current=2)

    # When version 1 is read
    found = Store(SETTINGS, client=client).version("Encounter", "e1", 1)

    # Then it is version 1's copy: the current item showed version 2, so the copy the lagging read
    # missed was read again consistently
    assert found is not None and (found.version_id, found.document["status"]) == (1, "planned")
    assert client.calls == [
        (SETTINGS.encounters_table, True),
        (SETTINGS.versions_table, False),
        (SETTINGS.versions_table, True),
    ]


def test_an_older_copy_is_the_current_item_then_one_eventually_consistent_read() -> None:
    client = LaggingClient(current=4)

    found = Store(SETTINGS, client=client).version("Encounter", "e1", 2)

    assert found is not None and found.version_id == 2
    assert client.calls == [(SETTINGS.encounters_table, True), (SETTINGS.versions_table, False)]


def test_the_current_version_and_versions_that_do_not_exist() -> None:
    client = LaggingClient(current=3)
    store = Store(SETTINGS, client=client)

    current = store.version("Encounter", "e1", 3)

    # The current version is the current item alone
    assert current is not None and (current.version_id, current.document["status"]) == (3, "arrived")
    assert client.calls == [(SETTINGS.encounters_table, True)]
    assert store.version("Encounter", "e1", 4) is None
    assert store.version("Encounter", "e1", 0) is None
