"""The generic resource service: create, read, vread, update, history and search for any resource type.

Encounter and Patient share all of it; a ``ResourceDefinition`` contributes only what differs: its
validation and rules, the attributes and terms its indexes need, and how a search maps to an index.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from fhir_api import errors
from fhir_api.api.response_size import PageRoom
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.resources.base import IdLookup, ResourceDefinition, SearchPlan
from fhir_api.search import paging
from fhir_api.search.parameters import SearchQuery
from fhir_api.settings import Settings
from fhir_api.store.budget import ReadBudget
from fhir_api.store.dynamo import BATCH_GET_LIMIT, Store
from fhir_api.store.merge import DONE, MergedIndexReader
from fhir_api.store.types import StoredResource, Write

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass
class SearchPage:
    """One page of search results."""

    matches: list[StoredResource]
    total: int | None
    next_token: str | None


@dataclass
class HistoryPage:
    """One page of a resource's versions, newest first."""

    versions: list[StoredResource]
    next_before: int | None


@dataclass
class _Collector:
    """Collects the matches of one page, and where the next page starts."""

    wanted: int
    matches: list[StoredResource] = field(default_factory=list)
    cursors: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Candidate:
    """An index entry whose resource may match, with the reader's position before and after it."""

    entry: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]


def check_id(value: str, what: str = "id") -> str:
    """A FHIR id from a URL, or a 400."""
    if not FHIR_ID.fullmatch(value or ""):
        raise errors.InvalidRequest(f"{value!r} is not a valid FHIR {what}.")
    return value


