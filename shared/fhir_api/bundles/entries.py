"""A transaction or batch Bundle as sent: its envelope, its entries and the route each would take.

Everything here is checked before anything is read or written: the body's size and type, the Bundle's
type, the number of entries, and each entry's request (method, url, resource) against the one route
matcher, so an entry is refused by the same route table that refuses the interaction on its own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fhir_api import errors
from fhir_api.api.http import Request
from fhir_api.fhir import fhirjson
from fhir_api.fhir.issues import show
from fhir_api.routes import API_PREFIX, RESOURCE_TYPES, SERVED_TYPES, Route, match_route
from fhir_api.settings import Settings

BUNDLE_TYPES = ("transaction", "batch")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# FHIR's processing order of a transaction's entries (http.html#trules); GET after every write.
PROCESSING_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
LOCAL_REFERENCE_PREFIXES = ("urn:uuid:", "urn:oid:")


@dataclass
class Entry:
    """One entry of the Bundle: its request, its resource, and the route it would take on its own."""

    index: int
    method: str
    url: str
    resource_type: str
    path: str  # the path the entry's request would have: /api/fhir/Encounter/123
    query: dict[str, list[str]]
    query_text: str
    route: Route | None  # None only for a batch entry refused as it was read
    path_params: dict[str, str]
    full_url: str | None = None
    resource: dict[str, Any] | None = None
    patch: list[Any] | dict[str, Any] | None = None  # a PATCH entry's JSON Patch or JSON Merge Patch
    if_match: str | None = None
    if_none_exist: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # ifNoneMatch, ifModifiedSince of a GET
    refused: errors.ApiError | None = None  # a batch entry refused as it was read: answered, never run

    @property
    def where(self) -> str:
        """The entry as FHIRPath names it: ``Bundle.entry[2]``."""
        return f"Bundle.entry[{self.index}]"

    @property
    def is_conditional_update(self) -> bool:
        """PUT [type]?criteria: the resource the criteria find is updated, or a new one created."""
        return self.route is not None and self.route.conditional

    def describe(self) -> str:
        """``Bundle.entry[2] (POST Encounter)`` for messages."""
        return f"{self.where} ({self.method} {self.url})"


@dataclass
class Bundle:
    """The Bundle's type and its entries, in the order sent."""

    type: str
    entries: list[Entry]


def read_bundle(request: Request, settings: Settings) -> Bundle:
    """The Bundle of a ``POST [base]`` request, or the error that refuses it (400, 413, 415)."""
    from fhir_api.api.headers import read_body

    if request.body is not None and len(request.body) > settings.max_bundle_bytes:
        raise errors.PayloadTooLarge(
            f"The Bundle is {len(request.body)} bytes; this server takes at most {settings.max_bundle_bytes} "
            "(MAX_BUNDLE_BYTES). Send its entries in several Bundles."
        )
    document = read_body(request, settings, limit=settings.max_bundle_bytes)
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        found = document.get("resourceType") if isinstance(document, dict) else None
        raise errors.InvalidRequest(
            f"POST to the base URL takes a Bundle of type transaction or batch (got {show(found)}).",
            expression=("Bundle.resourceType",),
        )
    bundle_type = document.get("type")
    if bundle_type not in BUNDLE_TYPES:
        raise errors.InvalidRequest(
            f"Bundle.type must be transaction or batch to be processed here (got {show(bundle_type)}).",
            expression=("Bundle.type",),
        )
    raw_entries = document.get("entry", [])
    if not isinstance(raw_entries, list):
        raise errors.InvalidRequest("Bundle.entry must be a JSON array.", expression=("Bundle.entry",))
    if len(raw_entries) > settings.max_bundle_entries:
        raise errors.PayloadTooLarge(
            f"The Bundle has {len(raw_entries)} entries; this server takes at most "
            f"{settings.max_bundle_entries} per Bundle (MAX_BUNDLE_ENTRIES). Send them in several Bundles.",
            expression=("Bundle.entry",),
        )
    entries: list[Entry] = []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append(read_entry(index, raw, request.base_url, settings.max_body_bytes))
        except errors.ApiError as exc:
            if bundle_type == "transaction":
                raise at_entry(exc, index, None) from exc
            entries.append(_refused_entry(index, raw, exc))
    _check_full_urls(entries)
    return Bundle(str(bundle_type), entries)


def _refused_entry(index: int, raw: Any, error: errors.ApiError) -> Entry:
    request = raw.get("request") if isinstance(raw, dict) else None
    method = request.get("method") if isinstance(request, dict) else None
    url = request.get("url") if isinstance(request, dict) else None
    entry = Entry(index, str(method or ""), str(url or ""), "", "", {}, "", None, {})
    entry.refused = at_entry(error, index, None)
    return entry


