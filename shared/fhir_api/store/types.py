"""What the store hands to and takes from the service: plain values, no boto3 types."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fhir_api.fhir import fhirjson


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as stored: its JSON text already carries ``id`` and ``meta``."""

    resource_type: str
    id: str
    version_id: int
    last_updated: str
    text: str

    @cached_property
    def document(self) -> dict[str, Any]:
        """The resource parsed (decimals kept exact), once: a search may test it more than once.
        Callers read it and never change it."""
        parsed: dict[str, Any] = fhirjson.loads(self.text)
        return parsed


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


@dataclass(frozen=True)
class IndexQuery:
    """A Query on one index over one or more partitions, merged in sort-key order."""

    index: str
    partition_attribute: str
    partitions: tuple[str, ...]
    sort_attribute: str
    owner_attribute: str  # the attribute of an index entry that holds the resource id
    low: str | None = None  # inclusive bound on the sort key
    high: str | None = None  # exclusive bound on the sort key
    prefixes: tuple[str, ...] = ()  # begins_with on the sort key, one per partition (or none)
    ascending: bool = True


@dataclass
class Write:
    """One accepted write: the new current item, and what must hold for it to land.

    ``superseded`` is the current version an update read and replaces (None for a create): it lands
    as its version copy in the same transaction, on condition that it is still current.
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
