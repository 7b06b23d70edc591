"""Running a Bundle's entries on the resource service and the existing interactions.

A transaction (FHIR R4 http.html#trules) is processed DELETE, POST, PUT, then GET: every entry is
authorised first (one refused entry refuses the Bundle), conditional creates and updates are resolved
to the resource they find or a new id, ``urn:uuid:``/``urn:oid:`` fullUrls are mapped to those ids and
every reference to them rewritten, each write is prepared (validated and checked by the same rules as
on its own) and all of them land in ONE ``Store.write_all``; the reads run after it and see its writes.
A batch runs each entry as a transaction of one, so each entry is its own all-or-nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fhir_api import errors
from fhir_api.api import headers, interactions
from fhir_api.api.http import Request, Response
from fhir_api.api.outcome import error_response, operation_outcome, status_of
from fhir_api.auditevents.compartment import patient_ids
from fhir_api.auth import access
from fhir_api.bundles import references
from fhir_api.bundles.entries import PROCESSING_ORDER, Entry, at_entry
from fhir_api.fhir import fhirjson
from fhir_api.fhir.fhirjson import RawJson
from fhir_api.routes import Route
from fhir_api.settings import Settings
from fhir_api.store.dynamo import TRANSACTION_ACTIONS_LIMIT
from fhir_api.store.types import StoredResource, Write

# DynamoDB's limit on the items of one TransactWriteItems, all together.
TRANSACTION_BYTES_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class Context:
    """What every entry is run with: the Bundle's request and caller, and the settings."""

    request: Request
    caller: access.Caller | None
    settings: Settings
    lambda_context: Any = None

    @property
    def prefer_return(self) -> str:
        """The ``return`` preference of the Bundle's ``Prefer`` header (applies to every entry)."""
        prefer = (self.request.header("Prefer") or "").replace(" ", "").lower()
        for preference in ("minimal", "operationoutcome", "representation"):
            if f"return={preference}" in prefer:
                return preference
        return "representation"


@dataclass
class Outcome:
    """What one entry came to: its answer in the response Bundle, and what its audit record names."""

    entry: Entry
    status: int
    response_entry: dict[str, Any]
    interaction: str | None
    resource_type: str | None = None
    resource_id: str | None = None
    version_id: int | None = None
    patients: tuple[str, ...] = ()


@dataclass
class _Planned:
    """A write entry resolved to its resource: a write to prepare, or what it came to without one (an
    If-None-Exist match, the delete of a resource already gone)."""

    entry: Entry
    resource_id: str | None  # None: a conditional update, until its criteria are searched
    creates: bool = False
    if_match: int | None = None
    existing: StoredResource | None = None  # the If-None-Exist match: nothing is written
    unchanged: str | None = None  # why a DELETE writes nothing (the resource is unknown or gone)
    write: Write | None = field(default=None)

    @property
    def deletes(self) -> bool:
        return self.entry.method == "DELETE"


def run_transaction(entries: list[Entry], ctx: Context) -> list[Outcome]:
    """Run a transaction's entries: all of its writes land, or the error naming its entry is raised.

    Conditional updates are prepared in entry order with the identities known by then (those of POST
    and PUT [type]/[id] entries, and of earlier conditional updates); every other write sees them all.
    """
    ordered = sorted(entries, key=lambda entry: (PROCESSING_ORDER[entry.method], entry.index))
    for entry in ordered:
        if entry.route is not None:
            _authorise(entry, entry.route, ctx)
    planned = [_plan(entry, ctx) for entry in ordered if entry.method != "GET"]
    identities = _identities([plan for plan in planned if plan.resource_id is not None])
    for plan in planned:
        if plan.entry.is_conditional_update:
            _prepare_conditional_update(plan, identities, ctx)
    for plan in planned:
        if plan.write is None and plan.existing is None and plan.unchanged is None:
            plan.write = _prepare(plan, identities, ctx)
    writes = [plan for plan in planned if plan.write is not None]
    _refuse_double_writes(writes)
    _refuse_references_to_deleted(writes)
    _commit(writes, ctx)
    outcomes = {plan.entry.index: _write_outcome(plan, ctx) for plan in planned}
    for entry in ordered:
        if entry.method == "GET" and entry.route is not None:
            outcomes[entry.index] = run_read(entry, entry.route, ctx)
    return [outcomes[entry.index] for entry in entries]


def run_batch_entry(entry: Entry, ctx: Context) -> Outcome:
    """One batch entry on its own: its answer, or its error in ``response.outcome``."""
    if entry.refused is not None:
        return error_outcome(entry, entry.refused)
    try:
        return run_transaction([entry], ctx)[0]
    except errors.ApiError as exc:
        return error_outcome(entry, exc)


