"""``GET /AuditEvent/{id}`` and ``GET /AuditEvent``: the audit trail over HTTP, read-only.

Searches take the same result parameters, handling (``Prefer: handling``), signed page tokens and read
budget as every other search here; the AuditEvent's own parameters are in ``search.PARAMETERS``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fhir_api import errors
from fhir_api.api.http import Request, Response
from fhir_api.auditevents import search as audit_search
from fhir_api.auditevents.store import AuditEventStore
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.fhir.fhirjson import RawJson
from fhir_api.routes import AUDIT_EVENT, Route
from fhir_api.settings import Settings

_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def store_for(settings: Settings) -> AuditEventStore:
    """The AuditEvents table of these settings, through the process's DynamoDB client."""
    from fhir_api.store.dynamo import dynamodb_client

    return AuditEventStore(
        dynamodb_client(settings), settings.audit_events_table, settings.audit_retention_days
    )


def run(route: Route, request: Request, settings: Settings) -> Response:
    """Answer a read or a search of AuditEvents."""
    if route.interaction == "read":
        return read(request, settings)
    return search(request, settings)


def read(request: Request, settings: Settings) -> Response:
    """GET AuditEvent/[id]."""
    event_id = request.path_params.get("id", "")
    text = None
    if 0 < len(event_id) <= 64 and set(event_id) <= _ID_CHARACTERS:
        text = store_for(settings).get(event_id)
    if text is None:
        raise errors.ResourceNotFound(f"AuditEvent/{event_id[:64]} is not known.")
    stored = fhirjson.loads(text)
    headers = {"ETag": 'W/"1"'}
    last_updated = (stored.get("meta") or {}).get("lastUpdated")
    if isinstance(last_updated, str):
        headers["Last-Modified"] = fhirtime.http_date(fhirtime.parse_range(last_updated)[0])
    return Response(200, text, headers)


def search(request: Request, settings: Settings) -> Response:
    """GET AuditEvent?params: a searchset Bundle, newest first unless ``_sort=date``."""
    from fhir_api.api.headers import prefers_lenient_handling
    from fhir_api.search import paging
    from fhir_api.search.parameters import parse_query
    from fhir_api.search.references import local_references
    from fhir_api.store.budget import ReadBudget
    from fhir_api.store.secrets import page_token_secret

    query = parse_query(
        local_references(request.query, audit_search.PARAMETERS, request.base_url),
        audit_search.PARAMETERS,
        strict=not prefers_lenient_handling(request.header("Prefer")),
        sorts=audit_search.SORTS,
    )
    canonical = query.canonical()
    query_key = query.query_key(AUDIT_EVENT)
    resume = paging.verify(query.page, page_token_secret(settings), query_key) if query.page else None
    page = audit_search.search(
        store_for(settings),
        query,
        audit_search.raw_references(query),
        resume,
        ReadBudget(settings.search_read_budget),
        settings.audit_retention_days,
    )
    self_url = f"{request.base_url}/{AUDIT_EVENT}" + (f"?{canonical}" if canonical else "")
    links = [{"relation": "self", "url": self_url}]
    if page.resume is not None:
        token = paging.sign(
            page.resume, page_token_secret(settings), query_key, settings.page_token_ttl_seconds
        )
        separator = "&" if canonical else "?"
        links.append({"relation": "next", "url": f"{self_url}{separator}_page={quote(token)}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    entries: list[Any] = [
        {
            "fullUrl": f"{request.base_url}/{AUDIT_EVENT}/{fhirjson.loads(text)['id']}",
            "resource": RawJson(text),
            "search": {"mode": "match"},
        }
        for text in page.matches
    ]
    if query.warnings:
        from fhir_api.api.outcome import operation_outcome

        entries.append({"resource": operation_outcome(list(query.warnings)), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return Response(200, fhirjson.dumps(bundle))
