"""The generic resource service: create, read, vread, update, history and search for any resource type.

Encounter and Patient share all of it; a ``ResourceDefinition`` contributes only what differs: its
validation and rules, the attributes and terms its indexes need, and how a search maps to an index.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from fhir_api import errors
from fhir_api.api.response_size import PageRoom
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.fhir.ids import FHIR_ID
from fhir_api.resources.base import ResourceDefinition
from fhir_api.search.engine import SearchEngine, SearchPage
from fhir_api.search.parameters import MAX_CHAINED_MATCHES, MAX_REVINCLUDED, SearchQuery
from fhir_api.settings import Settings
from fhir_api.store.budget import ReadBudget
from fhir_api.store.dynamo import Store
from fhir_api.store.indexes import patient_attribute
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


def write_conflict(error: errors.ApiError, if_match: int | None) -> errors.ApiError:
    """The answer to a write that found its version changed: 412 when the client named the version it
    saw (If-Match), else the 409 itself; any other error as it is."""
    if isinstance(error, errors.VersionConflict) and if_match is not None:
        return errors.PreconditionFailed(error.diagnostics)
    return error


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
        # A deleted resource's tombstone is current too: an update brings it back as a new version.
        current = self._current(resource_id)
        _check_if_match(if_match, current)
        return self._replacement(current, document)

    def prepare_patch(
        self, resource_id: str, patch: list[Any] | dict[str, Any], if_match: int | None
    ) -> Write:
        """The write that applies ``patch`` to the current version of ``resource_id``: a list is a JSON
        Patch (RFC 6902), an object a JSON Merge Patch (RFC 7386). The result goes through the update's
        validation, rules and lifecycle; a patch that cannot be applied or leaves an invalid resource is
        422, one that changes ``id`` or ``resourceType`` too. Nothing is stored until it is committed."""
        from fhir_api.fhir.patching import apply_json_patch, apply_merge_patch

        current = self._current_matching(check_id(resource_id), if_match)
        previous = current.document
        patched = (
            apply_json_patch(previous, patch)
            if isinstance(patch, list)
            else apply_merge_patch(previous, patch)
        )
        size = len(fhirjson.dumps(patched).encode("utf-8"))
        if size > self.settings.max_body_bytes:
            raise errors.PayloadTooLarge(
                f"The patched resource would be {size} bytes; the limit is {self.settings.max_body_bytes}."
            )
        for element in ("resourceType", "id"):
            if patched.get(element) != previous.get(element):
                raise errors.UnprocessablePatch(
                    f"A patch may not change {element} (it would be {patched.get(element)!r}).",
                    expression=(f"{self.resource_type}.{element}",),
                )
        try:
            return self._replacement(current, patched)
        except errors.InvalidRequest as exc:
            # The patch was well-formed; the resource it leaves is not: FHIR's 422 for PATCH.
            raise errors.UnprocessablePatch(
                f"The patched resource is not valid: {exc.diagnostics}", exc.expression, exc.issues
            ) from exc

    def _current_matching(self, resource_id: str, if_match: int | None) -> StoredResource:
        """The current version, or PreconditionFailed when ``if_match`` names another one."""
        current = self.read(resource_id)
        _check_if_match(if_match, current)
        return current

    def _replacement(self, current: StoredResource, document: Any) -> Write:
        """The write of ``document`` as the version after ``current``, validated and checked against it."""
        # An update of a deleted resource brings it back as a new version, checked as a create is.
        previous = None if current.deleted else current.document
        resource = self.definition.validate(document)
        if previous is not None:
            resource = self.definition.carry_over(resource, previous)
        self.definition.check_rules(resource, previous)
        stored = self._stamp(resource, current.id, current.version_id + 1)
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
            raise write_conflict(exc, if_match) from exc
        return write.resource

    def validation_issues(self, document: Any, mode: str = "create") -> list[errors.Issue]:
        """Why a create (``mode`` create) or an update (``mode`` update, of the stored resource the
        document's ``id`` names) of ``document`` would be refused, by the checks those writes make, the
        referenced resources' existence included; empty when it would be accepted. Nothing is stored."""
        try:
            if mode == "update":
                resource_id = document.get("id") if isinstance(document, dict) else None
                if not isinstance(resource_id, str) or not resource_id:
                    raise errors.InvalidRequest(
                        "mode=update validates an update of a stored resource: the resource needs its id.",
                        expression=(f"{self.resource_type}.id",),
                    )
                write = self.prepare_update(resource_id, document, None)
            else:
                write = self.prepare_create(document)
            for reference_type, reference_id in write.references:
                if self.store.current(reference_type, reference_id) is None:
                    raise errors.BusinessRuleViolation(
                        f"The referenced {reference_type}/{reference_id} does not exist.",
                        expression=(f"{self.resource_type}.subject",),
                    )
        except (errors.InvalidRequest, errors.BusinessRuleViolation, errors.ResourceNotFound) as exc:
            return list(exc.issues)
        return []

    # -- search ------------------------------------------------------------------------------------

    def search(self, query: SearchQuery, room: PageRoom | None = None) -> SearchPage:
        """One page of the resources matching ``query``, within the request's read budget and, when
        given, the bytes ``room`` leaves for entries (``search.engine`` runs it). Chains are resolved
        first and _include/_revinclude read after, all within the same budget."""
        budget = ReadBudget(self.settings.search_read_budget)
        if query.chains:
            query.chain_matches = self._chain_subjects(query, budget)
        including = bool(query.include or query.revinclude) and not query.summary_count and query.count > 0
        # Kept back from the page's own reads, so that what it includes can still be read.
        reserve = min(budget.limit // 4, max(budget.free, 0) // 2) if including else 0
        budget.hold(reserve)
        page = self.engine.search(query, room, budget)
        budget.release(reserve)
        if including and page.matches:
            if query.include:
                self._include(page, room, budget)
            if query.revinclude:
                self._revinclude(page, query, room, budget)
        return page

    def _chain_subjects(self, query: SearchQuery, budget: ReadBudget) -> tuple[str, ...]:
        """The ids of the patients the query's chains find (``patient.family=…``), read within
        ``budget``; SearchTooCostly when they are more than a search may list encounters of."""
        from fhir_api.resources import DEFINITIONS

        [target] = self.definition.chained_parameters
        chained = query.chained_query()
        keys = tuple(sorted({f"{reference}.{group.key}" for reference, group in query.chains}))
        too_costly = errors.SearchTooCostly(
            f"{', '.join(keys)} matches more than {MAX_CHAINED_MATCHES} patients (or more than this search "
            "may read); narrow it: an identifier (patient.identifier=system|value), a birth date, a fuller "
            "name, or search by subject.",
            expression=keys,
        )
        engine = SearchEngine(DEFINITIONS[target], self.store, self.settings)
        return engine.matching_ids(chained, budget, MAX_CHAINED_MATCHES, too_costly)

    def _include(self, page: SearchPage, room: PageRoom | None, budget: ReadBudget) -> None:
        """_include: the resources the page's matches reference, each once, in the order first named."""
        wanted: dict[tuple[str, str], None] = {}
        for stored in page.matches:
            for target in self.definition.references(stored.document):
                if target[1]:
                    wanted.setdefault(target)
        by_type: dict[str, list[str]] = {}
        for resource_type, resource_id in wanted:
            by_type.setdefault(resource_type, []).append(resource_id)
        found: dict[tuple[str, str], StoredResource] = {}
        if len(wanted) <= budget.left:
            for resource_type, ids in by_type.items():
                for resource_id, stored in self.store.many(resource_type, ids, budget).items():
                    found[(resource_type, resource_id)] = stored
        else:
            page.included_left_out = (
                "The resources this page's matches reference were left out: reading them would pass the "
                "read limit of one request; ask for a smaller page (_count) or a narrower search."
            )
            return
        left_out = 0
        for key in wanted:
            included = found.get(key)
            if included is None:
                continue
            if room is not None and not room.admit(included):
                left_out += 1
                continue
            page.included.append(included)
        if left_out:
            page.included_left_out = (
                f"{left_out} included resource(s) were left out: the answer would exceed the largest "
                "response this server sends; ask for a smaller page (_count)."
            )

    def _revinclude(
        self, page: SearchPage, query: SearchQuery, room: PageRoom | None, budget: ReadBudget
    ) -> None:
        """_revinclude: the resources that reference the page's matches, at most MAX_REVINCLUDED per
        page, within the budget and the room; a note says when some were left out."""
        from fhir_api.resources import DEFINITIONS
        from fhir_api.search.parameters import ParameterGroup

        ids = tuple(stored.id for stored in page.matches)
        sources = dict.fromkeys(query.revinclude_sources(self.definition.revincludes))
        for source_type, parameter in sources:
            referring = SearchQuery(count=MAX_REVINCLUDED)
            referring.groups[parameter] = [ParameterGroup(parameter, "", ids, ",".join(ids))]
            engine = SearchEngine(DEFINITIONS[source_type], self.store, self.settings)
            try:
                found = engine.search(referring, room, budget)
            except errors.SearchTooCostly:
                found = SearchPage([], None, "unread")
            page.included.extend(found.matches)
            if found.next_token is not None:
                page.included_left_out = (
                    f"Only {len(found.matches)} of the {source_type} resources that reference this page's "
                    f"matches are included (at most {MAX_REVINCLUDED} per page, within the read and "
                    f"response limits); search {source_type}?{parameter}=<id> for each match to see them "
                    "all, or ask for a smaller page (_count)."
                )

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
        index_attributes = self.definition.index_attributes(resource, stored.id, self.settings)
        # The patient the new version is listed under, as a read of its item would give it: the
        # audit record names it without parsing the text just written.
        attribute = patient_attribute(stored.resource_type)
        if attribute is not None:
            stored = replace(stored, listed_patient=index_attributes.get(attribute) or None)
        return Write(
            resource=stored,
            index_attributes=index_attributes,
            superseded=superseded,
            references=self.definition.references(resource),
            terms_added=[term for key, term in new_terms.items() if old_terms.get(key) != term],
            terms_removed=[term for key, term in old_terms.items() if key not in new_terms],
        )
