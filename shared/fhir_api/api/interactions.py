"""FHIR's RESTful interactions over HTTP: from a parsed request to a FHIR response.

The service decides what happens to the data; this module speaks HTTP: content types, ``Prefer``,
``If-Match``, ``ETag``/``Last-Modified``/``Location``, bundles and their links.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fhir_api import errors
from fhir_api.api.http import ACCEPTED_BODY_TYPES, Request, Response
from fhir_api.api.response_size import PageRoom, page_room
from fhir_api.auditevents.compartment import patient_ids
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.fhir.fhirjson import RawJson
from fhir_api.routes import AUDIT_EVENT, Route
from fhir_api.settings import Settings
from fhir_api.store.types import StoredResource

if TYPE_CHECKING:
    from fhir_api.resources.service import ResourceService

WEAK_ETAG = re.compile(r'\s*(?:W/)?"(\d{1,12})"\s*')


def run(route: Route, request: Request, settings: Settings, context: Any) -> Response:
    """Answer ``request`` on ``route``."""
    _check_accept(request)
    if route.interaction == "capabilities":
        return capabilities(request, settings)
    if route.interaction == "smart-configuration":
        return smart_configuration(settings)
    if route.resource_type == AUDIT_EVENT:
        from fhir_api.auditevents.interactions import run as run_audit_event

        return run_audit_event(route, request, settings)
    from fhir_api.resources import service_for

    service = service_for(str(route.resource_type), settings)
    if route.interaction == "create":
        return create(service, request, context)
    if route.conditional:
        return conditional_update(service, request)
    return INTERACTIONS[route.interaction](service, request)


def prepare(route: Route, settings: Settings) -> None:
    """Load at init what the route's first request would load on demand: under SnapStart, Lambda
    snapshots the initialised process, so the DynamoDB client and the FHIR models start warm."""
    if route.resource_type is None:
        return
    from fhir_api.resources import service_for

    service = service_for(route.resource_type, settings)
    service.store.client  # noqa: B018  (creating the client is the point)
    if route.interaction in ("create", "update"):
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
    """GET [type]/[id]."""
    stored = service.read(request.path_params.get("id", ""))
    return _resource_response(200, stored, request)


def vread(service: ResourceService, request: Request) -> Response:
    """GET [type]/[id]/_history/[vid]."""
    stored = service.vread(request.path_params.get("id", ""), request.path_params.get("vid", ""))
    return _resource_response(200, stored, request)


def create(service: ResourceService, request: Request, context: Any) -> Response:
    """POST [type]: a new resource; an Idempotency-Key makes a retry return the first answer."""
    settings = service.settings
    document = _body(request, settings)
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
    if_match = _if_match(request.header("If-Match"))
    document = _body(request, service.settings)
    stored = service.update(request.path_params.get("id", ""), document, if_match)
    return _resource_response(200, stored, request, location=True)


def conditional_update(service: ResourceService, request: Request) -> Response:
    """PUT [type]?criteria: no match creates (201), one match is updated (200), several are 412."""
    from urllib.parse import urlencode

    if_match = _if_match(request.header("If-Match"))
    document = _body(request, service.settings)
    condition = urlencode([(name, value) for name, values in request.query.items() for value in values])
    stored, created = service.conditional_update(condition, document, if_match, request.base_url)
    return _resource_response(201 if created else 200, stored, request, location=True)


def delete(service: ResourceService, request: Request) -> Response:
    """DELETE [type]/[id]: a tombstone as the next version (200 with an OperationOutcome). Deleting an
    unknown or already deleted resource changes nothing and is 200 too, as FHIR allows and HAPI does;
    with If-Match it is 412, there being no current version to match."""
    from fhir_api.api.outcome import operation_outcome

    resource_id = request.path_params.get("id", "")
    if_match = _if_match(request.header("If-Match"))
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
    entries = [RawJson(_history_entry(request, stored)) for stored in page.versions]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if page.next_before is None and before is None:
        bundle["total"] = len(entries)
    bundle["link"] = links
    bundle["entry"] = entries
    return Response(200, fhirjson.dumps(bundle), patients=patient_ids(page.versions))


def search(service: ResourceService, request: Request) -> Response:
    """GET [type]?params: a searchset Bundle with self and next links. Strict handling (the default)
    refuses what the search would not use; lenient leaves it out and reports it in an outcome entry."""
    from fhir_api.search.parameters import parse_query

    query = parse_query(
        request.query,
        service.definition.search_parameters,
        strict=not prefers_lenient_handling(request.header("Prefer")),
        sorts=service.definition.sort_parameters,
    )
    canonical = query.canonical()
    self_url = f"{request.base_url}/{service.resource_type}" + (f"?{canonical}" if canonical else "")
    room = _page_room(service.settings, "searchset", self_url, lambda stored: _search_entry(request, stored))
    page = service.search(query, room)
    links = [{"relation": "self", "url": self_url}]
    if page.next_token:
        separator = "&" if canonical else "?"
        links.append({"relation": "next", "url": f"{self_url}{separator}_page={quote(page.next_token)}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    entries: list[Any] = [RawJson(_search_entry(request, stored)) for stored in page.matches]
    if query.warnings:
        from fhir_api.api.outcome import operation_outcome

        entries.append({"resource": operation_outcome(list(query.warnings)), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return Response(200, fhirjson.dumps(bundle), patients=patient_ids(page.matches))


def prefers_lenient_handling(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header asks for ``handling=lenient``; strict is the default. Preferences are
    comma-separated, and the first ``handling`` counts (RFC 7240)."""
    for preference in (prefer or "").split(","):
        token, _, value = preference.split(";", 1)[0].partition("=")
        if token.strip().lower() == "handling":
            return value.strip().strip('"').lower() == "lenient"
    return False