def run_read(entry: Entry, route: Route, ctx: Context) -> Outcome:
    """A GET entry, answered by the interaction that answers it on its own route (its errors included)."""
    request = ctx.request
    entry_request = Request(
        method="GET",
        path=entry.path,
        path_params=dict(entry.path_params),
        query=entry.query,
        headers={"accept": "application/fhir+json", **entry.headers},
        body=None,
        request_id=request.request_id,
        sub=request.sub,
        roles=request.roles,
        base_url=request.base_url,
    )
    try:
        response = interactions.run(route, entry_request, ctx.settings, ctx.lambda_context)
    except errors.ApiError as exc:
        response = error_response(at_entry(exc, entry.index, entry.resource_type))
    return _read_outcome(entry, route, response, request.base_url)


def error_outcome(entry: Entry, error: errors.ApiError) -> Outcome:
    """A refused entry's answer: its status and its OperationOutcome in ``response.outcome``."""
    status = status_of(error)
    route = entry.route
    return Outcome(
        entry,
        status,
        {"response": {"status": _status_line(status), "outcome": operation_outcome(error.issues)}},
        route.interaction if route else None,
        entry.resource_type or None,
        entry.path_params.get("id"),
    )


# -- authorisation ---------------------------------------------------------------------------------


def _authorise(entry: Entry, route: Route, ctx: Context) -> None:
    """Refuse the entry unless the caller may call its route on its own (roles and SMART scopes)."""
    try:
        access.check(route, ctx.caller, ctx.settings.token_leeway_seconds)
    except errors.ApiError as exc:
        raise at_entry(exc, entry.index, entry.resource_type) from exc


# -- writes ----------------------------------------------------------------------------------------


def _plan(entry: Entry, ctx: Context) -> _Planned:
    """Resolve a POST, PUT, PATCH or DELETE entry to the resource it writes (If-None-Exist is searched here;
    a conditional update's criteria when it is prepared)."""
    from fhir_api.resources import service_for

    service = service_for(entry.resource_type, ctx.settings)
    try:
        if_match = _if_match(entry)
        if entry.method == "POST":
            base = ctx.request.base_url
            existing = service.conditional_match(entry.if_none_exist, base) if entry.if_none_exist else None
            if existing is not None:
                return _Planned(entry, existing.id, existing=existing)
            return _Planned(entry, str(uuid.uuid4()), creates=True)
        if entry.is_conditional_update:
            return _Planned(entry, None, if_match=if_match)
        plan = _Planned(entry, entry.path_params["id"], if_match=if_match)
        if entry.method == "DELETE":
            _prepare_delete(plan, service)
        return plan
    except errors.ApiError as exc:
        raise at_entry(exc, entry.index, entry.resource_type) from exc


def _prepare_delete(plan: _Planned, service: Any) -> None:
    """The tombstone of a DELETE entry. An unknown or already deleted resource changes nothing and is
    200 (as DELETE on its own route answers); with ifMatch it is 412, no version being current."""
    try:
        plan.write = service.prepare_delete(plan.resource_id, plan.if_match)
    except errors.ResourceNotFound as exc:
        if plan.if_match is not None:
            raise errors.PreconditionFailed(
                f"ifMatch names version {plan.if_match}, but {exc.diagnostics}"
            ) from exc
        gone = isinstance(exc, errors.ResourceGone)
        plan.unchanged = f"{plan.entry.resource_type}/{plan.resource_id} " + (
            "is already deleted." if gone else "does not exist."
        )


def _prepare_conditional_update(plan: _Planned, identities: dict[str, str], ctx: Context) -> None:
    """Prepare PUT [type]?criteria as its own route would (the service's conditional update), then
    record the identity its fullUrl stands for."""
    from fhir_api.resources import service_for

    entry = plan.entry
    service = service_for(entry.resource_type, ctx.settings)
    document = references.rewrite(entry.resource, identities)
    try:
        write, created = service.prepare_conditional_update(
            entry.query_text, document, plan.if_match, ctx.request.base_url
        )
    except errors.ApiError as exc:
        raise at_entry(exc, entry.index, entry.resource_type) from exc
    plan.write, plan.creates, plan.resource_id = write, created, write.resource.id
    identities.update(_identities([plan]))


def _if_match(entry: Entry) -> int | None:
    if entry.if_match is None:
        return None
    version = headers.etag_version(entry.if_match)
    if version is None:
        raise errors.InvalidRequest(
            f'ifMatch must be a version ETag such as W/"1" (got {entry.if_match!r}).',
            expression=(f"{entry.where}.request.ifMatch",),
        )
    return version


