"""Identifiers as search terms, for every resource type that has them (Patient MRNs, Encounter visit
numbers): the term items, the listing that answers ``identifier``, and the match on the resource.

Each identifier with a value is one term item: term ``identifier|<value>``, term value
``<system>|<id>``, so ``identifier=value`` lists one term and ``identifier=system|value`` narrows it
with ``begins_with(termValue, "<system>|")``. A Patient's identifier with a system is a claim (unique,
its key the hash of system and value alone); every other term's key also names the resource.
"""

from __future__ import annotations

import hashlib
import json

from fhir_api.search import tokens
from fhir_api.search.parameters import SearchQuery
from fhir_api.store.types import ListedEntry, Listing, Term


def identifier_claim_key(system: str, value: str) -> str:
    """The key of the term item claiming identifier (system, value).

    Hashed from a JSON array: ``a|1`` + ``2`` and ``a`` + ``1|2`` are different claims, and the key
    stays within DynamoDB's key size however long the identifier.
    """
    pair = json.dumps([system, value], ensure_ascii=False).encode("utf-8")
    return f"identifier|{hashlib.sha256(pair).hexdigest()}"


def identifier_terms(identifiers: object, resource_id: str, claim: bool) -> list[Term]:
    """One term per identifier with a value; with ``claim``, those with a system are unique claims."""
    found: dict[str, Term] = {}
    for identifier in identifiers if isinstance(identifiers, list) else []:
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if not value:
            continue
        system = identifier.get("system") or ""
        unique = claim and bool(system)
        if unique:
            key = identifier_claim_key(system, value)
        elif claim:
            key = f"identifier||{value}|{resource_id}"  # Patient's key of an identifier without system
        else:
            key = f"{identifier_claim_key(system, value)}|{resource_id}"
        found[key] = Term(key, f"identifier|{value}", f"{system}|{resource_id}", unique=unique)
    return list(found.values())


def identifier_listing(resource_type: str, query: SearchQuery) -> Listing | None:
    """The first ``identifier`` group, when each of its tokens has a value: one term per value,
    narrowed to the system when one is given; None when the group cannot be listed."""
    identifiers = query.values("identifier")
    if not identifiers or not all(token.code for token in identifiers[0]):
        return None
    group = identifiers[0]
    return Listing(
        resource_type,
        "term",
        tuple(f"identifier|{token.code}" for token in group),
        prefixes=tuple(f"{token.system}|" if token.system is not None else "" for token in group),
    )


def identifiers_match(token: tokens.TokenValue, identifiers: object) -> bool:
    """Any identifier matches, read as an Identifier even without a value (``system|`` finds it)."""
    return isinstance(identifiers, list) and any(
        tokens.identifier_matches(token, identifier) for identifier in identifiers
    )


def is_first_identifier_entry(
    entry: ListedEntry, identifiers: object, resource_id: str, query: SearchQuery
) -> bool:
    """False for an identifier entry of a resource that an earlier entry of the same listing returns
    (two of its identifiers share the value searched for, or two values of the group are its own).

    The listing is merged in (term value, term) order, so the first entry is the least of them.
    """
    group = (query.values("identifier") or [[]])[0]
    listed = [
        (f"{identifier.get('system') or ''}|{resource_id}", f"identifier|{identifier.get('value')}")
        for identifier in (identifiers if isinstance(identifiers, list) else [])
        if isinstance(identifier, dict)
        and identifier.get("value")
        and any(
            token.code == identifier.get("value")
            and (token.system is None or token.system == (identifier.get("system") or ""))
            for token in group
        )
    ]
    return not listed or min(listed) == (entry.order, entry.key)
