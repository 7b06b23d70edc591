"""What a resource type contributes to the generic service: its rules, index entries and search plans."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_api.search.parameters import SearchOptions, SearchParameter, SearchQuery
from fhir_api.settings import Settings
from fhir_api.store.types import ListedEntry, Listing, StoredResource, Term


@dataclass(frozen=True)
class IdLookup:
    """A search answered by reading resources by id (``_id``, a unique identifier)."""

    ids: tuple[str, ...]


# A search nothing can match (contradictory dates): it reads nothing.
MATCHES_NOTHING = IdLookup(())


@dataclass(frozen=True)
class SearchPlan:
    """A search answered by one listing of the resource type, in its order (the store picks the index)."""

    listing: Listing
    # (StoredResource attribute, descending) when the result must be sorted on something the listing
    # is not ordered by; None keeps the listing's order.
    in_memory_sort: tuple[str, bool] | None = None


@dataclass(frozen=True)
class SafetyRule:
    """A refusal of a resource FHIR R4 would accept (or an R4 invariant this server names on its own),
    kept because it protects the clinic. Each resource module's ``SAFETY_RULES`` is the one list: the
    CapabilityStatement documents it and a test holds the README to it."""

    element: str  # FHIRPath of the element the rule is about
    refused: str  # what is refused
    status: int  # the HTTP status of the answer
    reason: str  # why the clinic is better off with the refusal

    def describe(self) -> str:
        """One line of Markdown: the element, what is refused, the status, why."""
        return f"`{self.element}` — {self.refused} — **{self.status}** — {self.reason}"


def shared_safety_rules(resource_type: str) -> tuple[SafetyRule, ...]:
    """The rules every resource type shares: its narratives, and how deep a body may nest."""
    return (
        SafetyRule(
            f"{resource_type}.text.div",
            "a narrative with active content or outside FHIR's XHTML subset (txt-1, txt-2): scripts, "
            "event attributes, URLs other than relative, http(s), mailto, tel, urn or cid (javascript:, "
            "vbscript:, data: but raster images), iframes, objects, forms, styles with url() or "
            "expression(), DOCTYPE, entities, processing instructions, CDATA, anything after the closing "
            "div; contained resources' narratives alike",
            400,
            "Narratives are shown as HTML in clinicians' browsers; active content there would run with their "
            "session and could read or change any patient's record.",
        ),
        SafetyRule(
            resource_type,
            "JSON objects nested more than 64 deep",
            400,
            "No FHIR resource nests so deep; the limit keeps a crafted body from exhausting the function "
            "that every clinic user depends on.",
        ),
    )


class ResourceDefinition(ABC):
    """The base of Encounter's and Patient's definitions; all but ``plan`` have a neutral default."""

    resource_type: str = ""
    safety_rules: tuple[SafetyRule, ...] = ()
    search_parameters: dict[str, SearchParameter] = {}
    sort_parameters: tuple[str, ...] = ()
    # Chains: target type -> the parameters of that type a chain on a reference to it may name.
    chained_parameters: dict[str, dict[str, SearchParameter]] = {}
    # _include values -> the type they include (through ``references``); _revinclude values -> the
    # (type, reference parameter) whose resources point at the matches.
    includes: dict[str, str] = {}
    revincludes: dict[str, tuple[str, str]] = {}
    # Whether answers may be subsetted (_summary=true|text|data, _elements): FHIR resources only.
    subsettable: bool = False
    conditional_create: bool = False
    conditional_update: bool = False

    def search_options(self) -> SearchOptions:
        """What this type's searches accept beyond its parameter table (``parse_query``)."""
        from fhir_api.fhir.subsetting import element_names

        resource_type = self.resource_type
        return SearchOptions(
            sorts=self.sort_parameters,
            chained=self.chained_parameters,
            includes=tuple(self.includes),
            revincludes=tuple(self.revincludes),
            elements=(lambda: element_names(resource_type)) if self.subsettable else None,
        )

    def validate(self, document: Any) -> dict[str, Any]:
        """The resource as sent, minus ``id`` and ``meta``; InvalidResource when it is not FHIR R4."""
        from fhir_api.fhir.validation import validate_resource

        return validate_resource(self.resource_type, document)

    def carry_over(self, resource: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        """An update's resource with what the client cannot send back kept from ``previous``."""
        return resource

    def presented(self, stored: StoredResource) -> StoredResource:
        """The resource as read, vread, history and search show it (secrets masked)."""
        return stored

    @abstractmethod
    def check_rules(self, resource: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """Raise BusinessRuleViolation when ``resource`` (replacing ``previous``) breaks a rule."""

    def references(self, resource: dict[str, Any]) -> list[tuple[str, str]]:
        """The resources that must exist for ``resource`` to be stored, as (type, id)."""
        return []

    def referrers(self, resource_id: str) -> list[Listing]:
        """The listings of resources that reference ``resource_id`` and so keep it from being deleted."""
        return []

    def index_attributes(
        self, resource: dict[str, Any], resource_id: str, settings: Settings
    ) -> dict[str, str]:
        """Attributes stored beside the resource for its indexes."""
        return {}

    def terms(self, resource: dict[str, Any], resource_id: str) -> list[Term]:
        """Search entries stored as items of their own (one resource, many values)."""
        return []

    @abstractmethod
    def plan(self, query: SearchQuery) -> IdLookup | SearchPlan:
        """The read that answers ``query``."""

    def entry_may_match(self, entry: ListedEntry, query: SearchQuery) -> bool:
        """False when a listed entry alone shows its resource cannot match (saves a read)."""
        return True

    def index_decides(self, query: SearchQuery) -> bool:
        """True when ``entry_may_match`` alone decides every criterion of ``query``."""
        return False

    def matches(self, stored: StoredResource, query: SearchQuery) -> bool:
        """Whether a resource meets every criterion of ``query``."""
        return True

    def is_first_entry_of_resource(
        self, entry: ListedEntry, stored: StoredResource, query: SearchQuery
    ) -> bool:
        """False for an entry of a resource that an earlier entry of the same search returns."""
        return True


def intersection(groups: list[list[Any]]) -> tuple[Any, ...]:
    """AND of OR groups of identities (ids, codes): the values every group holds, in first-seen order."""
    if not groups:
        return ()
    common = list(dict.fromkeys(groups[0]))
    for group in groups[1:]:
        common = [value for value in common if value in group]
    return tuple(common)


def all_groups_match(groups: list[list[Any]], test: Callable[[Any], bool]) -> bool:
    """AND of OR groups: every group has a value that passes ``test``."""
    return all(any(test(value) for value in group) for group in groups)
