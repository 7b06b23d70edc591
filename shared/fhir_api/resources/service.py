"""The generic resource service: create, read, vread, update, history and search for any resource type.

Encounter and Patient share all of it; a ``ResourceDefinition`` contributes only what differs: its
validation and rules, the attributes and terms its indexes need, and how a search maps to an index.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fhir_api import errors
from fhir_api.api.response_size import PageRoom
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.fhir.ids import FHIR_ID
from fhir_api.resources.base import ResourceDefinition
from fhir_api.search.engine import SearchEngine, SearchPage
from fhir_api.search.parameters import SearchQuery
from fhir_api.settings import Settings
from fhir_api.store.budget import ReadBudget
from fhir_api.store.dynamo import Store
from fhir_api.store.types import StoredResource, Write, tombstone

# How many referencing resources a refused delete names (the count says how many there are).
REFERRERS_NAMED = 5


@dataclass
class HistoryPage:
    """One page of a resource's versions, newest first."""

    versions: list[StoredResource]
    next_before: int | None


def check_id(value: str, what: str = "id") -> str:
    """A FHIR id from a URL, or a 400."""
    if not FHIR_ID.fullmatch(value or ""):
        raise errors.InvalidRequest(f"{value!r} is not a valid FHIR {what}.")
    return value


def _check_if_match(if_match: int | None, current: StoredResource) -> None:
    """PreconditionFailed when If-Match names another version than the current one."""
    if if_match is not None and if_match != current.version_id:
        raise errors.PreconditionFailed(
            f"If-Match names version {if_match}, but the current version is {current.version_id}."
        )