def _refuse_double_writes(writes: list[_Planned]) -> None:
    """One resource, one entry: a transaction cannot write the same resource twice."""
    seen: dict[tuple[str, str], int] = {}
    for plan in writes:
        key = (plan.entry.resource_type, str(plan.resource_id))
        if key in seen:
            raise errors.InvalidRequest(
                f"{plan.entry.where} writes {key[0]}/{key[1]}, which Bundle.entry[{seen[key]}] writes too; "
                "a transaction writes each resource once.",
                expression=(plan.entry.where,),
            )
        seen[key] = plan.entry.index


def _refuse_references_to_deleted(writes: list[_Planned]) -> None:
    """A resource cannot point at one the same transaction deletes (the store checks only what stays)."""
    deleted = {
        (plan.entry.resource_type, str(plan.resource_id)): plan.entry.index for plan in writes if plan.deletes
    }
    for plan in writes:
        for reference in plan.write.references if plan.write is not None else ():
            if reference in deleted:
                raise at_entry(
                    errors.BusinessRuleViolation(
                        f"It references {reference[0]}/{reference[1]}, which "
                        f"Bundle.entry[{deleted[reference]}] deletes.",
                        expression=(f"{plan.entry.resource_type}.subject",),
                    ),
                    plan.entry.index,
                    plan.entry.resource_type,
                )


def _identities(planned: list[_Planned]) -> dict[str, str]:
    """Each local fullUrl (urn:uuid, urn:oid) and the ``Type/id`` its entry came to."""
    identities: dict[str, str] = {}
    for plan in planned:
        full_url = plan.entry.full_url
        if full_url and references.is_local(full_url):
            references.check_local(full_url, plan.entry.where)
            identities[full_url] = f"{plan.entry.resource_type}/{plan.resource_id}"
    return identities


def _prepare(plan: _Planned, identities: dict[str, str], ctx: Context) -> Write:
    """Validate and check the entry's resource, its references rewritten, as its own write would be."""
    from fhir_api.resources import service_for

    entry = plan.entry
    service = service_for(entry.resource_type, ctx.settings)
    document = references.rewrite(entry.resource, identities)
    resource_id = str(plan.resource_id)
    try:
        if plan.creates:
            return service.prepare_create(document, resource_id=resource_id)
        if entry.patch is not None:
            patch = references.rewrite(entry.patch, identities)
            return service.prepare_patch(resource_id, patch, plan.if_match)
        return service.prepare_update(resource_id, document, plan.if_match)
    except errors.ApiError as exc:
        raise at_entry(exc, entry.index, entry.resource_type) from exc


def _commit(writes: list[_Planned], ctx: Context) -> None:
    """Land every write in one DynamoDB transaction, after checking that it fits one."""
    if not writes:
        return
    from fhir_api.resources import service_for
    from fhir_api.resources.service import write_conflict

    store = service_for(writes[0].entry.resource_type, ctx.settings).store
    batch = [plan.write for plan in writes if plan.write is not None]
    actions, owners = store.transaction_actions(batch)
    _check_fits(writes, actions, owners)
    try:
        store.write_all(batch)
    except errors.ApiError as exc:
        if exc.write_index is None:
            raise
        plan = writes[exc.write_index]  # the store's index: of the write, not yet of the entry
        error = write_conflict(exc, plan.if_match)
        raise at_entry(error, plan.entry.index, plan.entry.resource_type) from exc


def _check_fits(writes: list[_Planned], actions: list[dict[str, Any]], owners: list[int]) -> None:
    """DynamoDB's limits on one transaction: 100 actions, 4 MB of items, each item written once."""
    entries = len({plan.entry.index for plan in writes})
    if len(actions) > TRANSACTION_ACTIONS_LIMIT:
        raise errors.PayloadTooLarge(
            f"This transaction Bundle's {entries} writes need {len(actions)} database actions (each "
            "resource, the version it replaces, each referenced patient it checks and each search term); one "
            f"DynamoDB transaction takes at most {TRANSACTION_ACTIONS_LIMIT}, and a transaction is all or "
            "nothing. Send it as several transaction Bundles.",
            expression=("Bundle.entry",),
        )
    size = sum(len(fhirjson.dumps(action)) for action in actions)
    if size > TRANSACTION_BYTES_LIMIT:
        raise errors.PayloadTooLarge(
            f"This transaction Bundle's {entries} writes come to about {size} bytes in the database; one "
            f"DynamoDB transaction takes at most {TRANSACTION_BYTES_LIMIT}. Send it as several Bundles.",
            expression=("Bundle.entry",),
        )
    claimed: dict[tuple[str, str], int] = {}
    for action, owner in zip(actions, owners, strict=True):
        item = next(iter(action.values()))
        key = item.get("Key") or item.get("Item") or {}
        identity = (item["TableName"], fhirjson.dumps(key.get("id") or key.get("resourceKey")))
        if identity in claimed and claimed[identity] != owner:
            first, second = writes[claimed[identity]].entry, writes[owner].entry
            raise at_entry(
                errors.DuplicateResource(
                    f"{second.resource_type} claims an identifier that Bundle.entry[{first.index}] claims "
                    "too; an identifier belongs to one patient.",
                    expression=(f"{second.resource_type}.identifier",),
                ),
                second.index,
                second.resource_type,
            )
        claimed.setdefault(identity, owner)


