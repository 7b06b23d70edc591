"""What a request's headers and body ask for, read once for every interaction: the body's media type
and JSON, ``Accept``/``_format``, ``Prefer: handling``, version ETags, ``If-Match``, and the
conditional read headers ``If-None-Match`` and ``If-Modified-Since``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from fhir_api import errors
from fhir_api.api.http import ACCEPTED_BODY_TYPES, Request, Response
from fhir_api.auditevents.compartment import patient_ids
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.settings import Settings
from fhir_api.store.types import StoredResource

WEAK_ETAG = re.compile(r'\s*(?:W/)?"(\d{1,12})"\s*')
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# PATCH bodies: JSON Patch; JSON Merge Patch; and plain JSON, which is either (by its shape), as
# fhirpy sends its patches.
PATCH_BODY_TYPES = (JSON_PATCH, MERGE_PATCH, "application/json")
FHIRPATH_PATCH_REFUSED = (
    "FHIRPath Patch (a Parameters resource) is not supported; send a JSON Patch "
    "(Content-Type: application/json-patch+json) or a JSON Merge Patch (application/merge-patch+json)."
)


def prefers_lenient_handling(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header asks for ``handling=lenient``; strict is the default. Preferences are
    comma-separated, and the first ``handling`` counts (RFC 7240)."""
    for preference in (prefer or "").split(","):
        token, _, value = preference.split(";", 1)[0].partition("=")
        if token.strip().lower() == "handling":
            return value.strip().strip('"').lower() == "lenient"
    return False


def not_modified(stored: StoredResource, request: Request) -> Response | None:
    """304 (no body, the version's ETag and Last-Modified) when the client already holds this version:
    If-None-Match names it (or is ``*``), or, without If-None-Match, If-Modified-Since is not before
    its lastUpdated (HTTP dates have whole seconds, so a change within the same second counts as
    not after it). None when the resource must be sent."""
    if request.method != "GET":
        return None
    none_match = request.header("If-None-Match")
    if none_match is not None:
        if not _etag_listed(none_match, stored.version_id):
            return None
    else:
        since = _http_date(request.header("If-Modified-Since"))
        if since is None:
            return None
        last_updated = fhirtime.parse_canonical(stored.last_updated).replace(microsecond=0)
        if last_updated > since:
            return None
    return Response(304, None, version_headers(stored), patient_ids((stored,)))


def version_headers(stored: StoredResource) -> dict[str, str]:
    """``ETag`` and ``Last-Modified`` of a stored version, as every answer about one carries them."""
    return {
        "ETag": f'W/"{stored.version_id}"',
        "Last-Modified": fhirtime.http_date(stored.last_updated),
    }


def _etag_listed(value: str, version_id: int) -> bool:
    """Whether an If-None-Match list (``*``, ``W/"3"``, ``"3"``, and the bare ``3`` fhirpy sends)
    names ``version_id``; weak comparison, as RFC 9110 prescribes for If-None-Match."""
    for candidate in value.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        named = etag_version(candidate) or (
            int(candidate) if candidate.isdigit() and len(candidate) < 13 else None
        )
        if named == version_id:
            return True
    return False


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date (RFC 9110: IMF-fixdate, or the obsolete forms) as an aware UTC datetime; None when
    it is missing or not a date (RFC 9110: an invalid If-Modified-Since is ignored)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def body_media_type(request: Request) -> str:
    return (request.header("Content-Type") or "").partition(";")[0].strip().lower()


def read_body(
    request: Request,
    settings: Settings,
    accepted: tuple[str, ...] = ACCEPTED_BODY_TYPES,
    limit: int | None = None,
) -> Any:
    """The JSON body, after its type (one of ``accepted``) and size (``limit`` bytes, MAX_BODY_BYTES
    unless given)."""
    limit = limit or settings.max_body_bytes
    parameters = (request.header("Content-Type") or "").partition(";")[2]
    content_type = body_media_type(request)
    if accepted is PATCH_BODY_TYPES and content_type in ACCEPTED_BODY_TYPES and content_type not in accepted:
        raise errors.UnsupportedMediaType(FHIRPATH_PATCH_REFUSED)
    if content_type not in accepted:
        expected = "application/json-patch+json" if accepted is PATCH_BODY_TYPES else "application/fhir+json"
        raise errors.UnsupportedMediaType(
            f"Send the body as {expected} (got {content_type or 'no Content-Type'})."
        )
    charset = parameters.lower().replace(" ", "").partition("charset=")[2].split(";")[0].strip('"')
    if charset and charset not in ("utf-8", "utf8"):
        raise errors.UnsupportedMediaType(f"FHIR JSON is UTF-8; charset={charset} is not supported.")
    if request.body is None or not request.body.strip():
        raise errors.InvalidRequest("The request has no body; send the resource as JSON.")
    if len(request.body) > limit:
        raise errors.PayloadTooLarge(f"The body is {len(request.body)} bytes; the limit is {limit}.")
    return fhirjson.loads(request.body)


def request_body(request: Request, settings: Settings) -> Any:
    """The request's FHIR JSON body, checked (media type, charset, size) and parsed."""
    return read_body(request, settings)


def check_accept(request: Request) -> None:
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


def if_match_version(value: str | None) -> int | None:
    if value is None:
        return None
    version = etag_version(value)
    if version is None:
        raise errors.InvalidRequest(f'If-Match must be a version ETag such as W/"1" (got {value!r}).')
    return version
