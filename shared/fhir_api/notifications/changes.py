"""One change per accepted version, read from a DynamoDB stream record of a clinical table, and the
EventBridge event it becomes.

A stream record of the Encounters or Patients table is one write of one item. Only items that hold a
resource or a tombstone are changes (search-term items are not); a version is accepted once, so an
INSERT is a create, a MODIFY to a higher ``versionId`` an update, or a delete when the new item is a
tombstone (its status and subject then come from the version it replaced). The event names ids and codes
only (``CHANGE_EVENT_SCHEMA`` in docs/schemas/change-event.schema.json says exactly which): never a
name, a narrative or anything else of the resource.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fhir_api.store.dynamo import DELETED
from fhir_api.store.types import StoredResource, tombstone

EVENT_SOURCE = "encounter-api"
EVENT_VERSION = "1"
# The past tense of each interaction, for detail-type ("Encounter.updated").
_PAST = {"create": "created", "update": "updated", "delete": "deleted"}


@dataclass(frozen=True)
class Change:
    """One accepted version of a resource, as the change stream reports it."""

    resource: StoredResource
    interaction: str  # create, update or delete
    status_before: str | None
    status_after: str | None
    subject: str | None  # "Patient/<id>" for an Encounter; the patient itself for a Patient

    @property
    def detail_type(self) -> str:
        """The event's detail-type: ``Encounter.created``, ``Patient.updated``, ``Encounter.deleted``."""
        return f"{self.resource.resource_type}.{_PAST[self.interaction]}"

    def detail(self) -> dict[str, Any]:
        """The event's detail: ids and codes, no PHI beyond them."""
        return {
            "version": EVENT_VERSION,
            "resourceType": self.resource.resource_type,
            "id": self.resource.id,
            "versionId": str(self.resource.version_id),
            "interaction": self.interaction,
            "statusBefore": self.status_before,
            "statusAfter": self.status_after,
            "subject": self.subject,
            "lastUpdated": self.resource.last_updated,
        }

    def event_entry(self, bus_name: str) -> dict[str, Any]:
        """The PutEvents entry of this change on ``bus_name``."""
        return {
            "Source": EVENT_SOURCE,
            "DetailType": self.detail_type,
            "Detail": json.dumps(self.detail(), separators=(",", ":")),
            "EventBusName": bus_name,
            "Resources": [],
        }


def change_from_record(record: dict[str, Any]) -> Change | None:
    """The change a stream record reports, None for records that are no accepted version (term items,
    removals, a write that did not raise the version)."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    data = record.get("dynamodb") or {}
    new = data.get("NewImage") or {}
    old = data.get("OldImage") or {}
    if ("resource" not in new and DELETED not in new) or "versionId" not in new:
        return None
    version_id = int(_value(new["versionId"]))
    if old.get("versionId") is not None and int(_value(old["versionId"])) >= version_id:
        return None
    if DELETED in new:
        return _deletion(new, old, version_id)
    text = str(_value(new["resource"]))
    resource_type = str(json.loads(text).get("resourceType", ""))
    stored = StoredResource(
        resource_type=resource_type,
        id=str(_value(new["id"])),
        version_id=version_id,
        last_updated=str(_value(new["lastUpdated"])),
        text=text,
    )
    before = _status(resource_type, old) if old.get("resource") else None
    return Change(
        resource=stored,
        interaction="create" if version_id == 1 else "update",
        status_before=before,
        status_after=_status(resource_type, new),
        subject=_subject(stored),
    )


def _deletion(new: dict[str, Any], old: dict[str, Any], version_id: int) -> Change:
    """The change a tombstone reports: the status and subject are those of the version it replaced."""
    resource_type = str(_value(new["resourceType"]))
    stored = tombstone(resource_type, str(_value(new["id"])), version_id, str(_value(new["lastUpdated"])))
    subject: str | None = f"Patient/{stored.id}" if resource_type == "Patient" else None
    before = None
    if old.get("resource"):
        replaced = StoredResource(
            resource_type,
            stored.id,
            version_id - 1,
            str(_value(old["lastUpdated"])),
            str(_value(old["resource"])),
        )
        subject, before = _subject(replaced), _status(resource_type, old)
    return Change(stored, "delete", status_before=before, status_after=None, subject=subject)


def _value(attribute: dict[str, Any]) -> Any:
    """The value of a DynamoDB attribute in its typed form ({"S": "x"}, {"N": "1"})."""
    return next(iter(attribute.values()))


def _status(resource_type: str, image: dict[str, Any]) -> str | None:
    """Encounter.status, or ``active``/``inactive`` from Patient.active (absent: None)."""
    if resource_type == "Encounter":
        return str(_value(image["status"])) if "status" in image else None
    document = json.loads(str(_value(image["resource"])))
    active = document.get("active")
    return None if active is None else ("active" if active else "inactive")


def _subject(stored: StoredResource) -> str | None:
    if stored.resource_type == "Patient":
        return f"Patient/{stored.id}"
    reference = (stored.document.get("subject") or {}).get("reference")
    return str(reference) if isinstance(reference, str) else None
