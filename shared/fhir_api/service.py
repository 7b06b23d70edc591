"""The generic resource service: create, read, vread, update, history and search for any resource type.

Encounter and Patient share all of it; a ``ResourceDefinition`` contributes only what differs: its
validation and rules, the attributes and terms its indexes need, and how a search maps to an index.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from fhir_api import errors, fhirjson, fhirtime
from fhir_api.resources.base import IdLookup, ResourceDefinition, SearchPlan
from fhir_api.search import paging
from fhir_api.search.parameters import SearchQuery
from fhir_api.settings import Settings
from fhir_api.store.dynamo import Store
from fhir_api.store.merge import DONE, MergedIndexReader
from fhir_api.store.types import StoredResource, Write

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# A page is filled from at most this many index entries; past it the page ends early with a next link.
MAX_ENTRIES_PER_PAGE = 1000
# Sorting on something the index is not ordered by reads every match first: only this many.
MAX_SORTED_MATCHES = 1000
# Counting (_total=accurate, _summary=count) examines at most this many index entries.
MAX_COUNTED_ENTRIES = 20000


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
    """Collects the matches of one page while remembering the reader's position after each."""

    wanted: int
    matches: list[StoredResource] = field(default_factory=list)
    cursors: dict[str, Any] | None = None


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

    def history(self, resource_id: str, count: int, before: int | None) -> HistoryPage:
        """The versions of a resource, newest first, ``count`` at a time."""
        check_id(resource_id)
        versions, more = self.store.versions(self.resource_type, resource_id, count, before)
        if not versions and before is None:
            raise errors.ResourceNotFound(f"{self.resource_type}/{resource_id} is not known.")
        return HistoryPage(versions, versions[-1].version_id if more and versions else None)

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
        resource = self.definition.validate(document)
        previous = current.document
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

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of the resources matching ``query``."""
        plan = self.definition.plan(query, self.settings)
        query_key = query.query_key(self.resource_type)
        position = paging.verify(query.page, self._secret(), query_key) if query.page else {}
        wants_total = query.count == 0 or query.summary_count or query.total == "accurate"
        if isinstance(plan, IdLookup):
            found = self.store.many(self.resource_type, plan.ids)
            matches = [found[i] for i in plan.ids if i in found and self.definition.matches(found[i], query)]
            shown = 0 if query.summary_count else query.count
            return SearchPage(matches[:shown], len(matches), None)
        if plan.in_memory_sort is not None:
            return self._search_sorted(plan, query, query_key, position)
        total = self._count(plan, query) if wants_total else None
        if query.count == 0 or query.summary_count:
            return SearchPage([], total, None)
        reader = MergedIndexReader(
            self.store,
            self.store.table(plan.table_resource_type),
            plan.index,
            position.get("c"),
            page_size=min(query.count + 1, 100),
        )
        collector = self._collect(reader, plan, query, query.count)
        next_token = None
        cursors = collector.cursors if collector.cursors is not None else reader.cursors()
        if not all(value == DONE for value in cursors.values()):
            next_token = paging.sign(
                {"c": cursors}, self._secret(), query_key, self.settings.page_token_ttl_seconds
            )
        if total is None and next_token is None and not position:
            total = len(collector.matches)
        return SearchPage(collector.matches, total, next_token)

    def _collect(
        self, reader: MergedIndexReader, plan: SearchPlan, query: SearchQuery, wanted: int
    ) -> _Collector:
        """Walk the index in order, fetching candidates in batches, until ``wanted`` match."""
        collector = _Collector(wanted)
        batch: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for entry in reader:
            if self.definition.entry_may_match(entry, query):
                batch.append((entry, reader.cursors()))
            if len(batch) >= wanted - len(collector.matches) or reader.examined >= MAX_ENTRIES_PER_PAGE:
                if self._take(batch, plan, query, collector):
                    return collector
                batch = []
            if reader.examined >= MAX_ENTRIES_PER_PAGE:
                collector.cursors = reader.cursors()
                return collector
        self._take(batch, plan, query, collector)
        collector.cursors = reader.cursors()
        return collector

    def _take(
        self,
        batch: list[tuple[dict[str, Any], dict[str, Any]]],
        plan: SearchPlan,
        query: SearchQuery,
        collector: _Collector,
    ) -> bool:
        """Add the matching resources of ``batch``; True once the page is full."""
        if not batch:
            return False
        owner = plan.index.owner_attribute
        found = self.store.many(self.resource_type, [entry[owner] for entry, _ in batch])
        # When the index entry decided every criterion, the resource need not be parsed again.
        decided = self.definition.index_decides(query)
        for entry, cursors in batch:
            stored = found.get(entry[owner])
            if stored is None or not (decided or self.definition.matches(stored, query)):
                continue
            if not self.definition.first_entry(entry, stored, query):
                continue  # a resource found through two of its terms counts once
            collector.matches.append(stored)
            if len(collector.matches) >= collector.wanted:
                collector.cursors = cursors
                return True
        return False

    def _count(self, plan: SearchPlan, query: SearchQuery) -> int:
        """The number of matches (resources are read only where the index cannot decide)."""
        return len(self._every_match(plan, query, MAX_COUNTED_ENTRIES, "Counting", resources=False))

    def _every_match(
        self, plan: SearchPlan, query: SearchQuery, limit: int, purpose: str, resources: bool
    ) -> dict[str, StoredResource | None]:
        """Every match of the whole search by id, its resource read when ``resources`` (or when the index
        alone cannot decide); SearchTooCostly past ``limit`` index entries."""
        reader = MergedIndexReader(
            self.store, self.store.table(plan.table_resource_type), plan.index, page_size=500
        )
        owner = plan.index.owner_attribute
        decided = not resources and self.definition.index_decides(query)
        matches: dict[str, StoredResource | None] = {}
        batch: list[str] = []

        def take() -> None:
            for stored in self.store.many(self.resource_type, batch).values():
                if self.definition.matches(stored, query):
                    matches[stored.id] = stored
            batch.clear()

        for entry in reader:
            if reader.examined > limit:
                raise errors.SearchTooCostly(
                    f"{purpose} this search would read more than {limit} entries; narrow it "
                    "(subject, status or date)."
                )
            if not self.definition.entry_may_match(entry, query):
                continue
            if decided:
                matches[entry[owner]] = None
                continue
            batch.append(entry[owner])
            if len(batch) >= 100:
                take()
        if batch:
            take()
        return matches

    def _search_sorted(
        self, plan: SearchPlan, query: SearchQuery, query_key: str, position: dict[str, Any]
    ) -> SearchPage:
        """Searches sorted on what the index is not ordered by: every match read, sorted, paged by offset."""
        matches = self._every_match(plan, query, MAX_SORTED_MATCHES, "Sorting", resources=True)
        key, descending = plan.in_memory_sort  # type: ignore[misc]
        ordered = sorted(
            (stored for stored in matches.values() if stored is not None),
            key=lambda stored: (getattr(stored, key), stored.id),
            reverse=descending,
        )
        offset = int(position.get("o", 0))
        page = ordered[offset : offset + query.count]
        following = offset + query.count
        next_token = (
            paging.sign({"o": following}, self._secret(), query_key, self.settings.page_token_ttl_seconds)
            if following < len(ordered) and query.count
            else None
        )
        return SearchPage(page, len(ordered), next_token)

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
