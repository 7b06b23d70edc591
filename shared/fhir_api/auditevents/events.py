"""Audit records as FHIR R4 AuditEvents, after the IHE Basic Audit Log Patterns (BALP) for RESTful
interactions, and the terms an AuditEvent is found by.

Two kinds of line become AuditEvents:

- a function's audit record (``fhir_api.audit``, ``"message": "audit"``, ``source`` ``function``): every
  request a function answered;
- an API Gateway access-log line (``"source": "api-gateway"``) whose ``error`` names a response API
  Gateway gave itself (``UNAUTHORIZED``, ``ACCESS_DENIED``, ``THROTTLED``, ``INTEGRATION_TIMEOUT``...):
  the requests no function answered, refusals from a cached authorizer policy included. A line with
  no ``error`` was answered by a function, whose own record covers it.

The authorizer's records are not turned into AuditEvents: the access log has the same requests under
their API request id (the authorizer only knows its own invocation id).

An AuditEvent's id is derived from the line's source and request id, so a line delivered twice makes
the same AuditEvent (recorded once). Nothing of a request's content is kept: ids, codes, the
parameter names of a search, the caller's ``sub``, roles, client and address.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_api.audit import AUDIT_MESSAGE, ip_address
from fhir_api.fhir import terminology
from fhir_api.routes import API_PREFIX, SERVED_TYPES, match_route

ACCESS_LOG_SOURCE = "api-gateway"
SOURCES = ("function", ACCESS_LOG_SOURCE)

EVENT_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
# FHIR's restful-interaction codes the subtype may hold (smart-configuration is not one).
SUBTYPES = terminology.RESTFUL_INTERACTIONS
# BALP: C create, R read/vread/history/capabilities, U update/patch, D delete, E search and operations.
ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "R",
    "capabilities": "R",
    "smart-configuration": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "search-type": "E",
    "transaction": "E",
    "batch": "E",
    "operation": "E",
}
METHOD_ACTIONS = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}
OUTCOME_SUCCESS, OUTCOME_MINOR, OUTCOME_SERIOUS = "0", "4", "8"

DCM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
NETWORK_IP = "2"  # AuditEvent.agent.network.type: IP address

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z")


@dataclass(frozen=True)
class Occurrence:
    """One request as an audit line tells it, whichever line it was."""

    source: str
    request_id: str
    recorded: str  # FHIR instant, UTC
    status: int
    interaction: str | None = None
    method: str | None = None
    reason: str | None = None
    sub: str | None = None
    roles: tuple[str, ...] = ()
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    client_address: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    version_id: str | None = None
    patients: tuple[str, ...] = ()
    query: tuple[str, ...] = ()

    @property
    def event_id(self) -> str:
        """The AuditEvent's id: the same line delivered twice gives the same id."""
        return hashlib.sha256(f"{self.source}\n{self.request_id}".encode()).hexdigest()[:40]


def occurrence(line: dict[str, Any]) -> Occurrence | None:
    """The request a parsed log line tells of, or None when the line is not one to record."""
    if line.get("message") == AUDIT_MESSAGE and isinstance(line.get("audit"), dict):
        return _from_function(line["audit"])
    if line.get("source") == ACCESS_LOG_SOURCE:
        return _from_access_log(line)
    return None


def _from_function(record: dict[str, Any]) -> Occurrence | None:
    if record.get("source", "function") != "function":
        return None  # the authorizer's: the access log has the same request under its API request id
    request_id, recorded, status = _text(record.get("request_id")), record.get("time"), record.get("status")
    if not request_id or not isinstance(recorded, str) or not _INSTANT.fullmatch(recorded):
        return None
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    method = _text(record.get("method"))
    return Occurrence(
        source="function",
        request_id=request_id,
        recorded=recorded,
        status=status,
        interaction=_text(record.get("interaction")),
        method=method.upper() if method else None,
        reason=_text(record.get("reason")),
        sub=_text(record.get("sub")),
        roles=_texts(record.get("roles")),
        client_id=_text(record.get("client_id")),
        scopes=_texts(record.get("scopes")),
        client_address=ip_address(record.get("client_address")),
        resource_type=_text(record.get("resource_type")),
        resource_id=_id(record.get("resource_id")),
        version_id=_id(record.get("version_id")),
        patients=tuple(p for p in _texts(record.get("patients")) if _FHIR_ID.fullmatch(p)),
        query=_texts(record.get("query")),
    )


