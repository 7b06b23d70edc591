"""FHIR's RESTful interactions over HTTP: from a parsed request to a FHIR response.

The service decides what happens to the data; this module speaks HTTP: ``Prefer``, status codes,
``ETag``/``Last-Modified``/``Location``, searchset and history bundles and their links. What the
request's own headers and body ask for is read by ``fhir_api.api.headers``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fhir_api import errors
from fhir_api.api import operations
from fhir_api.api.headers import (
    FHIRPATH_PATCH_REFUSED,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_BODY_TYPES,
    body_media_type,
    check_accept,
    if_match_version,
    not_modified,
    prefers_lenient_handling,
    read_body,
    version_headers,
)
from fhir_api.api.http import Request, Response
from fhir_api.api.response_size import PageRoom, page_room, page_skeleton_bytes
from fhir_api.auditevents.compartment import patient_ids
from fhir_api.fhir import fhirjson
from fhir_api.fhir.fhirjson import RawJson
from fhir_api.routes import AUDIT_EVENT, Route
from fhir_api.settings import Settings
from fhir_api.store.types import StoredResource

if TYPE_CHECKING:
    from fhir_api.resources.service import ResourceService

WRITE_METHODS = ("POST", "PUT", "PATCH")


def run(route: Route, request: Request, settings: Settings, context: Any) -> Response:
    """Answer ``request`` on ``route``."""
    check_accept(request)
    if route.interaction == "capabilities":
        return capabilities(request, settings)
    if route.interaction == "smart-configuration":
        return smart_configuration(settings)
    if route.resource_type == AUDIT_EVENT:
        from fhir_api.auditevents.interactions import run as run_audit_event

        return run_audit_event(route, request, settings)
    from fhir_api.resources import service_for

    operations.refuse_operation_in_id(request)
    service = service_for(str(route.resource_type), settings)
    if route.interaction == "create":
        return create(service, request, context)
    if route.conditional:
        return conditional_update(service, request)
    return INTERACTIONS[route.interaction](service, request)


def prepare(route: Route, settings: Settings) -> None:
    """Load at init what the route's first request would load on demand: under SnapStart, Lambda
    snapshots the initialised process, so the DynamoDB client and the FHIR element tables start warm."""
    if route.resource_type is None:
        return
    from fhir_api.resources import service_for

    service = service_for(route.resource_type, settings)
    service.store.client  # noqa: B018  (creating the client is the point)
    if route.interaction in ("create", "update", "patch", "operation"):
        from fhir_api.fhir.validation import load_model

        load_model(route.resource_type)


def capabilities(request: Request, settings: Settings) -> Response:
    """GET /metadata: the CapabilityStatement, generated from the route and parameter tables."""
    from fhir_api.api.capability import capability_statement
    from fhir_api.auditevents.search import capability_entry
    from fhir_api.resources import DEFINITIONS

    statement = capability_statement(
        request.base_url,
        list(DEFINITIONS.values()),
        cors=bool(settings.cors_origins),
        token_endpoint=settings.token_endpoint or None,
    )
    statement["rest"][0]["resource"].append(capability_entry())
    return Response(200, statement)


def smart_configuration(settings: Settings) -> Response:
    """GET /.well-known/smart-configuration: plain JSON, 404 when no token endpoint is configured."""
    from fhir_api.auth.smart import smart_configuration as document

    config = document(settings)
    if config is None:
        raise errors.ResourceNotFound(
            "This server has no SMART configuration: no OAuth token endpoint is configured (TokenEndpoint)."
        )
    return Response(200, fhirjson.dumps(config), {"Content-Type": "application/json; charset=utf-8"})


def read(service: ResourceService, request: Request) -> Response:
    """GET [type]/[id] (``_summary``, ``_elements`` subset it); 304 when the client's copy is current
    (If-None-Match, If-Modified-Since)."""
    subset = _read_subset(service, request)
    stored = service.read(request.path_params.get("id", ""))
    return not_modified(stored, request) or _resource_response(200, stored, request, subset=subset)


def vread(service: ResourceService, request: Request) -> Response:
    """GET [type]/[id]/_history/[vid]; subset and conditional like a read."""
    subset = _read_subset(service, request)
    stored = service.vread(request.path_params.get("id", ""), request.path_params.get("vid", ""))
    return not_modified(stored, request) or _resource_response(200, stored, request, subset=subset)


def _read_subset(service: ResourceService, request: Request) -> _Subset:
    """The ``_summary``/``_elements`` of a read, parsed as a search's (strict); count is a search's."""
    from fhir_api.search.parameters import parse_query

    asked = {name: values for name, values in request.query.items() if name in ("_summary", "_elements")}
    if not asked:
        return _Subset()
    query = parse_query(asked, {}, strict=True, options=service.definition.search_options())
    if query.summary_count:
        raise errors.InvalidRequest("_summary=count counts search results; a read returns one resource.")
    return _Subset(query.summary, query.elements, service.resource_type)


def create(service: ResourceService, request: Request, context: Any) -> Response:
    """POST [type]: a new resource; an Idempotency-Key makes a retry return the first answer."""
    settings = service.settings
    document = read_body(request, settings)
    key = request.header("Idempotency-Key")
    if_none_exist = request.header("If-None-Exist")
    if if_none_exist:
        existing = service.conditional_match(if_none_exist, request.base_url)
        if existing is not None:
            return _resource_response(200, existing, request, location=True)

    def respond() -> dict[str, Any]:
        stored = service.create(document)
        return _resource_response(201, stored, request, location=True).to_dict()

    if key:
        from fhir_api.store.idempotency import run_once_per_key

        answer = run_once_per_key(
            settings,
            scope=(request.sub, service.resource_type),
            key=key,
            body=request.body or b"",
            work=respond,
            context=context,
        )
    else:
        answer = respond()
    return Response.from_dict(answer)


def update(service: ResourceService, request: Request) -> Response:
    """PUT [type]/[id]: a new version, conditional on the one it replaces."""
    if_match = if_match_version(request.header("If-Match"))
    document = read_body(request, service.settings)
    stored = service.update(request.path_params.get("id", ""), document, if_match)
    return _resource_response(200, stored, request, location=True)


def patch(service: ResourceService, request: Request) -> Response:
    """PATCH [type]/[id]: JSON Patch (or JSON Merge Patch) applied to the current version, then stored
    exactly as an update would store the result."""
    if_match = if_match_version(request.header("If-Match"))
    document = read_body(request, service.settings, PATCH_BODY_TYPES)
    content_type = body_media_type(request)
    if isinstance(document, dict) and document.get("resourceType") == "Parameters":
        raise errors.UnsupportedMediaType(FHIRPATH_PATCH_REFUSED)
    wanted = {JSON_PATCH: list, MERGE_PATCH: dict}.get(content_type, (list, dict))
    if not isinstance(document, wanted):
        shape = "a JSON array of operations" if content_type == JSON_PATCH else "a JSON object"
        raise errors.InvalidRequest(f"A {content_type} body is {shape}.")
    resource_id = request.path_params.get("id", "")
    stored = service.commit(service.prepare_patch(resource_id, document, if_match), if_match)
    return _resource_response(200, stored, request, location=True)


def conditional_update(service: ResourceService, request: Request) -> Response:
    """PUT [type]?criteria: no match creates (201), one match is updated (200), several are 412."""
    from urllib.parse import urlencode

    if_match = if_match_version(request.header("If-Match"))
    document = read_body(request, service.settings)
    condition = urlencode([(name, value) for name, values in request.query.items() for value in values])
    stored, created = service.conditional_update(condition, document, if_match, request.base_url)
    return _resource_response(201 if created else 200, stored, request, location=True)


def delete(service: ResourceService, request: Request) -> Response:
    """DELETE [type]/[id]: a tombstone as the next version (200 with an OperationOutcome). Deleting an
    unknown or already deleted resource changes nothing and is 200 too, as FHIR allows and HAPI does;
    with If-Match it is 412, there being no current version to match."""
    from fhir_api.api.outcome import operation_outcome

    resource_id = request.path_params.get("id", "")
    if_match = if_match_version(request.header("If-Match"))
    reference = f"{service.resource_type}/{resource_id}"
    try:
        write = service.prepare_delete(resource_id, if_match)
    except errors.ResourceNotFound as exc:
        if if_match is not None:
            raise errors.PreconditionFailed(
                f"If-Match names version {if_match}, but {exc.diagnostics}"
            ) from exc
        done = "is already deleted" if isinstance(exc, errors.ResourceGone) else "does not exist"
        issue = errors.Issue("informational", f"Not deleted: {reference} {done}.", severity="information")
        return Response(200, operation_outcome([issue]))
    tombstone = service.commit(write, if_match)
    issue = errors.Issue(
        "informational",
        f"Deleted {reference}: version {tombstone.version_id} marks it deleted; earlier versions stay "
        "readable at _history.",
        severity="information",
    )
    headers = {"ETag": f'W/"{tombstone.version_id}"'}
    deleted = (write.superseded,) if write.superseded is not None else ()
    return Response(200, operation_outcome([issue]), headers, patients=patient_ids(deleted))


def history(service: ResourceService, request: Request) -> Response:
    """GET [type]/[id]/_history: the versions, newest first, as a history Bundle."""
    from fhir_api.search import paging
    from fhir_api.store.secrets import page_token_secret

    resource_id = request.path_params.get("id", "")
    count = _history_count(request.query.get("_count"))
    query_key = f"{service.resource_type}/{resource_id}/_history?_count={count}"
    page_token = (request.query.get("_page") or [""])[0]
    before = None
    if page_token:
        before = int(paging.verify(page_token, page_token_secret(service.settings), query_key)["b"])
    self_url = f"{request.base_url}/{service.resource_type}/{resource_id}/_history?_count={count}"
    room = _page_room(service.settings, "history", self_url, lambda stored: _history_entry(request, stored))
    page = service.history(resource_id, count, before, room)
    links = [{"relation": "self", "url": self_url}]
    if page.next_before is not None:
        token = paging.sign(
            {"b": page.next_before},
            page_token_secret(service.settings),
            query_key,
            service.settings.page_token_ttl_seconds,
        )
        links.append({"relation": "next", "url": f"{self_url}&_page={quote(token)}"})
    entries = [RawJson(room.entry_text(stored)) for stored in page.versions]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if page.next_before is None and before is None:
        bundle["total"] = len(entries)
    bundle["link"] = links
    bundle["entry"] = entries
    return Response(200, fhirjson.dumps(bundle), patients=patient_ids(page.versions))


def search(service: ResourceService, request: Request) -> Response:
    """GET [type]?params and POST [type]/_search (form body): a searchset Bundle with self and next
    links. Strict handling (the default) refuses what the search would not use; lenient leaves it out
    and reports it in an outcome entry. A POST search's links carry its query sealed (``search.sealed``),
    and so do the links of a page reached through one."""
    from fhir_api.search.parameters import parse_query
    from fhir_api.search.references import local_references

    parameters, sealed = _search_parameters(service, request)
    parameters = local_references(parameters, service.definition.search_parameters, request.base_url)
    query = parse_query(
        parameters,
        service.definition.search_parameters,
        strict=not prefers_lenient_handling(request.header("Prefer")),
        options=service.definition.search_options(),
    )
    canonical = query.canonical()
    base = f"{request.base_url}/{service.resource_type}"
    if sealed:
        self_url = _sealed_url(service, base, canonical, query.page)
    else:
        self_url = base + (f"?{canonical}" if canonical else "")
    subset = _Subset(query.summary, query.elements, service.resource_type)

    def entry(stored: StoredResource) -> str:
        mode = "match" if stored.resource_type == service.resource_type else "include"
        return _search_entry(request, stored, subset, mode)

    room = _page_room(service.settings, "searchset", self_url, entry, sealed)
    page = service.search(query, room)
    links = [{"relation": "self", "url": self_url}]
    if page.next_token and sealed:
        links.append({"relation": "next", "url": _sealed_url(service, base, canonical, page.next_token)})
    elif page.next_token:
        separator = "&" if canonical else "?"
        links.append({"relation": "next", "url": f"{self_url}{separator}_page={quote(page.next_token)}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    entries: list[Any] = [RawJson(room.entry_text(stored)) for stored in (*page.matches, *page.included)]
    warnings = list(query.warnings)
    if page.included_left_out:
        warnings.append(errors.Issue("incomplete", page.included_left_out, severity="warning"))
    if warnings:
        from fhir_api.api.outcome import operation_outcome

        entries.append({"resource": operation_outcome(warnings), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return Response(
        200,
        fhirjson.dumps(bundle),
        patients=patient_ids((*page.matches, *page.included)),
        query_names=tuple(parameters),
    )


FORM_TYPE = "application/x-www-form-urlencoded"


def _search_parameters(service: ResourceService, request: Request) -> tuple[dict[str, list[str]], bool]:
    """The parameters of a search and whether its links are sealed: the URL's, plus a POST's form
    body; a sealed page token (``_page=s1.…``) stands for the whole query it carries."""
    from urllib.parse import parse_qs

    from fhir_api.search import sealed

    parameters = {name: list(values) for name, values in request.query.items()}
    posted = request.method == "POST"
    if posted:
        media_type = (request.header("Content-Type") or "").partition(";")[0].strip().lower()
        body = request.body or b""
        if body.strip() and media_type != FORM_TYPE:
            raise errors.UnsupportedMediaType(
                f"POST _search takes its parameters as {FORM_TYPE} (got {media_type or 'no Content-Type'})."
            )
        if len(body) > service.settings.max_body_bytes:
            raise errors.PayloadTooLarge(
                f"The body is {len(body)} bytes; the limit is {service.settings.max_body_bytes}."
            )
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError):
            raise errors.InvalidRequest(f"The body is not a valid {FORM_TYPE} form (UTF-8).") from None
        for name, values in form.items():
            parameters.setdefault(name, []).extend(values)
    tokens = parameters.get("_page") or []
    if not any(sealed.is_sealed(token) for token in tokens):
        return parameters, posted
    others = sorted(set(parameters) - {"_page", "_format", "_pretty"})
    if len(tokens) != 1 or others:
        raise errors.InvalidRequest(
            "A sealed page token carries its whole search; send it alone (got also "
            f"{', '.join(others) or 'a second _page'}).",
            expression=("_page",),
        )
    from fhir_api.store.secrets import page_token_secret

    carried = sealed.unseal(tokens[0], page_token_secret(service.settings), service.resource_type)
    restored = parse_qs(carried.query, keep_blank_values=True)
    if carried.page:
        restored["_page"] = [carried.page]
    return restored, True


def _sealed_url(service: ResourceService, base: str, canonical: str, page: str | None) -> str:
    """A link to the page ``page`` (None: the first) of a search whose query must stay out of URLs."""
    from fhir_api.search import sealed
    from fhir_api.store.secrets import page_token_secret

    token = sealed.seal(
        sealed.SealedSearch(canonical, page),
        page_token_secret(service.settings),
        service.resource_type,
        service.settings.page_token_ttl_seconds,
    )
    return f"{base}?_page={token}"


@dataclass(frozen=True)
class _Subset:
    """What part of each resource an answer shows (``fhir.subsetting``): the ``_summary`` mode and the
    ``_elements`` of ``resource_type`` (other types' resources, included ones, get the summary only)."""

    summary: str | None = None
    elements: tuple[str, ...] = ()
    resource_type: str = ""

    def text(self, stored: StoredResource) -> str:
        """The resource's JSON text, subsetted as asked."""
        from fhir_api.fhir.subsetting import subset

        elements = self.elements if stored.resource_type == self.resource_type else ()
        if not self.summary and not elements:
            return stored.text
        document = subset(stored.document, stored.resource_type, self.summary, elements)
        return stored.text if document is None else fhirjson.dumps(document)


INTERACTIONS: dict[str, Callable[[ResourceService, Request], Response]] = {
    "read": read,
    "vread": vread,
    "update": update,
    "patch": patch,
    "delete": delete,
    "search-type": search,
    "history-instance": history,
    "operation": operations.operation,
}


def unrouted(request: Request, methods: tuple[str, ...], settings: Settings) -> Response:
    """Paths and methods the API does not serve: 405 with Allow, a CORS preflight, 501 for a FHIR
    operation this server does not implement, or 404."""
    if request.method == "OPTIONS" and methods and settings.cors_origins:
        return Response(204, None, {"Allow": ", ".join(methods)})
    operations.refuse_unsupported_operation(request)
    if methods:
        raise errors.MethodNotAllowed(
            f"{request.method} is not supported on {request.path}; use {', '.join(methods)}.",
            allowed=methods,
        )
    raise errors.ResourceNotFound(f"No FHIR endpoint at {request.path}.")


def apply_cors(request: Request, response: Response, settings: Settings) -> None:
    """Allow a configured origin to read the answer; with no origins configured, CORS stays off."""
    origin = request.header("Origin")
    if not origin or origin not in settings.cors_origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    response.headers["Access-Control-Expose-Headers"] = "ETag, Location, Last-Modified"
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = response.headers.get("Allow", "GET")
        response.headers["Access-Control-Allow-Headers"] = (
            "Authorization, Content-Type, If-Match, If-None-Exist, If-None-Match, If-Modified-Since, Prefer, "
            "Idempotency-Key"
        )


# -- helpers ---------------------------------------------------------------------------------------


def _search_entry(
    request: Request, stored: StoredResource, subset: _Subset | None = None, mode: str = "match"
) -> str:
    """A searchset entry (``mode`` match or include), as JSON text."""
    stored = _presented(stored)
    text = subset.text(stored) if subset is not None else stored.text
    # Written out rather than through fhirjson.dumps: a page builds (and sizes) up to 100 of these.
    full_url = encode_basestring(f"{request.base_url}/{stored.resource_type}/{stored.id}")
    return f'{{"fullUrl":{full_url},"resource":{text},"search":{{"mode":"{mode}"}}}}'


def _history_entry(request: Request, stored: StoredResource) -> str:
    """A history entry (the version's resource, and the write that made it), as JSON text. A deletion
    is an entry without a resource, its request a DELETE (FHIR's history of a delete)."""
    if stored.deleted:
        return fhirjson.dumps(
            {
                "fullUrl": f"{request.base_url}/{stored.resource_type}/{stored.id}",
                "request": {"method": "DELETE", "url": f"{stored.resource_type}/{stored.id}"},
                "response": {
                    "status": "200",
                    "etag": f'W/"{stored.version_id}"',
                    "lastModified": stored.last_updated,
                },
            }
        )
    stored = _presented(stored)
    first = stored.version_id == 1
    return fhirjson.dumps(
        {
            "fullUrl": f"{request.base_url}/{stored.resource_type}/{stored.id}",
            "resource": RawJson(stored.text),
            "request": {
                "method": "POST" if first else "PUT",
                "url": stored.resource_type if first else f"{stored.resource_type}/{stored.id}",
            },
            "response": {
                "status": "201" if first else "200",
                "etag": f'W/"{stored.version_id}"',
                "lastModified": stored.last_updated,
            },
        }
    )


def _page_room(
    settings: Settings,
    bundle_type: str,
    self_url: str,
    entry: Callable[[StoredResource], str],
    sealed: bool = False,
) -> PageRoom:
    """The bytes a page of ``bundle_type`` has for entries under MAX_RESPONSE_BYTES: what is left after
    the bundle's total, its links (a next link of the longest page token, sealed or not), a warning
    entry and the proxy response."""
    from fhir_api.search.paging import MAX_TOKEN_LENGTH
    from fhir_api.search.sealed import MAX_SEALED_LENGTH

    token_length = MAX_SEALED_LENGTH if sealed else MAX_TOKEN_LENGTH
    skeleton_bytes = page_skeleton_bytes(bundle_type, self_url, token_length)
    return page_room(settings.max_response_bytes, skeleton_bytes, entry)


def _resource_response(
    status: int,
    stored: StoredResource,
    request: Request,
    location: bool = False,
    subset: _Subset | None = None,
) -> Response:
    stored = _presented(stored)
    headers = version_headers(stored)
    patients = patient_ids((stored,))
    if location:
        headers["Location"] = (
            f"{request.base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        )
        headers["Content-Location"] = headers["Location"]
    prefer = (request.header("Prefer") or "").replace(" ", "").lower()
    if request.method in WRITE_METHODS and "return=minimal" in prefer:
        return Response(status, None, headers, patients)
    if request.method in WRITE_METHODS and "return=operationoutcome" in prefer:
        issue = errors.Issue(
            "informational",
            f"{stored.resource_type}/{stored.id} version {stored.version_id} stored.",
            severity="information",
        )
        from fhir_api.api.outcome import operation_outcome

        return Response(status, operation_outcome([issue]), headers, patients)
    return Response(status, subset.text(stored) if subset else stored.text, headers, patients)


def _presented(stored: StoredResource) -> StoredResource:
    """The resource as answers show it (a Subscription's header values masked)."""
    from fhir_api.resources import presented

    return presented(stored)


def _history_count(values: list[str] | None) -> int:
    """``_count`` of a history read, by the same rule as a search's (0 still lists one version)."""
    from fhir_api.search.parameters import DEFAULT_COUNT, parse_count

    if not values:
        return DEFAULT_COUNT
    if len(values) > 1:
        raise errors.InvalidRequest("_count may appear only once.", expression=("_count",))
    return max(1, parse_count(values[0]))
