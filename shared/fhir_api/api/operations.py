"""FHIR operations: ``$validate``, the only one served, and the answers for the others (501 naming
the operation, or 405 when it is served with another method).

``$validate`` runs the checks of a create or an update (``ResourceService.validation_issues``) and
answers 200 with an OperationOutcome whatever the verdict, as FHIR R4's Resource-validate says; a 4xx
means the validation itself could not be done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir_api import errors
from fhir_api.api.http import Request, Response
from fhir_api.api.outcome import operation_outcome
from fhir_api.auditevents.compartment import patient_ids
from fhir_api.fhir import fhirjson
from fhir_api.routes import ROUTES, operation_methods
from fhir_api.store.types import StoredResource

if TYPE_CHECKING:
    from fhir_api.resources.service import ResourceService

VALIDATE_MODES = ("create", "update")


def operation(service: ResourceService, request: Request) -> Response:
    """POST [type]/$[name]: the operations this server implements (``$validate``)."""
    name = request.path.rstrip("/").rsplit("/", 1)[-1]
    if name != "$validate":
        raise errors.OperationNotSupported(f"The operation {name} is not supported.")
    return validate(service, request)


def validate(service: ResourceService, request: Request) -> Response:
    """POST [type]/$validate: the checks of a create or an update, nothing stored. 200 with an
    OperationOutcome whether or not the resource is valid (FHIR R4 Resource-validate); a 4xx means
    the validation itself could not be done."""
    from fhir_api.api.headers import request_body

    body = request_body(request, service.settings)
    resource, mode = _validate_arguments(body, request, service.resource_type)
    issues = service.validation_issues(resource, mode)
    if not issues:
        issues = [
            errors.Issue(
                "informational",
                f"The {service.resource_type} would be accepted by a {mode}.",
                severity="information",
            )
        ]
    patients = (
        patient_ids((_unstored(service.resource_type, resource),)) if isinstance(resource, dict) else ()
    )
    return Response(200, operation_outcome(issues), patients=patients)


def refuse_unsupported_operation(request: Request) -> None:
    """501 naming the operation when the path asks for one (a ``$name`` segment) that no route serves
    with this method; 405 when a route serves it with another method (``GET .../$validate``)."""
    name = next((part for part in request.path.split("/") if part.startswith("$")), None)
    if name is None:
        return
    served = operation_methods(request.path)
    if served:
        raise errors.MethodNotAllowed(f"{name} is served with {', '.join(served)} here.", allowed=served)
    elsewhere = [f"{route.method} {route.path}" for route in ROUTES if route.path.endswith(f"/{name}")]
    where = f"; it is served only as {' and '.join(elsewhere)}" if elsewhere else ""
    raise errors.OperationNotSupported(
        f"The operation {name} is not supported here{where} (see the CapabilityStatement at /metadata)."
    )


def refuse_operation_in_id(request: Request) -> None:
    """A ``$name`` where a route expects an id is a request for an operation, never an id (FHIR ids
    have no ``$``): answered as an unsupported operation rather than as a malformed id."""
    if any(value.startswith("$") for value in request.path_params.values()):
        refuse_unsupported_operation(request)


def _validate_arguments(body: Any, request: Request, resource_type: str) -> tuple[Any, str]:
    """The resource and the mode of a $validate: the body is the resource (``mode`` in the query), or
    a Parameters resource with ``resource`` and optionally ``mode`` (create or update) and ``profile``
    (only the resource type's base profile, which every check here applies)."""
    modes = request.query.get("mode") or []
    mode: str | None = modes[0] if modes else None
    resource: Any = body
    profiles: list[Any] = list(request.query.get("profile") or [])
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        resource = None
        parameters = body.get("parameter")
        for parameter in parameters if isinstance(parameters, list) else []:
            name = parameter.get("name") if isinstance(parameter, dict) else None
            if name == "resource":
                resource = parameter.get("resource")
            elif name == "mode":
                mode = parameter.get("valueCode") or parameter.get("valueString")
            elif name == "profile":
                profiles.append(parameter.get("valueUri") or parameter.get("valueCanonical"))
            else:
                raise errors.InvalidRequest(
                    f"$validate takes the parameters resource, mode and profile (got {name!r}).",
                    expression=("Parameters.parameter",),
                )
        if not isinstance(resource, dict):
            raise errors.InvalidRequest(
                "The Parameters resource needs a parameter named resource holding the resource to validate.",
                expression=("Parameters.parameter",),
            )
    mode = mode or "create"
    if mode not in VALIDATE_MODES:
        raise errors.InvalidRequest(
            f"$validate mode {mode!r} is not supported; use {' or '.join(VALIDATE_MODES)}.",
            expression=("Parameters.parameter.mode",) if resource is not body else ("mode",),
        )
    base_profile = f"http://hl7.org/fhir/StructureDefinition/{resource_type}"
    for profile in profiles:
        if str(profile).split("|")[0] != base_profile:
            raise errors.InvalidRequest(
                f"Validation against the profile {profile!r} is not supported; this server validates "
                f"against FHIR R4 {resource_type} ({base_profile}) and its own rules.",
                expression=("profile",),
            )
    return resource, mode


def _unstored(resource_type: str, resource: dict[str, Any]) -> StoredResource:
    """A resource under validation, in the form the audit's patient lookup reads."""
    return StoredResource(resource_type, str(resource.get("id") or ""), 0, "", fhirjson.dumps(resource))
