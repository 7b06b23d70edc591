"""Which index serves which listing: the one place that names the tables' indexes and key attributes.

Resources plan their searches as ``Listing``s (encounters of a subject, with a status, all of them;
patients under a term); ``index_query`` maps one onto an index Query over one or more partitions.
The hot groupings are sharded: their entries are spread over ``INDEX_SHARDS`` partitions
``<key>#<shard>`` so that ``finished`` or "every encounter" is not one hot key (template.yaml declares
the indexes; data-model.md describes them).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from fhir_api.store.types import EVERY, Listing


@dataclass(frozen=True)
class IndexLayout:
    """How one grouping of a resource type is stored: its index and the attributes of its entries."""

    index: str
    partition_attribute: str
    sort_attribute: str
    owner_attribute: str  # the attribute of an entry that holds the resource id
    end_attribute: str | None = None  # where a range-valued sort key ends, when the index projects it
    sharded: bool = False  # partitions "<key>#<shard>", shards 0..INDEX_SHARDS-1
    every_key: str | None = None  # the one key of a listing of every resource


INDEXES: dict[tuple[str, str], IndexLayout] = {
    ("Encounter", "subject"): IndexLayout("subject-index", "subject", "periodStart", "id", "periodEnd"),
    ("Encounter", "status"): IndexLayout(
        "status-index", "statusShard", "periodStart", "id", "periodEnd", sharded=True
    ),
    ("Encounter", EVERY): IndexLayout(
        "date-index", "dateShard", "periodStart", "id", "periodEnd", sharded=True, every_key="all"
    ),
    ("Encounter", "term"): IndexLayout("term-index", "term", "termValue", "owner"),
    ("Patient", "term"): IndexLayout("term-index", "term", "termValue", "owner"),
    ("Subscription", "status"): IndexLayout("status-index", "status", "lastUpdated", "id"),
}


def patient_attribute(resource_type: str) -> str | None:
    """The item attribute that names the patient a resource is listed under (an Encounter's subject,
    the subject index's partition key); None for a type the subject index does not list."""
    layout = INDEXES.get((resource_type, "subject"))
    return layout.partition_attribute if layout is not None else None


def shard_of(resource_id: str, shards: int) -> int:
    """The shard a resource's entries in the sharded indexes go to: stable, and even over random ids."""
    return zlib.crc32(resource_id.encode("utf-8")) % shards


def _partition(key: str, shard: int | None) -> str:
    return key if shard is None else f"{key}#{shard}"


def partition_attributes(
    resource_type: str, keys: Mapping[str, str | None], resource_id: str, shards: int
) -> dict[str, str]:
    """The partition attributes that list a resource under ``keys`` (grouping -> its key; ``EVERY``
    takes none), in the partitions ``index_query`` reads: the one place that spells a sharded key."""
    shard = shard_of(resource_id, shards)
    attributes: dict[str, str] = {}
    for by, key in keys.items():
        layout = INDEXES[(resource_type, by)]
        value = layout.every_key if layout.every_key is not None else str(key)
        attributes[layout.partition_attribute] = _partition(value, shard if layout.sharded else None)
    return attributes


@dataclass(frozen=True)
class IndexQuery:
    """A Query on one index over one or more partitions, merged in sort-key order."""

    resource_type: str  # whose table holds the index
    layout: IndexLayout
    partitions: tuple[str, ...]
    keys: tuple[str, ...]  # the listing key each partition stands for
    low: str | None = None  # inclusive bound on the sort key
    high: str | None = None  # exclusive bound on the sort key
    prefixes: tuple[str, ...] = ()  # begins_with on the sort key, one per partition (or none)
    ascending: bool = True

    @property
    def index(self) -> str:
        """The index's name."""
        return self.layout.index

    @property
    def partition_attribute(self) -> str:
        """The index's partition key attribute."""
        return self.layout.partition_attribute

    @property
    def sort_attribute(self) -> str:
        """The index's sort key attribute."""
        return self.layout.sort_attribute


def index_query(listing: Listing, shards: int) -> IndexQuery:
    """The index Query that reads ``listing``, its partitions sharded where the index is."""
    layout = INDEXES[(listing.resource_type, listing.by)]
    keys = (layout.every_key,) if layout.every_key is not None else listing.keys
    prefixes = listing.prefixes if any(listing.prefixes) else ()  # all empty is no prefix at all
    spread = range(shards) if layout.sharded else (None,)
    partitions, partition_keys, partition_prefixes = [], [], []
    for position, key in enumerate(keys):
        for shard in spread:
            partitions.append(_partition(key, shard))
            partition_keys.append(EVERY if layout.every_key is not None else key)
            if prefixes:
                partition_prefixes.append(prefixes[position])
    return IndexQuery(
        resource_type=listing.resource_type,
        layout=layout,
        partitions=tuple(partitions),
        keys=tuple(partition_keys),
        low=listing.low,
        high=listing.high,
        prefixes=tuple(partition_prefixes),
        ascending=not listing.descending,
    )