class ResourceService:
    """The interactions of one resource type."""

    def __init__(self, definition: ResourceDefinition, store: Store, settings: Settings) -> None:
        self.definition = definition
        self.store = store
        self.settings = settings
        self.resource_type = definition.resource_type

    # -- instance level ----------------------------------------------------------------------------

    def read(self, resource_id: str) -> StoredResource:
        """The current version, or ResourceNotFound."""
        found = self.store.current(self.resource_type, check_id(resource_id))
        if found is None:
            raise errors.ResourceNotFound(f"{self.resource_type}/{resource_id} is not known.")
        return found

    def vread(self, resource_id: str, version_id: str) -> StoredResource:
        """One version, or ResourceNotFound."""
        check_id(resource_id)
        check_id(version_id, "version id")
        found = (
            self.store.version(self.resource_type, resource_id, int(version_id))
            if version_id.isdigit() and len(version_id) < 12
            else None
        )
        if found is None:
            raise errors.ResourceNotFound(f"{self.resource_type}/{resource_id} has no version {version_id}.")
        return found

    def history(
        self, resource_id: str, count: int, before: int | None, room: PageRoom | None = None
    ) -> HistoryPage:
        """The versions of a resource, newest first, at most ``count`` and no more than ``room`` holds."""
        check_id(resource_id)
        budget = ReadBudget(self.settings.search_read_budget)
        shown: list[StoredResource] = []
        below, more = before, True
        # DynamoDB ends a Query at 1 MB (three large versions): read on until the page is full.
        while more and len(shown) < count and budget.left >= 2:
            versions, more = self.store.versions(
                self.resource_type, resource_id, count - len(shown), below, budget
            )
            if not versions and not shown and before is None:
                raise errors.ResourceNotFound(f"{self.resource_type}/{resource_id} is not known.")
            for stored in versions:
                if room is not None and not room.admit(stored):
                    return HistoryPage(shown, shown[-1].version_id)
                shown.append(stored)
            if not versions:
                break
            below = versions[-1].version_id
        return HistoryPage(shown, shown[-1].version_id if more and shown else None)

    def create(self, document: Any) -> StoredResource:
        """Validate and store a new resource with a server-assigned id, as version 1."""
        resource = self.definition.validate(document)
        self.definition.check_rules(resource, None)
        stored = self._stamp(resource, str(uuid.uuid4()), 1)
        self.store.write(self._write(stored, resource, None, None))
        return stored

    def update(self, resource_id: str, document: Any, if_match: int | None) -> StoredResource:
        """Replace the current version; never silently over a version the client did not see."""
        check_id(resource_id)
        if isinstance(document, dict) and document.get("id") != resource_id:
            raise errors.InvalidRequest(
                f"The resource's id ({document.get('id')!r}) must equal the id in the URL ({resource_id!r}).",
                expression=(f"{self.resource_type}.id",),
            )
        current = self.read(resource_id)
        if if_match is not None and if_match != current.version_id:
            raise errors.PreconditionFailed(
                f"If-Match names version {if_match}, but the current version is {current.version_id}."
            )
        previous = current.document
        resource = self.definition.carry_over(self.definition.validate(document), previous)
        self.definition.check_rules(resource, previous)
        stored = self._stamp(resource, resource_id, current.version_id + 1)
        try:
            self.store.write(self._write(stored, resource, previous, current.version_id))
        except errors.VersionConflict as exc:
            if if_match is not None:
                raise errors.PreconditionFailed(exc.diagnostics) from exc
            raise
        return stored

    # -- search ------------------------------------------------------------------------------------

    def search(self, query: SearchQuery, room: PageRoom | None = None) -> SearchPage:
        """One page of the resources matching ``query``, within the request's read budget and, when
        given, the bytes ``room`` leaves for entries."""
        plan = self.definition.plan(query, self.settings)
        query_key = query.query_key(self.resource_type)
        position = paging.verify(query.page, self._secret(), query_key) if query.page else {}
        wants_total = query.count == 0 or query.summary_count or query.total == "accurate"
        budget = ReadBudget(self.settings.search_read_budget)
        if isinstance(plan, IdLookup):
            return self._search_ids(plan, query, query_key, position, budget, room)
        if plan.in_memory_sort is not None:
            return self._search_sorted(plan, query, query_key, position, budget, room)
        total = None
        if wants_total:
            # A page after the count gets at least half of the budget.
            page_follows = query.count > 0 and not query.summary_count
            counting = ReadBudget(budget.limit // 2 if page_follows else budget.limit)
            total = self._count(plan, query, counting)
            budget.charge(counting.used)
        if query.count == 0 or query.summary_count:
            return SearchPage([], total, None)
        reader = MergedIndexReader(
            self.store,
            self.store.table(plan.table_resource_type),
            plan.index,
            position.get("c"),
            page_size=min(query.count + 1, 100),
            budget=budget,
        )
        collector = self._collect(reader, plan, query, budget, room)
        next_token = None
        if not all(value == DONE for value in collector.cursors.values()):
            next_token = paging.sign(
                {"c": collector.cursors}, self._secret(), query_key, self.settings.page_token_ttl_seconds
            )
        if total is None and next_token is None and not position:
            total = len(collector.matches)
        return SearchPage(collector.matches, total, next_token)

    def _collect(
        self,
        reader: MergedIndexReader,
        plan: SearchPlan,
        query: SearchQuery,
        budget: ReadBudget,
        room: PageRoom | None,
    ) -> _Collector:
        """Walk the index in order, fetching candidates in batches, until the page is full, its bytes
        are spent, or the budget cannot read on; ``cursors`` then say where the next page starts."""
        collector = _Collector(query.count)
        batch: list[_Candidate] = []
        before = reader.cursors()
        for entry in reader:
            after = reader.cursors()
            if self.definition.entry_may_match(entry, query):
                if budget.free < 1:
                    # Nothing is left to fetch this candidate with: the next page starts at it.
                    if not self._take(batch, plan, query, budget, room, collector):
                        collector.cursors = before
                    return collector
                budget.hold(1)
                batch.append(_Candidate(entry, before, after))
            if len(batch) >= collector.wanted - len(collector.matches):
                if self._take(batch, plan, query, budget, room, collector):
                    return collector
                batch = []
            before = after
        if self._take(batch, plan, query, budget, room, collector):
            return collector
        collector.cursors = reader.cursors()
        return collector

    def _take(
        self,
        batch: list[_Candidate],
        plan: SearchPlan,
        query: SearchQuery,
        budget: ReadBudget,
        room: PageRoom | None,
        collector: _Collector,
    ) -> bool:
        """Fetch ``batch`` and add its matching resources; True once the page is full (``cursors`` set)."""
        if not batch:
            return False
        owner = plan.index.owner_attribute
        budget.release(len(batch))
        found = self.store.many(self.resource_type, [candidate.entry[owner] for candidate in batch], budget)
        # When the index entry decided every criterion, the resource need not be parsed again.
        decided = self.definition.index_decides(query)
        for candidate in batch:
            stored = found.get(candidate.entry[owner])
            if stored is None or not (decided or self.definition.matches(stored, query)):
                continue
            if not self.definition.first_entry(candidate.entry, stored, query):
                continue  # a resource found through two of its terms counts once
            if room is not None and not room.admit(stored):
                collector.cursors = candidate.before  # no bytes left: the next page starts at it
                return True
            collector.matches.append(stored)
            if len(collector.matches) >= collector.wanted:
                collector.cursors = candidate.after
                return True
        return False

    def _count(self, plan: SearchPlan, query: SearchQuery, budget: ReadBudget) -> int:
        """The number of matches (resources are read only where the index cannot decide)."""
        return len(self._every_match(plan, query, budget, "Counting", resources=False))

    def _every_match(
        self, plan: SearchPlan, query: SearchQuery, budget: ReadBudget, purpose: str, resources: bool
    ) -> dict[str, StoredResource | None]:
        """Every match of the whole search by id, its resource read when ``resources`` (or when the index
        alone cannot decide); SearchTooCostly when that would read more than ``budget`` allows."""
        reader = MergedIndexReader(
            self.store, self.store.table(plan.table_resource_type), plan.index, page_size=500, budget=budget
        )
        owner = plan.index.owner_attribute
        decided = not resources and self.definition.index_decides(query)
        matches: dict[str, StoredResource | None] = {}
        batch: list[str] = []
        leave_out = "_total=accurate, _summary=count and _count=0" if purpose == "Counting" else "_sort"
        too_costly = errors.SearchTooCostly(
            f"{purpose} this search would read more than {budget.limit} items from the database; narrow "
            f"it (subject, status or date) or leave out {leave_out}."
        )

        def take() -> None:
            budget.release(len(batch))
            for stored in self.store.many(self.resource_type, batch, budget).values():
                if self.definition.matches(stored, query):
                    matches[stored.id] = stored
            batch.clear()

        for entry in reader:
            if not self.definition.entry_may_match(entry, query):
                continue
            if decided:
                matches[entry[owner]] = None
                continue
            if budget.free < 1:
                take()
            if budget.free < 1:
                raise too_costly
            budget.hold(1)
            batch.append(entry[owner])
            if len(batch) >= BATCH_GET_LIMIT:
                take()
        if reader.stopped_by_budget:
            raise too_costly
        if batch:
            take()
        return matches

    def _search_sorted(
        self,
        plan: SearchPlan,
        query: SearchQuery,
        query_key: str,
        position: dict[str, Any],
        budget: ReadBudget,
        room: PageRoom | None,
    ) -> SearchPage:
        """Searches sorted on what the index is not ordered by: every match read, sorted, paged by offset."""
        matches = self._every_match(plan, query, budget, "Sorting", resources=True)
        key, descending = plan.in_memory_sort  # type: ignore[misc]
        ordered = sorted(
            (stored for stored in matches.values() if stored is not None),
            key=lambda stored: (getattr(stored, key), stored.id),
            reverse=descending,
        )
        return self._offset_page(ordered, query, query_key, position, room)

    def _search_ids(
        self,
        plan: IdLookup,
        query: SearchQuery,
        query_key: str,
        position: dict[str, Any],
        budget: ReadBudget,
        room: PageRoom | None,
    ) -> SearchPage:
        """Searches by ``_id``: the resources read by id, paged by offset."""
        found = self.store.many(self.resource_type, plan.ids, budget)
        matches = [found[i] for i in plan.ids if i in found and self.definition.matches(found[i], query)]
        if query.summary_count:
            return SearchPage([], len(matches), None)
        return self._offset_page(matches, query, query_key, position, room)

    def _offset_page(
        self,
        every: list[StoredResource],
        query: SearchQuery,
        query_key: str,
        position: dict[str, Any],
        room: PageRoom | None,
    ) -> SearchPage:
        """The page of ``every`` match (all in hand) that starts at the token's offset."""
        offset = int(position.get("o", 0))
        page: list[StoredResource] = []
        for stored in every[offset : offset + query.count]:
            if room is not None and not room.admit(stored):
                break
            page.append(stored)
        following = offset + len(page)
        next_token = (
            paging.sign({"o": following}, self._secret(), query_key, self.settings.page_token_ttl_seconds)
            if following < len(every) and query.count
            else None
        )
        return SearchPage(page, len(every), next_token)

    def conditional_match(self, criteria: str) -> StoredResource | None:
        """FHIR conditional create (If-None-Exist): the one existing match, None when there is none."""
        from urllib.parse import parse_qs

        from fhir_api.search.parameters import parse_query

        if not self.definition.conditional_create:
            raise errors.InvalidRequest(f"{self.resource_type} does not support If-None-Exist.")
        parsed = parse_qs(criteria.lstrip("?"), keep_blank_values=True)
        query = parse_query(parsed, self.definition.search_parameters, strict=True)
        if not query.groups:
            raise errors.InvalidRequest("If-None-Exist needs at least one search criterion.")
        query.count = 2
        page = self.search(query)
        if len(page.matches) > 1:
            raise errors.PreconditionFailed(f"If-None-Exist ({criteria}) matches more than one resource.")
        return page.matches[0] if page.matches else None

    # -- helpers -----------------------------------------------------------------------------------

    def _stamp(self, resource: dict[str, Any], resource_id: str, version_id: int) -> StoredResource:
        """The stored form: the resource as accepted, with the server's id and meta first."""
        last_updated = fhirtime.canonical_now()
        document = {
            "resourceType": self.resource_type,
            "id": resource_id,
            "meta": {"versionId": str(version_id), "lastUpdated": last_updated},
            **{name: value for name, value in resource.items() if name not in ("resourceType", "id", "meta")},
        }
        return StoredResource(
            self.resource_type, resource_id, version_id, last_updated, fhirjson.dumps(document)
        )

    def _write(
        self,
        stored: StoredResource,
        resource: dict[str, Any],
        previous: dict[str, Any] | None,
        expected_version: int | None,
    ) -> Write:
        new_terms = {term.key: term for term in self.definition.terms(resource, stored.id)}
        old_terms = (
            {term.key: term for term in self.definition.terms(previous, stored.id)} if previous else {}
        )
        return Write(
            resource=stored,
            index_attributes=self.definition.index_attributes(resource, stored.id, self.settings),
            expected_version=expected_version,
            references=self.definition.references(resource),
            terms_added=[term for key, term in new_terms.items() if old_terms.get(key) != term],
            terms_removed=[term for key, term in old_terms.items() if key not in new_terms],
        )

    def _secret(self) -> str:
        from fhir_api.store.secrets import page_token_secret

        return page_token_secret(self.settings)
