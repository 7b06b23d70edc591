"""Delivering one rest-hook notification: the same code behind the SQS queue in AWS and the local
stack's in-process queue.

Each attempt reads the Subscription again (``off``, ``error`` or gone: nothing is sent; its headers are
the current ones), checks the endpoint again (a name may resolve elsewhere since it was accepted),
reads the version it is about and POSTs it: the resource as ``application/fhir+json``, or an empty
body when the channel has no ``payload``. Any 2xx is delivered; anything else, a timeout or a refused
connection is a failure the queue retries after ``backoff_seconds``. After ``DELIVERY_MAX_ATTEMPTS``
failures the Subscription is set to ``error`` with the reason, and the message goes to the
dead-letter queue. Redirects are not followed (they could lead anywhere), and nothing of a header's
value or the body is ever logged.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from fhir_api import errors
from fhir_api.fhir import fhirjson, fhirtime
from fhir_api.notifications.endpoints import check_endpoint
from fhir_api.notifications.matching import Notification
from fhir_api.resources.subscription import header_pairs
from fhir_api.settings import Settings
from fhir_api.store.dynamo import Store
from fhir_api.store.types import StoredResource, Write

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300
USER_AGENT = "encounter-api-rest-hook/1"


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: ``delivered``, ``dropped`` (nothing to send any more) or a failure."""

    outcome: str  # delivered | dropped | failed
    reason: str = ""

    @property
    def failed(self) -> bool:
        """Whether the queue should try again (or give up after the last attempt)."""
        return self.outcome == "failed"


def backoff_seconds(attempt: int) -> int:
    """How long to wait after failed attempt number ``attempt`` (1-based): 2, 4, 8... capped at 5 min."""
    return min(2**attempt, MAX_BACKOFF_SECONDS)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def deliver(notification: Notification, store: Store, settings: Settings) -> Attempt:
    """Make one attempt at ``notification``."""
    subscription = store.current("Subscription", notification.subscription_id)
    if subscription is None or subscription.document.get("status") != "active":
        return Attempt("dropped", "the subscription is no longer active")
    channel = subscription.document.get("channel") or {}
    endpoint = str(channel.get("endpoint") or "")
    problem = check_endpoint(endpoint, settings)
    if problem:
        return Attempt("failed", f"the endpoint is refused: {problem}")
    body = b""
    headers = {"User-Agent": USER_AGENT}
    if channel.get("payload"):
        version = _version(store, notification)
        if version is None:
            return Attempt("dropped", "the version is no longer stored")
        body = version.text.encode("utf-8")
        headers["Content-Type"] = "application/fhir+json; charset=utf-8"
    headers.update(header_pairs(channel))
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=settings.delivery_timeout_seconds) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt("failed", f"the endpoint could not be reached ({type(reason).__name__})")
    if 200 <= status < 300:
        return Attempt("delivered")
    return Attempt("failed", f"the endpoint answered HTTP {status}")


def give_up(notification: Notification, reason: str, attempts: int, store: Store) -> None:
    """After the last failed attempt: set the Subscription to ``error``, with the reason, as a new
    version (a client that changed it meanwhile wins; its new version decides)."""
    current = store.current("Subscription", notification.subscription_id)
    if current is None or current.document.get("status") != "active":
        return
    document = {
        **current.document,
        "status": "error",
        "error": f"Delivery failed {attempts} times; last: {reason}.",
    }
    version_id = current.version_id + 1
    last_updated = fhirtime.canonical_now()
    document["meta"] = {
        **(document.get("meta") or {}),
        "versionId": str(version_id),
        "lastUpdated": last_updated,
    }
    stored = StoredResource("Subscription", current.id, version_id, last_updated, fhirjson.dumps(document))
    try:
        store.write(Write(stored, {"status": "error"}, superseded=current))
    except errors.VersionConflict:
        logger.info("subscription %s changed while delivery failed; left as it is", current.id)


def _version(store: Store, notification: Notification) -> StoredResource | None:
    """The version the notification is about: the current one, or its copy among the versions."""
    current = store.current(notification.resource_type, notification.resource_id)
    if current is not None and current.version_id == notification.version_id:
        return current
    return store.version(notification.resource_type, notification.resource_id, notification.version_id)