def read_entry(index: int, raw: Any, base_url: str, max_resource_bytes: int) -> Entry:
    """One entry's request and resource, checked against the route table; a resource is held to the
    size one resource may have on its own route (MAX_BODY_BYTES, 413)."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise errors.InvalidRequest(f"{where} must be a JSON object.", expression=(where,))
    request = raw.get("request")
    if not isinstance(request, dict):
        raise errors.InvalidRequest(
            f"{where}.request is required in a transaction or batch (method and url).",
            expression=(f"{where}.request",),
        )
    method = request.get("method")
    if method not in METHODS:
        raise errors.InvalidRequest(
            f"{where}.request.method {show(method)} is not supported here; "
            "use GET, POST, PUT, PATCH or DELETE.",
            expression=(f"{where}.request.method",),
        )
    url = request.get("url")
    if not isinstance(url, str) or not url.strip():
        raise errors.InvalidRequest(f"{where}.request.url is required.", expression=(f"{where}.request.url",))
    resource_type, path, query_text = _target(url.strip(), base_url, where)
    query = parse_qs(query_text, keep_blank_values=True)
    entry = Entry(
        index=index,
        method=method,
        url=url,
        resource_type=resource_type,
        path=path,
        query=query,
        query_text=query_text,
        route=None,
        path_params={},
        full_url=_text(raw.get("fullUrl"), f"{where}.fullUrl"),
        if_match=_text(request.get("ifMatch"), f"{where}.request.ifMatch"),
        if_none_exist=_text(request.get("ifNoneExist"), f"{where}.request.ifNoneExist"),
    )
    for element, header in (("ifNoneMatch", "if-none-match"), ("ifModifiedSince", "if-modified-since")):
        value = _text(request.get(element), f"{where}.request.{element}")
        if value is not None:
            entry.headers[header] = value
    _route(entry)
    resource = raw.get("resource")
    if method == "PATCH":
        entry.patch = patch_of(resource, where, max_resource_bytes)
    elif method in ("POST", "PUT"):
        if not isinstance(resource, dict):
            raise errors.InvalidRequest(
                f"{where}.resource is required for {method} (the {resource_type} to store).",
                expression=(f"{where}.resource",),
            )
        if resource.get("resourceType") != resource_type:
            raise errors.InvalidRequest(
                f"{where}.resource is a {show(resource.get('resourceType'))}, but the request url names "
                f"{resource_type}.",
                expression=(f"{where}.resource.resourceType",),
            )
        size = len(fhirjson.dumps(resource).encode("utf-8"))
        if size > max_resource_bytes:
            raise errors.PayloadTooLarge(
                f"{where}.resource is {size} bytes; one resource may be at most {max_resource_bytes} "
                "(MAX_BODY_BYTES), in a Bundle as on its own.",
                expression=(f"{where}.resource",),
            )
        entry.resource = resource
    elif resource is not None:
        raise errors.InvalidRequest(
            f"{where}.resource must be absent for {method}.", expression=(f"{where}.resource",)
        )
    return entry


def patch_of(resource: Any, where: str, max_bytes: int) -> list[Any] | dict[str, Any]:
    """A PATCH entry's patch: FHIR carries it as a Binary whose ``data`` is the base64 of a JSON Patch
    (``contentType`` application/json-patch+json) or a JSON Merge Patch (application/merge-patch+json).
    FHIRPath Patch (a Parameters resource) is refused as on the PATCH route."""
    import base64
    import binascii

    from fhir_api.api.headers import FHIRPATH_PATCH_REFUSED, JSON_PATCH, MERGE_PATCH

    if isinstance(resource, dict) and resource.get("resourceType") == "Parameters":
        raise errors.UnsupportedMediaType(FHIRPATH_PATCH_REFUSED, expression=(f"{where}.resource",))
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        raise errors.InvalidRequest(
            f"{where}.resource of a PATCH must be a Binary holding the patch (contentType "
            f"{JSON_PATCH} or {MERGE_PATCH}, data its base64).",
            expression=(f"{where}.resource",),
        )
    content_type = str(resource.get("contentType") or "").partition(";")[0].strip().lower()
    wanted = {JSON_PATCH: list, MERGE_PATCH: dict}.get(content_type)
    if wanted is None:
        raise errors.UnsupportedMediaType(
            f"{where}.resource.contentType must be {JSON_PATCH} or {MERGE_PATCH} (got {show(content_type)}).",
            expression=(f"{where}.resource.contentType",),
        )
    data = resource.get("data")
    try:
        text = base64.b64decode(data if isinstance(data, str) else "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidRequest(
            f"{where}.resource.data must be the patch in base64.", expression=(f"{where}.resource.data",)
        ) from exc
    if len(text) > max_bytes:
        raise errors.PayloadTooLarge(
            f"{where}.resource.data is {len(text)} bytes; a patch may be at most {max_bytes} "
            "(MAX_BODY_BYTES).",
            expression=(f"{where}.resource.data",),
        )
    patch = fhirjson.loads(text)
    if not isinstance(patch, wanted):
        shape = "a JSON array of operations" if wanted is list else "a JSON object"
        raise errors.InvalidRequest(
            f"{where}.resource.data: a {content_type} patch is {shape}.",
            expression=(f"{where}.resource.data",),
        )
    return patch


def _target(url: str, base_url: str, where: str) -> tuple[str, str, str]:
    """(resource type, API path, query text) of an entry's url: relative (``Encounter/1``), or absolute
    on this server's base."""
    if url.startswith(("http://", "https://")):
        base = base_url.rstrip("/") + "/"
        if not url.startswith(base):
            raise errors.InvalidRequest(
                f"{where}.request.url {show(url)} names another server; use a relative url ([type]/[id]).",
                expression=(f"{where}.request.url",),
            )
        url = url[len(base) :]
    parts = urlsplit(url.lstrip("/"))
    path, query_text = parts.path.rstrip("/"), parts.query
    resource_type = unquote(path.split("/", 1)[0])
    if resource_type not in RESOURCE_TYPES:
        refused = (
            f"{resource_type} has its own endpoint and is not taken in a Bundle"
            if resource_type in SERVED_TYPES
            else f"{show(resource_type)} is not a resource type this server serves"
        )
        raise errors.InvalidRequest(
            f"{where}.request.url: {refused}; a Bundle's entries are {' or '.join(RESOURCE_TYPES)}.",
            expression=(f"{where}.request.url",),
        )
    return resource_type, f"{API_PREFIX}/{path}", query_text