def _from_access_log(line: dict[str, Any]) -> Occurrence | None:
    error = _text(line.get("error"))
    request_id = _text(line.get("request_id"))
    if not error or error == "-" or not request_id:
        return None  # a function answered, and its own record tells of the request
    try:
        status = int(str(line.get("status")))
    except ValueError:
        return None
    recorded = _access_log_time(line)
    if recorded is None:
        return None
    method = (_text(line.get("method")) or "").upper() or None
    path = _api_path(_text(line.get("path")) or "")
    matched = match_route(method or "", path) if path else None
    route, params = matched if matched else (None, {})
    resource_type, resource_id = (route.resource_type, params.get("id")) if route else _path_resource(path)
    sub = _text(line.get("sub"))
    return Occurrence(
        source=ACCESS_LOG_SOURCE,
        request_id=request_id,
        recorded=recorded,
        status=status,
        interaction=route.interaction if route else None,
        method=method,
        reason=error.lower().replace("_", " "),
        sub=None if sub == "-" else sub,
        client_address=ip_address(line.get("source_ip")),
        resource_type=resource_type,
        resource_id=_id(resource_id),
        version_id=_id(params.get("vid")),
    )


def _access_log_time(line: dict[str, Any]) -> str | None:
    """``time_epoch`` (milliseconds), else API Gateway's ``requestTime`` (``26/Nov/2026:12:00:00 +0000``)."""
    epoch = str(line.get("time_epoch") or "")
    if epoch.isdigit():
        return _instant(datetime.fromtimestamp(int(epoch) / 1000, UTC))
    try:
        return _instant(datetime.strptime(str(line.get("time")), "%d/%b/%Y:%H:%M:%S %z"))
    except ValueError:
        return None


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _api_path(path: str) -> str:
    """The path from ``/api/fhir`` on (an execute-api path starts with the stage)."""
    at = path.find(API_PREFIX + "/")
    return path[at:] if at >= 0 else ""


def _path_resource(path: str) -> tuple[str | None, str | None]:
    parts = path[len(API_PREFIX) :].strip("/").split("/") if path else []
    resource_type = parts[0] if parts and parts[0] in SERVED_TYPES else None
    return resource_type, parts[1] if resource_type and len(parts) > 1 else None


def _text(value: Any) -> str | None:
    return value[:256] if isinstance(value, str) and value else None


def _texts(value: Any) -> tuple[str, ...]:
    return (
        tuple(item[:256] for item in value if isinstance(item, str) and item)
        if isinstance(value, list)
        else ()
    )


def _id(value: Any) -> str | None:
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    return text if text is not None and _FHIR_ID.fullmatch(text) else None


# -- the AuditEvent -------------------------------------------------------------------------------


def action_code(seen: Occurrence) -> str:
    """AuditEvent.action: from the interaction, else from the HTTP method (E for anything else)."""
    if seen.interaction in ACTIONS:
        return ACTIONS[seen.interaction]
    return METHOD_ACTIONS.get(seen.method or "", "E")


def outcome_code(status: int) -> str:
    """AuditEvent.outcome: 0 success, 4 a refusal or the client's error (4xx), 8 the server's (5xx)."""
    if status < 400:
        return OUTCOME_SUCCESS
    return OUTCOME_MINOR if status < 500 else OUTCOME_SERIOUS


def audit_event(seen: Occurrence, observer: str) -> dict[str, Any]:
    """The FHIR R4 AuditEvent of one request; ``observer`` names the API that saw it."""
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": seen.event_id, "type": EVENT_TYPE}
    if seen.interaction in SUBTYPES:
        event["subtype"] = [
            {"system": INTERACTION_SYSTEM, "code": seen.interaction, "display": seen.interaction}
        ]
    event["action"] = action_code(seen)
    event["recorded"] = seen.recorded
    event["outcome"] = outcome_code(seen.status)
    description = f"HTTP {seen.status}"
    event["outcomeDesc"] = f"{description}: {seen.reason}" if seen.reason else description
    event["agent"] = _agents(seen, observer)
    event["source"] = {
        "site": observer,
        "observer": {"display": observer},
        "type": [{"system": SOURCE_TYPE, "code": "3", "display": "Web Server"}],
    }
    entities = _entities(seen)
    if entities:
        event["entity"] = entities
    return event


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _agents(seen: Occurrence, observer: str) -> list[dict[str, Any]]:
    user: dict[str, Any] = {
        "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
    }
    if seen.roles:
        user["role"] = [{"text": role} for role in seen.roles]
    if seen.sub:
        user["who"] = {"identifier": {"value": seen.sub}}
        user["altId"] = seen.sub
    user["requestor"] = True
    if seen.client_address:
        user["network"] = {"address": seen.client_address, "type": NETWORK_IP}
    agents = [user]
    if seen.client_id:
        client: dict[str, Any] = {
            "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
            "who": {"identifier": {"value": seen.client_id}},
            "requestor": False,
        }
        if seen.scopes:
            client["role"] = [{"text": scope} for scope in seen.scopes]
        agents.append(client)
    agents.append(
        {
            "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
            "who": {"display": observer},
            "requestor": False,
        }
    )
    return agents