# -- answers ---------------------------------------------------------------------------------------


def _write_outcome(plan: _Planned, ctx: Context) -> Outcome:
    """A POST or PUT entry's answer: status, location, etag, lastModified, and the resource as preferred."""
    from fhir_api.resources import presented

    if plan.deletes:
        return _delete_outcome(plan)
    stored = plan.existing if plan.existing is not None else plan.write.resource if plan.write else None
    assert stored is not None
    status = 201 if plan.creates else 200
    response: dict[str, Any] = {"status": _status_line(status)}
    if plan.existing is None:
        response["location"] = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
    response["etag"] = f'W/"{stored.version_id}"'
    response["lastModified"] = stored.last_updated
    entry: dict[str, Any] = {"fullUrl": f"{ctx.request.base_url}/{stored.resource_type}/{stored.id}"}
    preference = ctx.prefer_return
    if preference == "representation":
        entry["resource"] = RawJson(presented(stored).text)
    elif preference == "operationoutcome":
        issue = errors.Issue(
            "informational",
            f"{stored.resource_type}/{stored.id} version {stored.version_id} "
            + ("stored." if plan.existing is None else "matched ifNoneExist; nothing was stored."),
            severity="information",
        )
        response["outcome"] = operation_outcome([issue])
    entry["response"] = response
    return Outcome(
        plan.entry,
        status,
        entry,
        plan.entry.route.interaction if plan.entry.route else None,
        stored.resource_type,
        stored.id,
        stored.version_id,
        patient_ids((stored,)),
    )


def _delete_outcome(plan: _Planned) -> Outcome:
    """A DELETE entry's answer: 200, the tombstone's etag, and what happened in ``response.outcome``."""
    entry, write = plan.entry, plan.write
    reference = f"{entry.resource_type}/{plan.resource_id}"
    response: dict[str, Any] = {"status": _status_line(200)}
    if write is not None:
        response["etag"] = f'W/"{write.resource.version_id}"'
        response["lastModified"] = write.resource.last_updated
        text = f"Deleted {reference}: version {write.resource.version_id} marks it deleted."
    else:
        text = f"Not deleted: {plan.unchanged}"
    issue = errors.Issue("informational", text, severity="information")
    response["outcome"] = operation_outcome([issue])
    superseded = (write.superseded,) if write is not None and write.superseded is not None else ()
    return Outcome(
        entry,
        200,
        {"response": response},
        "delete",
        entry.resource_type,
        plan.resource_id,
        write.resource.version_id if write is not None else None,
        patient_ids(superseded),
    )


def _read_outcome(entry: Entry, route: Route, response: Response, base_url: str) -> Outcome:
    body = response.body
    document = fhirjson.loads(body) if isinstance(body, str) and body else body
    answer: dict[str, Any] = {"status": _status_line(response.status)}
    result: dict[str, Any] = {}
    etag = response.headers.get("ETag")
    if etag:
        answer["etag"] = etag
    if response.status >= 400:
        answer["outcome"] = document
    elif isinstance(document, dict):
        meta = document.get("meta")
        if isinstance(meta, dict) and meta.get("lastUpdated"):
            answer["lastModified"] = meta["lastUpdated"]
        if document.get("resourceType") != "Bundle" and document.get("id"):
            result["fullUrl"] = f"{base_url}/{document['resourceType']}/{document['id']}"
        result["resource"] = RawJson(body) if isinstance(body, str) else document
    result["response"] = answer
    version = headers.etag_version(etag)
    return Outcome(
        entry,
        response.status,
        result,
        route.interaction,
        entry.resource_type,
        entry.path_params.get("id"),
        version,
        response.patients,
    )


def _status_line(status: int) -> str:
    """``201 Created``: FHIR's response.status is the HTTP status code, optionally with its phrase."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