def _route(entry: Entry) -> None:
    """The route the entry's request takes, found by the one route matcher."""
    where = f"{entry.where}.request.url"
    on_type = entry.path == f"{API_PREFIX}/{entry.resource_type}"
    if entry.method == "PUT" and on_type and not entry.query_text:
        raise errors.InvalidRequest(
            f"{where}: PUT needs [type]/[id], or search criteria for a conditional update "
            f"({entry.resource_type}?identifier=system|value).",
            expression=(where,),
        )
    if entry.query_text and entry.method != "GET" and not (entry.method == "PUT" and on_type):
        raise errors.InvalidRequest(
            f"{where}: {entry.method} takes no query here ({show(entry.url)}).", expression=(where,)
        )
    matched = match_route(entry.method, entry.path)
    if matched is None:
        raise errors.InvalidRequest(
            f"{where}: {entry.method} {show(entry.url)} is not an interaction this server supports.",
            expression=(where,),
        )
    entry.route, entry.path_params = matched


def _check_full_urls(entries: list[Entry]) -> None:
    """A fullUrl names one entry: two entries with the same one would make references ambiguous."""
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.full_url is None or entry.refused is not None:
            continue
        if entry.full_url in seen:
            raise errors.InvalidRequest(
                f"{entry.where}.fullUrl {show(entry.full_url)} is also the fullUrl of "
                f"Bundle.entry[{seen[entry.full_url]}]; each entry needs its own.",
                expression=(f"{entry.where}.fullUrl",),
            )
        seen[entry.full_url] = entry.index


def at_entry(error: errors.ApiError, index: int, resource_type: str | None) -> errors.ApiError:
    """``error`` as the Bundle's answer: its expressions re-rooted at ``Bundle.entry[index]`` (an
    element of the resource under ``.resource``, a search parameter at ``.request.url``) and its text
    naming the entry. The class, and so the status, stays; ``write_index`` becomes the entry's index."""
    where = f"Bundle.entry[{index}]"
    moved = copy.copy(error)
    moved.issues = [
        errors.Issue(
            issue.code,
            issue.diagnostics if issue.diagnostics.startswith(where) else f"{where}: {issue.diagnostics}",
            tuple(_reroot(expression, where, resource_type) for expression in issue.expression) or (where,),
            issue.severity,
        )
        for issue in error.issues
    ]
    moved.expression = moved.issues[0].expression
    moved.diagnostics = moved.issues[0].diagnostics
    moved.args = (moved.diagnostics,)
    moved.write_index = index  # from here on, the entry's index in the Bundle
    return moved


def _reroot(expression: str, where: str, resource_type: str | None) -> str:
    if expression.startswith("Bundle."):
        return expression
    if resource_type and (expression == resource_type or expression.startswith(f"{resource_type}.")):
        return f"{where}.resource{expression[len(resource_type) :]}"
    return f"{where}.request.url"


def _text(value: Any, expression: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidRequest(f"{expression} must be a non-empty string.", expression=(expression,))
    return value.strip()
