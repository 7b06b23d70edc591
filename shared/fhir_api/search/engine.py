"""Search execution: from a parsed query to one page of matching resources, within the request's read
budget and the bytes the response has room for.

A resource's definition plans the search (``IdLookup`` or ``SearchPlan``); this module runs the plan.
A listing is read in order through ``MergedIndexReader``; every entry that may match is fetched in
batches and checked on the resource, until the page is full, its bytes are spent, or the budget cannot
read on; the next page starts exactly where this one stopped (a signed page token). Totals, and sorts
the listing is not ordered by, read every match (``SearchTooCostly`` past the budget); reads by id and
in-memory sorts page by offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir_api import errors
from fhir_api.search import paging
from fhir_api.search.parameters import SearchQuery
from fhir_api.settings import Settings
from fhir_api.store.budget import ReadBudget
from fhir_api.store.dynamo import BATCH_GET_LIMIT, Store
from fhir_api.store.merge import DONE, MergedIndexReader
from fhir_api.store.types import ListedEntry, StoredResource

if TYPE_CHECKING:
    from fhir_api.api.response_size import PageRoom
    from fhir_api.resources.base import IdLookup, ResourceDefinition, SearchPlan


@dataclass
class SearchPage:
    """One page of search results."""

    matches: list[StoredResource]
    total: int | None
    next_token: str | None
    # _include/_revinclude: the resources the page's matches bring along, and why some were left out.
    included: list[StoredResource] = field(default_factory=list)
    included_left_out: str | None = None


@dataclass
class _Collector:
    """Collects the matches of one page, and where the next page starts."""

    wanted: int
    matches: list[StoredResource] = field(default_factory=list)
    cursors: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Candidate:
    """A listed entry whose resource may match, with the reader's position before and after it."""

    entry: ListedEntry
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass
class _SearchRun:
    """One search as it runs: the query, where its page starts, and what it may still read."""

    query: SearchQuery
    query_key: str
    position: dict[str, Any]
    budget: ReadBudget
    room: PageRoom | None


