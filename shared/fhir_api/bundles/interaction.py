"""``POST /api/fhir``: a transaction or batch Bundle in, a transaction-response or batch-response out.

The handler has already checked that the caller may send a Bundle at all; each entry is then checked
against its own route (``processing``). Every entry leaves its own audit record (so its own AuditEvent:
the request id with ``/entry/<n>``, the entry's interaction, resource and patients), beside the record
the handler writes for the Bundle itself (subtype transaction or batch).
"""

from __future__ import annotations

from typing import Any

from fhir_api import audit, errors
from fhir_api.api.http import Request, Response
from fhir_api.api.outcome import error_response
from fhir_api.api.response_size import proxy_bytes
from fhir_api.auth.access import Caller
from fhir_api.bundles.entries import Bundle, read_bundle
from fhir_api.bundles.processing import Context, Outcome, run_batch_entry, run_transaction
from fhir_api.fhir import fhirjson
from fhir_api.routes import AUDIT_ACTIONS
from fhir_api.settings import Settings

IDEMPOTENCY_SCOPE = "Bundle"


def run(
    request: Request, caller: Caller | None, settings: Settings, context: Any, client_address: str | None
) -> Response:
    """Answer a Bundle POSTed to the base URL; an Idempotency-Key makes a retry get the first answer."""
    from fhir_api.api.headers import check_accept

    check_accept(request)
    bundle = read_bundle(request, settings)
    ctx = Context(request, caller, settings, context)

    def respond() -> dict[str, Any]:
        return _answer(bundle, ctx, client_address).to_dict()

    key = request.header("Idempotency-Key")
    if not key:
        return Response.from_dict(respond())
    from fhir_api.store.idempotency import run_once_per_key

    answer = run_once_per_key(
        settings,
        scope=(request.sub, IDEMPOTENCY_SCOPE),
        key=key,
        body=request.body or b"",
        work=respond,
        context=context,
    )
    return Response.from_dict(answer)


def _answer(bundle: Bundle, ctx: Context, client_address: str | None) -> Response:
    if bundle.type == "batch":
        outcomes = [run_batch_entry(entry, ctx) for entry in bundle.entries]
    else:
        try:
            outcomes = run_transaction(bundle.entries, ctx)
        except errors.ApiError as exc:
            if exc.write_index is not None and exc.write_index < len(bundle.entries):
                _audit_refused_entry(bundle, exc, ctx, client_address)
            response = error_response(exc)
            response.interaction = bundle.type
            return response
    for outcome in outcomes:
        _audit_entry(outcome, ctx, client_address)
    return _response_bundle(bundle.type, outcomes, ctx.settings)


def _response_bundle(bundle_type: str, outcomes: list[Outcome], settings: Settings) -> Response:
    """The transaction-response or batch-response, entries in the order sent. An answer that would not
    fit MAX_RESPONSE_BYTES leaves out the entries' resources (as ``Prefer: return=minimal`` would):
    every write has landed by then, and each entry's location and etag still say where."""
    entries = [outcome.response_entry for outcome in outcomes]
    patients = tuple(dict.fromkeys(patient for outcome in outcomes for patient in outcome.patients))
    document: dict[str, Any] = {"resourceType": "Bundle", "type": f"{bundle_type}-response", "entry": entries}
    response = Response(200, fhirjson.dumps(document), patients=patients, interaction=bundle_type)
    if proxy_bytes(response.to_proxy()) > settings.max_response_bytes:
        document["entry"] = [
            {key: value for key, value in entry.items() if key != "resource"} for entry in entries
        ]
        response.body = fhirjson.dumps(document)
    return response


def _audit_entry(outcome: Outcome, ctx: Context, client_address: str | None) -> None:
    """The entry's own audit record, as if it had been sent on its own route."""
    request, caller, entry = ctx.request, ctx.caller, outcome.entry
    audit.audit(
        request_id=f"{request.request_id}/entry/{entry.index}",
        sub=request.sub,
        roles=request.roles,
        action=AUDIT_ACTIONS.get(outcome.interaction or "", "unknown"),
        resource_type=outcome.resource_type,
        resource_id=outcome.resource_id,
        status=outcome.status,
        version_id=outcome.version_id,
        client_id=caller.client_id if caller else None,
        scopes=caller.scopes if caller else (),
        interaction=outcome.interaction,
        patients=outcome.patients,
        query=tuple(entry.query),
        client_address=client_address,
        method=entry.method or None,
    )


def _audit_refused_entry(
    bundle: Bundle, error: errors.ApiError, ctx: Context, client_address: str | None
) -> None:
    """The audit record of the entry that refused a transaction (the others never ran)."""
    from fhir_api.bundles.processing import error_outcome

    entry = bundle.entries[error.write_index or 0]
    _audit_entry(error_outcome(entry, error), ctx, client_address)