INTERACTIONS: dict[str, Callable[[ResourceService, Request], Response]] = {
    "read": read,
    "vread": vread,
    "update": update,
    "delete": delete,
    "search-type": search,
    "history-instance": history,
}


def unrouted(request: Request, methods: tuple[str, ...], settings: Settings) -> Response:
    """Paths and methods the API does not serve: 405 with Allow, a CORS preflight, or 404."""
    if request.method == "OPTIONS" and methods and settings.cors_origins:
        return Response(204, None, {"Allow": ", ".join(methods)})
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
            "Authorization, Content-Type, If-Match, If-None-Exist, Prefer, Idempotency-Key"
        )


# -- helpers ---------------------------------------------------------------------------------------


def _search_entry(request: Request, stored: StoredResource) -> str:
    """A searchset entry, as JSON text."""
    stored = _presented(stored)
    return fhirjson.dumps(
        {
            "fullUrl": f"{request.base_url}/{stored.resource_type}/{stored.id}",
            "resource": RawJson(stored.text),
            "search": {"mode": "match"},
        }
    )


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
    settings: Settings, bundle_type: str, self_url: str, entry: Callable[[StoredResource], str]
) -> PageRoom:
    """The bytes a page of ``bundle_type`` has for entries under MAX_RESPONSE_BYTES: what is left after
    the bundle's total, its links (a next link of the longest page token) and the proxy response."""
    from fhir_api.search.paging import MAX_TOKEN_LENGTH

    skeleton = {
        "resourceType": "Bundle",
        "type": bundle_type,
        "total": 10**12,
        "link": [
            {"relation": "self", "url": self_url},
            {"relation": "next", "url": f"{self_url}&_page={'x' * MAX_TOKEN_LENGTH}"},
        ],
        "entry": [],
    }
    proxy = Response(200, fhirjson.dumps(skeleton)).to_proxy()
    return page_room(settings.max_response_bytes, proxy, entry)


def _resource_response(
    status: int, stored: StoredResource, request: Request, location: bool = False
) -> Response:
    stored = _presented(stored)
    headers = {
        "ETag": f'W/"{stored.version_id}"',
        "Last-Modified": format_datetime(fhirtime.parse_canonical(stored.last_updated), usegmt=True),
    }
    patients = patient_ids((stored,))
    if location:
        headers["Location"] = (
            f"{request.base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        )
        headers["Content-Location"] = headers["Location"]
    prefer = (request.header("Prefer") or "").replace(" ", "").lower()
    if request.method in ("POST", "PUT") and "return=minimal" in prefer:
        return Response(status, None, headers, patients)
    if request.method in ("POST", "PUT") and "return=operationoutcome" in prefer:
        issue = errors.Issue(
            "informational",
            f"{stored.resource_type}/{stored.id} version {stored.version_id} stored.",
            severity="information",
        )
        from fhir_api.api.outcome import operation_outcome

        return Response(status, operation_outcome([issue]), headers, patients)
    return Response(status, stored.text, headers, patients)


def _presented(stored: StoredResource) -> StoredResource:
    """The resource as answers show it (a Subscription's header values masked)."""
    from fhir_api.resources import presented

    return presented(stored)


def _body(request: Request, settings: Settings, limit: int | None = None) -> Any:
    """The JSON body, after its type and size (``limit`` bytes, MAX_BODY_BYTES unless given)."""
    limit = limit or settings.max_body_bytes
    media_type, _, parameters = (request.header("Content-Type") or "").partition(";")
    content_type = media_type.strip().lower()
    if content_type not in ACCEPTED_BODY_TYPES:
        raise errors.UnsupportedMediaType(
            f"Send the resource as application/fhir+json (got {content_type or 'no Content-Type'})."
        )
    charset = parameters.lower().replace(" ", "").partition("charset=")[2].split(";")[0].strip('"')
    if charset and charset not in ("utf-8", "utf8"):
        raise errors.UnsupportedMediaType(f"FHIR JSON is UTF-8; charset={charset} is not supported.")
    if request.body is None or not request.body.strip():
        raise errors.InvalidRequest("The request has no body; send the resource as JSON.")
    if len(request.body) > limit:
        raise errors.PayloadTooLarge(f"The body is {len(request.body)} bytes; the limit is {limit}.")
    return fhirjson.loads(request.body)


def _check_accept(request: Request) -> None:
    """FHIR JSON only: ``_format`` or ``Accept`` asking for XML alone is refused (406)."""
    wanted = (request.query.get("_format") or [""])[0].lower()
    accept = (request.header("Accept") or "").lower()
    if wanted and "json" not in wanted:
        raise errors.NotAcceptable(f"_format={wanted} is not supported; this server speaks FHIR JSON.")
    if accept and not any(kind in accept for kind in ("json", "*/*", "application/*")):
        raise errors.NotAcceptable(f"Accept: {accept} is not supported; this server speaks FHIR JSON.")


def etag_version(value: str | None) -> int | None:
    """The version an ETag (``W/"3"`` or ``"3"``) names, or None when it names none."""
    matched = WEAK_ETAG.fullmatch(value or "")
    return int(matched.group(1)) if matched else None


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    version = etag_version(value)
    if version is None:
        raise errors.InvalidRequest(f'If-Match must be a version ETag such as W/"1" (got {value!r}).')
    return version


def _history_count(values: list[str] | None) -> int:
    """``_count`` of a history read, by the same rule as a search's (0 still lists one version)."""
    from fhir_api.search.parameters import DEFAULT_COUNT, parse_count

    if not values:
        return DEFAULT_COUNT
    if len(values) > 1:
        raise errors.InvalidRequest("_count may appear only once.", expression=("_count",))
    return max(1, parse_count(values[0]))
