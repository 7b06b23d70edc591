"""The audit trail: one structured JSON record per request, written through the functions' logger.

Who calls it
    ``fhir_api.api.handler.make_handler`` for every request a function answers, and the authorizer for the
    requests it refuses (401, and 403 when it sees the route the roles may not call). A request API
    Gateway refuses from a cached authorizer policy never reaches either; its access log covers those.

Signature
    ``audit(request_id, sub, roles, action, resource_type, resource_id, status, *, version_id=None,
    source="function", reason=None, client_id=None, scopes=(), interaction=None, patients=(),
    query=(), client_address=None, method=None) -> dict``

    - ``request_id``: API Gateway's ``requestContext.requestId`` (the authorizer, which is not given it,
      passes its own invocation id with ``source="authorizer"``);
    - ``sub`` and ``roles``: from the verified token (the authorizer context), never from the request;
    - ``action``: ``fhir_api.routes.AUDIT_ACTIONS[route.interaction]``;
    - ``resource_type``, ``resource_id``, ``version_id``: from the route and its path parameters (None for
      search and create; pass the new id after a create if known);
    - ``status``: the HTTP status code answered;
    - ``client_id`` and ``scopes``: the OAuth client (``client_id`` or ``azp``) and the SMART scopes the
      token carried, for machine clients (null and [] for a token without them);
    - ``reason``: an optional fixed phrase of the server's own (why a token was refused), never request
      content;
    - ``interaction``: FHIR's interaction code of the route (``read``, ``search-type``...), null when no
      route matched;
    - ``patients``: the ids of the patients whose data the answer held or the write touched (for a
      search, every patient of the page), so that the audit trail can say whose records were seen;
    - ``query``: the names of the query parameters (never their values);
    - ``client_address``: the caller's IP address as API Gateway saw it;
    - ``method``: the HTTP method (what a request no route serves asked for).

The record is logged at INFO under the key ``audit``::

    {"message": "audit", "audit": {"time": "2024-05-01T10:00:00.123Z", "request_id": "...",
     "sub": "...", "roles": ["practitioner"], "action": "read", "resource_type": "Encounter",
     "resource_id": "123", "version_id": null, "status": 200, "outcome": "success", "source": "function",
     "client_id": null, "scopes": [], "interaction": "read", "patients": ["p1"], "query": [],
     "client_address": "203.0.113.7", "method": "GET"}}

No PHI: the record holds ids and codes only. Values are checked, not trusted: an id that is not a FHIR
id (``[A-Za-z0-9-.]{1,64}``) is logged as null, because a client may have put anything in the URL.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import UTC, datetime
from typing import Any

from fhir_api.fhir.ids import FHIR_ID as _FHIR_ID
from fhir_api.logs import get_logger
from fhir_api.routes import AUDIT_ACTIONS, ROUTES, SERVED_TYPES

AUDIT_MESSAGE = "audit"
ACTIONS = frozenset(AUDIT_ACTIONS.values())
_VERSION_ID = re.compile(r"[0-9]{1,18}")
_ROLE = re.compile(r"[A-Za-z0-9_.:@/+=-]{1,128}")
_MAX_SUB_LENGTH = 256
# A SMART scope as written (query included): printable, no spaces.
_SCOPE = re.compile(r"[!-~]{1,128}")
# A query parameter name as FHIR writes them (``date``, ``_count``, ``subject:Patient``, ``patient.name``).
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
# Every route's interaction, and those a route serves under another name (a batch at the Bundle route).
INTERACTIONS = frozenset(route.interaction for route in ROUTES) | frozenset(AUDIT_ACTIONS)
# The most patient ids one record lists: a page holds at most 100 resources.
MAX_PATIENTS = 100
MAX_QUERY_NAMES = 30
SOURCES = ("function", "authorizer")
_METHOD = re.compile(r"[A-Z]{1,16}")


def outcome(status: int) -> str:
    """The audit outcome of an HTTP status: success, denied (401/403), failure (4xx) or error (5xx)."""
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    if status < 500:
        return "failure"
    return "error"


def audit(
    request_id: str | None,
    sub: str | None,
    roles: tuple[str, ...] | list[str] | None,
    action: str | None,
    resource_type: str | None,
    resource_id: str | None,
    status: int,
    *,
    version_id: str | int | None = None,
    source: str = "function",
    reason: str | None = None,
    client_id: str | None = None,
    scopes: tuple[str, ...] | list[str] = (),
    interaction: str | None = None,
    patients: tuple[str, ...] | list[str] = (),
    query: tuple[str, ...] | list[str] = (),
    client_address: str | None = None,
    method: str | None = None,
) -> dict[str, Any]:
    """Write one audit record for a request and return it."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": _text(request_id, 128),
        "sub": _text(sub, _MAX_SUB_LENGTH),
        "roles": [role for role in (roles or ()) if isinstance(role, str) and _ROLE.fullmatch(role)],
        "action": action if action in ACTIONS else "unknown",
        "resource_type": resource_type if resource_type in SERVED_TYPES else None,
        "resource_id": _matching(resource_id, _FHIR_ID),
        "version_id": _matching(version_id, _VERSION_ID),
        "status": int(status),
        "outcome": outcome(int(status)),
        "source": source if source in SOURCES else "function",
        "client_id": _text(client_id, 256),
        "scopes": [scope for scope in scopes if isinstance(scope, str) and _SCOPE.fullmatch(scope)][:100],
        "interaction": interaction if interaction in INTERACTIONS else None,
        "patients": _distinct(patients, _FHIR_ID)[:MAX_PATIENTS],
        "query": sorted(_distinct(query, _PARAMETER_NAME))[:MAX_QUERY_NAMES],
        "client_address": ip_address(client_address),
        "method": method if isinstance(method, str) and _METHOD.fullmatch(method) else None,
    }
    if reason:
        record["reason"] = reason[:64]
    get_logger().info(AUDIT_MESSAGE, extra={"audit": record})
    return record


def ip_address(value: Any) -> str | None:
    """``value`` when it is an IPv4 or IPv6 address, else None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    return _canonical_address(value)


# A function's callers come from a few addresses, and parsing one costs more than the rest of the record.
@functools.lru_cache(maxsize=256)
def _canonical_address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _distinct(values: Any, pattern: re.Pattern[str]) -> list[str]:
    kept: list[str] = []
    for value in values if isinstance(values, list | tuple) else ():
        if isinstance(value, str) and pattern.fullmatch(value) and value not in kept:
            kept.append(value)
    return kept


def _text(value: str | None, limit: int) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:limit]


def _matching(value: str | int | None, pattern: re.Pattern[str]) -> str | None:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    return text if text is not None and pattern.fullmatch(text) else None