class ResourceService:
    """The interactions of one resource type."""

    def __init__(self, definition: ResourceDefinition, store: Store, settings: Settings) -> None:
        self.definition = definition
        self.store = store
        self.settings = settings
        self.resource_type = definition.resource_type
        self.engine = SearchEngine(definition, store, settings)

    # -- instance level ----------------------------------------------------------------------------

    def read(self, resource_id: str) -> StoredResource:
        """The current version; ResourceNotFound, or ResourceGone when it was deleted."""
        found = self._current(resource_id)
        if found.deleted:
            raise errors.ResourceGone(
                f"{self.resource_type}/{resource_id} was deleted (version {found.version_id}, "
                f"{found.last_updated}); its earlier versions stay readable at _history."
            )
        return found

    def _current(self, resource_id: str) -> StoredResource:
        """The current version, a tombstone included; ResourceNotFound when the id was never used."""
        found = self.store.current(self.resource_type, check_id(resource_id))
        if found is None:
            raise errors.ResourceNotFound(f"{self.resource_type}/{resource_id} is not known.")
        return found

    def vread(self, resource_id: str, version_id: str) -> StoredResource:
        """One version (the current one or an older one's copy), or ResourceNotFound."""
        check_id(resource_id)
        check_id(version_id, "version id")
        found = (
            self.store.version(self.resource_type, resource_id, int(version_id))
            if version_id.isdigit() and len(version_id) < 12
            else None
        )
        if found is None:
            raise errors.ResourceNotFound(f"{self.resource_type}/{resource_id} has no version {version_id}.")
        if found.deleted:
            raise errors.ResourceGone(
                f"Version {version_id} of {self.resource_type}/{resource_id} is its deletion."
            )
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
        return self.commit(self.prepare_create(document))

    def update(self, resource_id: str, document: Any, if_match: int | None) -> StoredResource:
        """Replace the current version; never silently over a version the client did not see."""
        return self.commit(self.prepare_update(resource_id, document, if_match), if_match)

    def prepare_create(self, document: Any, resource_id: str | None = None) -> Write:
        """The write that stores ``document`` as version 1 of a new resource (a server-assigned id unless
        ``resource_id`` is given), validated and checked; nothing is stored until it is committed."""
        resource = self.definition.validate(document)
        self.definition.check_rules(resource, None)
        stored = self._stamp(resource, resource_id or str(uuid.uuid4()), 1)
        return self._write(stored, resource, None, None)

    def prepare_update(self, resource_id: str, document: Any, if_match: int | None) -> Write:
        """The write that replaces the current version of ``resource_id`` with ``document``, validated and
        checked against it; PreconditionFailed when ``if_match`` names another version."""
        check_id(resource_id)
        if isinstance(document, dict) and document.get("id") != resource_id:
            raise errors.InvalidRequest(
                f"The resource's id ({document.get('id')!r}) must equal the id in the URL ({resource_id!r}).",
                expression=(f"{self.resource_type}.id",),
            )
        current = self._current(resource_id)
        _check_if_match(if_match, current)
        # An update of a deleted resource brings it back as a new version, checked as a create is.
        previous = None if current.deleted else current.document
        resource = self.definition.validate(document)
        if previous is not None:
            resource = self.definition.carry_over(resource, previous)
        self.definition.check_rules(resource, previous)
        stored = self._stamp(resource, resource_id, current.version_id + 1)
        return self._write(stored, resource, previous, current)

    def prepare_conditional_update(
        self, condition: str, document: Any, if_match: int | None, base_url: str = ""
    ) -> tuple[Write, bool]:
        """FHIR's conditional update (``PUT [type]?criteria``): the write, and whether it creates.

        No match creates the resource (a body ``id`` is refused: this server does not let clients choose
        ids); one match updates it (a body ``id`` must be the match's); more than one is 412. The
        criteria come as ``find_by_condition`` reads them.
        """
        if not self.definition.conditional_update:
            raise errors.InvalidRequest(f"{self.resource_type} does not support conditional update.")
        matches = self.find_by_condition(condition, base_url)
        if len(matches) > 1:
            raise errors.PreconditionFailed(
                f"The condition ({condition}) matches more than one {self.resource_type}; "
                "narrow it so that it names one."
            )
        body_id = document.get("id") if isinstance(document, dict) else None
        if not matches:
            if if_match is not None:
                raise errors.PreconditionFailed(
                    f"If-Match names version {if_match}, but no {self.resource_type} matches ({condition})."
                )
            if body_id is not None:
                raise errors.InvalidRequest(
                    f"No {self.resource_type} matches ({condition}) and the body names id {body_id!r}: this "
                    "server assigns the ids of new resources. Leave the id out to create the resource.",
                    expression=(f"{self.resource_type}.id",),
                )
            return self.prepare_create(document), True
        match = matches[0]
        if body_id is not None and body_id != match.id:
            raise errors.InvalidRequest(
                f"The body's id ({body_id!r}) is not the id of the {self.resource_type} the condition "
                f"matches ({match.id!r}).",
                expression=(f"{self.resource_type}.id",),
            )
        if isinstance(document, dict):
            document = {**document, "id": match.id}
        return self.prepare_update(match.id, document, if_match), False

    def conditional_update(
        self, condition: str, document: Any, if_match: int | None, base_url: str = ""
    ) -> tuple[StoredResource, bool]:
        """Run a conditional update: the version stored, and whether it was created."""
        write, created = self.prepare_conditional_update(condition, document, if_match, base_url)
        return self.commit(write, if_match), created

    def prepare_delete(self, resource_id: str, if_match: int | None) -> Write:
        """The write that deletes ``resource_id``: a tombstone as its next version, its index attributes
        and terms (and so its identifier claims) gone. ResourceNotFound for an id never used,
        ResourceGone for one already deleted, PreconditionFailed when ``if_match`` is not current,
        ResourceInUse while other resources still reference it."""
        current = self._current(resource_id)
        if current.deleted:
            raise errors.ResourceGone(f"{self.resource_type}/{resource_id} is already deleted.")
        _check_if_match(if_match, current)
        self._check_unreferenced(resource_id)
        stored = tombstone(self.resource_type, resource_id, current.version_id + 1, fhirtime.canonical_now())
        return Write(
            resource=stored,
            index_attributes={},
            superseded=current,
            terms_removed=self.definition.terms(current.document, resource_id),
        )

    def delete(self, resource_id: str, if_match: int | None) -> StoredResource:
        """Delete ``resource_id`` (see ``prepare_delete``); the tombstone stored."""
        return self.commit(self.prepare_delete(resource_id, if_match), if_match)

    def _check_unreferenced(self, resource_id: str) -> None:
        """ResourceInUse naming the first referrers, and how many, while any resource references it."""
        for listing in self.definition.referrers(resource_id):
            budget = ReadBudget(self.settings.search_read_budget)
            owners, complete = self.store.list_owners(listing, budget)
            if owners:
                named = ", ".join(f"{listing.resource_type}/{owner}" for owner in owners[:REFERRERS_NAMED])
                if len(owners) > REFERRERS_NAMED:
                    named += ", ..."
                count = f"{len(owners)}" if complete else f"at least {len(owners)}"
                raise errors.ResourceInUse(
                    f"{self.resource_type}/{resource_id} is still referenced by {count} "
                    f"{listing.resource_type} resource(s) ({named}); delete them or point them at "
                    "another patient first.",
                    expression=(f"{listing.resource_type}.subject",),
                )

    def commit(self, write: Write, if_match: int | None = None) -> StoredResource:
        """Land a prepared write; a version changed since it was read is 412 when the client named the
        version it saw (If-Match), else 409."""
        try:
            self.store.write(write)
        except errors.VersionConflict as exc:
            if if_match is not None:
                raise errors.PreconditionFailed(exc.diagnostics) from exc
            raise
        return write.resource

    # -- search ------------------------------------------------------------------------------------

    def search(self, query: SearchQuery, room: PageRoom | None = None) -> SearchPage:
        """One page of the resources matching ``query``, within the request's read budget and, when
        given, the bytes ``room`` leaves for entries (``search.engine`` runs it)."""
        return self.engine.search(query, room)

    def conditional_match(self, criteria: str, base_url: str = "") -> StoredResource | None:
        """FHIR conditional create (If-None-Exist): the one existing match, None when there is none."""
        if not self.definition.conditional_create:
            raise errors.InvalidRequest(f"{self.resource_type} does not support If-None-Exist.")
        matches = self.find_by_condition(criteria, base_url)
        if len(matches) > 1:
            raise errors.PreconditionFailed(f"If-None-Exist ({criteria}) matches more than one resource.")
        return matches[0] if matches else None

    def find_by_condition(self, condition: str, base_url: str = "") -> list[StoredResource]:
        """The resources a conditional interaction's search criteria name, at most two (one is a match,
        two are too many). The criteria come as clients write them: ``identifier=s|v``, ``?identifier=…``,
        ``Encounter?identifier=…`` or the full URL ``[base]/Encounter?identifier=…``; strict handling."""
        from urllib.parse import parse_qs

        from fhir_api.search.parameters import parse_query

        query_text = self._condition_query(condition.strip(), base_url)
        parsed = parse_qs(query_text, keep_blank_values=True)
        query = parse_query(parsed, self.definition.search_parameters, strict=True)
        if not query.groups:
            raise errors.InvalidRequest(
                f"The condition {condition!r} names no search criterion; a conditional interaction needs one."
            )
        query.count = 2
        return list(self.search(query).matches)

    def _condition_query(self, condition: str, base_url: str) -> str:
        """The query string of a condition, after checking the type (and base) it names."""
        target, mark, query_text = condition.partition("?")
        if not mark:
            return target  # no "?": the condition is the query itself
        target = target.rstrip("/")
        if target.startswith(("http://", "https://")):
            base, _, target = target.rpartition("/")
            if base_url and base.rstrip("/") != base_url.rstrip("/"):
                raise errors.InvalidRequest(
                    f"The condition {condition!r} names another server; use {base_url}/{self.resource_type}?…"
                )
        if target not in ("", self.resource_type):
            raise errors.InvalidRequest(
                f"The condition {condition!r} names {target}, not {self.resource_type}."
            )
        return query_text

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
        superseded: StoredResource | None,
    ) -> Write:
        new_terms = {term.key: term for term in self.definition.terms(resource, stored.id)}
        old_terms = (
            {term.key: term for term in self.definition.terms(previous, stored.id)} if previous else {}
        )
        return Write(
            resource=stored,
            index_attributes=self.definition.index_attributes(resource, stored.id, self.settings),
            superseded=superseded,
            references=self.definition.references(resource),
            terms_added=[term for key, term in new_terms.items() if old_terms.get(key) != term],
            terms_removed=[term for key, term in old_terms.items() if key not in new_terms],
        )
