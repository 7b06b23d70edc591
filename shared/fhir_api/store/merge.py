"""Reading several partitions of one index as one ordered stream.

Sharded indexes (``finished#0..N-1``, ``all#0..N-1``) and OR-ed values (``subject=a,b``) put the
entries of one search in several partitions. Each partition is read in pages (the first pages in
parallel) and merged in sort-key order; after every entry the reader knows, per partition, where to
resume, so a page token can carry the exact position.

With a read budget, no Query reads more than the budget has free. The merge needs the next entry of
every partition to know which comes first: when a drained partition cannot be read further, the
reader stops (``stopped_by_budget``) after the entry in hand, and its cursors resume exactly there.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir_api import errors
from fhir_api.store.budget import ReadBudget
from fhir_api.store.dynamo import Store
from fhir_api.store.indexes import index_query
from fhir_api.store.types import ListedEntry, Listing

DONE = "done"  # a cursor value: nothing left in that partition


@dataclass
class _Partition:
    name: str
    resume: Any  # where the next page starts: None (the beginning), a DynamoDB key, or DONE
    buffer: list[ListedEntry] = field(default_factory=list)
    next_key: Any = None  # DynamoDB's LastEvaluatedKey after the buffer; None when it was the last page
    loaded: bool = False

    @property
    def cursor(self) -> Any:
        if self.resume == DONE or (self.loaded and not self.buffer and self.next_key is None):
            return DONE
        return self.resume


class _Descending:
    """Wraps a sort key so that heapq pops the greatest first."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value


class MergedIndexReader:
    """Entries of ``listing`` over all the partitions of its index, in sort-key order, resumable from
    ``cursors``."""

    def __init__(
        self,
        store: Store,
        listing: Listing,
        cursors: dict[str, Any] | None = None,
        page_size: int = 50,
        budget: ReadBudget | None = None,
    ) -> None:
        self._store = store
        self._query = query = index_query(listing, store.settings.index_shards)
        self._page_size = page_size
        self._budget = budget
        self.stopped_by_budget = False
        cursors = cursors or {}
        # Partitions are named by position: two may share a key value with different prefixes.
        self._partitions = {
            str(position): _Partition(str(position), cursors.get(str(position)))
            for position in range(len(query.partitions))
        }

    def cursors(self) -> dict[str, Any]:
        """Where each partition resumes after the entries handed out so far."""
        return {partition.name: partition.cursor for partition in self._partitions.values()}

    def __iter__(self) -> Iterator[ListedEntry]:
        live = [partition for partition in self._partitions.values() if partition.resume != DONE]
        if not live:
            return
        self._fill(live, first=True, limit=self._first_limit(len(live)))
        heap: list[tuple[Any, str, int]] = []
        sequence = 0  # keeps heap entries comparable when sort keys tie
        for partition in live:
            if partition.buffer:
                heap.append((self._order(partition.buffer[0]), partition.name, sequence))
                sequence += 1
        heapq.heapify(heap)
        while heap and not self.stopped_by_budget:
            _, name, _ = heapq.heappop(heap)
            partition = self._partitions[name]
            entry = partition.buffer.pop(0)
            partition.resume = entry.resume
            if not partition.buffer and partition.next_key is not None:
                limit = self._page_size
                if self._budget is not None:
                    # One free item stays for fetching the resource of the entry in hand.
                    limit = min(limit, self._budget.free - 1)
                if limit < 1:
                    self.stopped_by_budget = True  # this entry is still the smallest: hand it out
                else:
                    self._fill([partition], first=False, limit=limit)
            if partition.buffer:
                heapq.heappush(heap, (self._order(partition.buffer[0]), name, sequence))
                sequence += 1
            yield entry

    def _order(self, entry: ListedEntry) -> Any:
        return entry.order if self._query.ascending else _Descending(entry.order)

    def _first_limit(self, partitions: int) -> int:
        """Entries to read from each partition at first: at most half of what the budget has free,
        so that resources found in them can still be fetched."""
        if self._budget is None:
            return self._page_size
        if self._budget.free < partitions + 1:
            raise errors.SearchTooCostly(
                f"This search reads {partitions} index partitions (each OR-ed value of the indexed "
                f"parameter, times the index's shards), more than the {self._budget.limit} items a "
                "request may read allow; give fewer values."
            )
        return max(1, min(self._page_size, self._budget.free // (2 * partitions)))

    def _fill(self, partitions: list[_Partition], first: bool, limit: int) -> None:
        def read(partition: _Partition) -> None:
            start = partition.resume if first else partition.next_key
            entries, next_key = self._store.query_partition(
                self._query, int(partition.name), start, limit, self._budget
            )
            partition.buffer.extend(entries)
            partition.next_key = next_key
            partition.loaded = True

        if not partitions:
            return  # a search that can match nothing (contradictory dates, no valid code) reads nothing
        if len(partitions) == 1:
            read(partitions[0])
            return
        # Imported here: a one-partition search (a patient's encounters) never needs threads.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(16, len(partitions))) as pool:
            list(pool.map(read, partitions))