def _entities(seen: Occurrence) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    patients = list(seen.patients)
    if seen.resource_type and seen.resource_id:
        reference = f"{seen.resource_type}/{seen.resource_id}"
        if seen.version_id:
            reference += f"/_history/{seen.version_id}"
        if seen.resource_type == "Patient":
            entities.append(_patient_entity(reference))
            patients = [patient for patient in patients if patient != seen.resource_id]
        else:
            entities.append(
                {
                    "what": {"reference": reference},
                    "type": _coding(ENTITY_TYPE, "2", "System Object"),
                    "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
                }
            )
    entities.extend(_patient_entity(f"Patient/{patient}") for patient in patients)
    if seen.interaction == "search-type" and seen.resource_type:
        # BALP's query entity, without PHI: the parameter names only, never their values.
        query = f"{seen.resource_type}?{'&'.join(seen.query)}" if seen.query else seen.resource_type
        entities.append(
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "24", "Query"),
                "description": "search parameter names (values are not recorded)",
                "query": base64.b64encode(query.encode()).decode("ascii"),
            }
        )
    return entities


def _patient_entity(reference: str) -> dict[str, Any]:
    return {
        "what": {"reference": reference},
        "type": _coding(ENTITY_TYPE, "1", "Person"),
        "role": _coding(OBJECT_ROLE, "1", "Patient"),
    }


# -- what an AuditEvent is found by ------------------------------------------------------------------


def references(event: dict[str, Any]) -> list[str]:
    """Every ``Type/id`` the event's entities name (a version reference as its resource)."""
    found: list[str] = []
    for entity in event.get("entity") or ():
        reference = ((entity.get("what") or {}).get("reference")) if isinstance(entity, dict) else None
        if isinstance(reference, str):
            base = "/".join(reference.split("/")[:2])
            if base not in found:
                found.append(base)
    return found


def patients(event: dict[str, Any]) -> list[str]:
    """The ids of the patients the event's entities name with the role patient."""
    found: list[str] = []
    for entity in event.get("entity") or ():
        role = (entity.get("role") or {}).get("code") if isinstance(entity, dict) else None
        reference = ((entity.get("what") or {}).get("reference")) or ""
        if role == "1" and reference.startswith("Patient/"):
            patient = reference.split("/")[1]
            if patient not in found:
                found.append(patient)
    return found


def agents(event: dict[str, Any]) -> list[str]:
    """The identifiers (``sub``, client id) of the agents who made the request."""
    found: list[str] = []
    for agent in event.get("agent") or ():
        value = ((agent.get("who") or {}).get("identifier") or {}).get("value")
        for candidate in (value, agent.get("altId")):
            if isinstance(candidate, str) and candidate not in found:
                found.append(candidate)
    return found


def subtypes(event: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(system, code) of each subtype."""
    return [(coding.get("system"), coding.get("code")) for coding in event.get("subtype") or ()]


def terms(event: dict[str, Any]) -> list[str]:
    """The index terms of an event: each entity's id, each patient, each agent, and its month.

    A Patient entity is listed once, as its patient: ``entity=Patient/{id}`` reads that term."""
    found = [
        f"entity|{reference.split('/')[1]}"
        for reference in references(event)
        if not reference.startswith("Patient/")
    ]
    found += [f"patient|{patient}" for patient in patients(event)]
    found += [f"agent|{agent}" for agent in agents(event)]
    found.append(month_term(str(event["recorded"])[:7]))
    return list(dict.fromkeys(found))


def month_term(month: str) -> str:
    """The term under which every event of ``month`` (``YYYY-MM``) is listed."""
    return f"month|{month}"