class SearchEngine:
    """Runs the searches of one resource type."""

    def __init__(self, definition: ResourceDefinition, store: Store, settings: Settings) -> None:
        self.definition = definition
        self.store = store
        self.settings = settings
        self.resource_type = definition.resource_type

    def search(
        self, query: SearchQuery, room: PageRoom | None = None, budget: ReadBudget | None = None
    ) -> SearchPage:
        """One page of the resources matching ``query``, within the request's read ``budget`` (a new one
        when not given) and, when given, the bytes ``room`` leaves for entries."""
        from fhir_api.resources.base import IdLookup

        plan = self.definition.plan(query)
        query_key = query.query_key(self.resource_type)
        position = paging.verify(query.page, self._secret(), query_key) if query.page else {}
        budget = budget or ReadBudget(self.settings.search_read_budget)
        request = _SearchRun(query, query_key, position, budget, room)
        if isinstance(plan, IdLookup):
            return self._search_ids(plan, request)
        if plan.in_memory_sort is not None:
            return self._search_sorted(plan, request)
        return self._search_listing(plan, request)

    # -- in the listing's order, resumed at the page token's cursors --------------------------------

    def _search_listing(self, plan: SearchPlan, request: _SearchRun) -> SearchPage:
        query, budget = request.query, request.budget
        total_only = query.count == 0 or query.summary_count
        total = None
        if total_only or query.total == "accurate":
            # A page after the count gets at least half of the budget.
            counting = ReadBudget(budget.limit if total_only else budget.limit // 2)
            total = len(self._every_match(plan, query, counting, "Counting", resources=False))
            budget.charge(counting.used)
        if total_only:
            return SearchPage([], total, None)
        reader = MergedIndexReader(
            self.store,
            plan.listing,
            request.position.get("c"),
            page_size=min(query.count + 1, 100),
            budget=budget,
        )
        collector = self._collect(reader, request)
        next_token = None
        if not all(value == DONE for value in collector.cursors.values()):
            next_token = self._sign({"c": collector.cursors}, request)
        if total is None and next_token is None and not request.position:
            total = len(collector.matches)
        return SearchPage(collector.matches, total, next_token)

    def _collect(self, reader: MergedIndexReader, request: _SearchRun) -> _Collector:
        """Walk the listing in order, fetching candidates in batches, until the page is full, its bytes
        are spent, or the budget cannot read on; ``cursors`` then say where the next page starts."""
        collector = _Collector(request.query.count)
        budget = request.budget
        batch: list[_Candidate] = []
        before = reader.cursors()
        for entry in reader:
            after = reader.cursors()
            if self.definition.entry_may_match(entry, request.query):
                if budget.free < 1:
                    # Nothing is left to fetch this candidate with: the next page starts at it.
                    if not self._take(batch, request, collector):
                        collector.cursors = before
                    return collector
                budget.hold(1)
                batch.append(_Candidate(entry, before, after))
            if len(batch) >= collector.wanted - len(collector.matches):
                if self._take(batch, request, collector):
                    return collector
                batch = []
            before = after
        if self._take(batch, request, collector):
            return collector
        collector.cursors = reader.cursors()
        return collector

    def _take(self, batch: list[_Candidate], request: _SearchRun, collector: _Collector) -> bool:
        """Fetch ``batch`` and add its matching resources; True once the page is full (``cursors`` set)."""
        if not batch:
            return False
        query, room = request.query, request.room
        request.budget.release(len(batch))
        found = self.store.many(
            self.resource_type, [candidate.entry.owner for candidate in batch], request.budget
        )
        # When the listed entry decided every criterion, the resource need not be parsed again.
        decided = self.definition.index_decides(query)
        for candidate in batch:
            stored = found.get(candidate.entry.owner)
            if stored is None or not (decided or self.definition.matches(stored, query)):
                continue
            if not self.definition.is_first_entry_of_resource(candidate.entry, stored, query):
                continue  # a resource found through two of its terms counts once
            if room is not None and not room.admit(stored):
                collector.cursors = candidate.before  # no bytes left: the next page starts at it
                return True
            collector.matches.append(stored)
            if len(collector.matches) >= collector.wanted:
                collector.cursors = candidate.after
                return True
        return False

    # -- every match at once: totals, in-memory sorts, chains -------------------------------------

    def matching_ids(
        self, query: SearchQuery, budget: ReadBudget, most: int, too_costly: errors.SearchTooCostly
    ) -> tuple[str, ...]:
        """The ids of every match of ``query`` (the target of a chain), sorted; ``too_costly`` when
        there are more than ``most`` or finding them would read more than ``budget`` allows."""
        from fhir_api.resources.base import IdLookup

        plan = self.definition.plan(query)
        if isinstance(plan, IdLookup):
            found = self.store.many(self.resource_type, plan.ids, budget)
            ids = [i for i in plan.ids if i in found and self.definition.matches(found[i], query)]
        else:
            ids = list(self._every_match(plan, query, budget, "", False, too_costly, most))
        if len(ids) > most:
            raise too_costly
        return tuple(sorted(ids))

    def _every_match(
        self,
        plan: SearchPlan,
        query: SearchQuery,
        budget: ReadBudget,
        purpose: str,
        resources: bool,
        too_costly: errors.SearchTooCostly | None = None,
        most: int | None = None,
    ) -> dict[str, StoredResource | None]:
        """Every match of the whole search by id, its resource read when ``resources`` (or when the
        listed entry alone cannot decide); SearchTooCostly (``too_costly`` when given) when that would
        read more than ``budget`` allows or find more than ``most`` matches."""
        reader = MergedIndexReader(self.store, plan.listing, page_size=500, budget=budget)
        decided = not resources and self.definition.index_decides(query)
        matches: dict[str, StoredResource | None] = {}
        batch: list[str] = []
        leave_out = "_total=accurate, _summary=count and _count=0" if purpose == "Counting" else "_sort"
        refusal = too_costly or errors.SearchTooCostly(
            f"{purpose} this search would read more than {budget.limit} items from the database; narrow "
            f"it (subject, status or date) or leave out {leave_out}."
        )

        def take() -> None:
            budget.release(len(batch))
            for stored in self.store.many(self.resource_type, batch, budget).values():
                if self.definition.matches(stored, query):
                    matches[stored.id] = stored
            batch.clear()
            if most is not None and len(matches) > most:
                raise refusal

        for entry in reader:
            if not self.definition.entry_may_match(entry, query):
                continue
            if decided:
                matches[entry.owner] = None
                if most is not None and len(matches) > most:
                    raise refusal
                continue
            if budget.free < 1:
                take()
            if budget.free < 1:
                raise refusal
            budget.hold(1)
            batch.append(entry.owner)
            if len(batch) >= BATCH_GET_LIMIT:
                take()
        if reader.stopped_by_budget:
            raise refusal
        if batch:
            take()
        return matches

    def _search_sorted(self, plan: SearchPlan, request: _SearchRun) -> SearchPage:
        """Searches sorted on what the listing is not ordered by: every match read, sorted, paged by
        offset."""
        matches = self._every_match(plan, request.query, request.budget, "Sorting", resources=True)
        key, descending = plan.in_memory_sort  # type: ignore[misc]
        ordered = sorted(
            (stored for stored in matches.values() if stored is not None),
            key=lambda stored: (getattr(stored, key), stored.id),
            reverse=descending,
        )
        return self._offset_page(ordered, request)

    # -- by id -------------------------------------------------------------------------------------

    def _search_ids(self, plan: IdLookup, request: _SearchRun) -> SearchPage:
        """Searches by ``_id``: the resources read by id, paged by offset."""
        query = request.query
        found = self.store.many(self.resource_type, plan.ids, request.budget)
        matches = [found[i] for i in plan.ids if i in found and self.definition.matches(found[i], query)]
        if query.summary_count:
            return SearchPage([], len(matches), None)
        return self._offset_page(matches, request)

    def _offset_page(self, every: list[StoredResource], request: _SearchRun) -> SearchPage:
        """The page of ``every`` match (all in hand) that starts at the token's offset."""
        count, room = request.query.count, request.room
        offset = int(request.position.get("o", 0))
        page: list[StoredResource] = []
        for stored in every[offset : offset + count]:
            if room is not None and not room.admit(stored):
                break
            page.append(stored)
        following = offset + len(page)
        next_token = self._sign({"o": following}, request) if following < len(every) and count else None
        return SearchPage(page, len(every), next_token)

    # -- page tokens -------------------------------------------------------------------------------

    def _sign(self, position: dict[str, Any], request: _SearchRun) -> str:
        """A page token for ``position``, bound to the request's query."""
        return paging.sign(position, self._secret(), request.query_key, self.settings.page_token_ttl_seconds)

    def _secret(self) -> str:
        from fhir_api.store.secrets import page_token_secret

        return page_token_secret(self.settings)
