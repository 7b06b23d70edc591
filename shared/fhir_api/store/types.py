"""What the store hands to and takes from the service: plain values, no boto3 types."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fhir_api.fhir import fhirjson


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as stored: its JSON text already carries ``id`` and ``meta``.

    A deletion is a version of its own, a tombstone (``deleted``): its text is only the resource's
    type, id and meta, and no answer shows it as a resource.
    """

    resource_type: str
    id: str
    version_id: int
    last_updated: str
    text: str
    deleted: bool = False
    # The patient the store lists the resource under (an Encounter's subject), as its item or the write
    # that made it says: the audit record names it without parsing the resource.
    listed_patient: str | None = None

    @cached_property
    def document(self) -> dict[str, Any]:
        """The resource parsed (decimals kept exact), once: a search may test it more than once.
        Callers read it and never change it."""
        parsed: dict[str, Any] = fhirjson.loads_stored(self.text)
        return parsed


def tombstone(resource_type: str, resource_id: str, version_id: int, last_updated: str) -> StoredResource:
    """The version that marks a resource deleted."""
    meta = {"versionId": str(version_id), "lastUpdated": last_updated}
    text = fhirjson.dumps({"resourceType": resource_type, "id": resource_id, "meta": meta})
    return StoredResource(resource_type, resource_id, version_id, last_updated, text, deleted=True)


@dataclass(frozen=True)
class Term:
    """A search (and optionally uniqueness) entry of a resource, stored as its own item.

    ``key`` is the item's id; ``term``/``value`` are the keys of the term index. A unique term is a
    claim: a second resource writing the same key is refused.
    """

    key: str
    term: str
    value: str
    unique: bool = False


EVERY = "every"  # the grouping of a listing of every resource of a type


@dataclass(frozen=True)
class Listing:
    """A logical read: the resources of ``resource_type`` listed under ``keys`` of one grouping (``by``),
    in the order of the value the grouping sorts them by; the store decides which index serves it.

    Encounters are grouped by ``subject`` (patient ids) and ``status`` (codes), and all of them are
    listed under ``EVERY`` (no keys); each is ordered by its period's start. Patients are listed by
    ``term`` (``Term.term`` values), each term ordered by ``Term.value``.
    """

    resource_type: str
    by: str
    keys: tuple[str, ...] = ()
    low: str | None = None  # inclusive bound on the order value
    high: str | None = None  # exclusive bound on the order value
    prefixes: tuple[str, ...] = ()  # the order value starts with this, one per key (or none)
    descending: bool = False


@dataclass(frozen=True)
class ListedEntry:
    """One entry of a listing: the resource it stands for and what the listing keeps of it."""

    owner: str  # the id of the resource
    key: str  # the listing key it was found under (a subject id, a status code, a term)
    order: str  # the value it is ordered by (a period's start, a term's value)
    order_end: str | None = None  # where a range-valued order ends (a period's end), when kept
    resume: Any = field(default=None, compare=False)  # the store's position just after it


@dataclass
class Write:
    """One accepted write: the new current item, and what must hold for it to land.

    ``superseded`` is the current version an update read and replaces (None for a create): it lands
    as its version copy in the same transaction, on condition that it is still current. A deletion's
    ``resource`` is a tombstone, with no index attributes and every term removed.
    """

    resource: StoredResource
    index_attributes: dict[str, str]
    superseded: StoredResource | None  # None: a create, the id must be new
    references: list[tuple[str, str]] = field(default_factory=list)  # (resource type, id) that must exist
    terms_added: list[Term] = field(default_factory=list)
    terms_removed: list[Term] = field(default_factory=list)

    @property
    def expected_version(self) -> int | None:
        """The version that must still be current for the write to land; None for a create."""
        return self.superseded.version_id if self.superseded is not None else None
