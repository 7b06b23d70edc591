"""Where a rest-hook may send: the endpoint policy, checked when a Subscription is written and again
before every delivery (a name may resolve elsewhere by then).

In AWS only ``https`` to public addresses: a host that resolves to a private, loopback, link-local,
multicast, reserved or unspecified address is refused, so a Subscription cannot make the deliverer
reach instance metadata or the VPC's services. ``ALLOW_HTTP_LOOPBACK_ENDPOINTS=1`` (the local stack and
the tests) also allows ``http`` and ``https`` to a loopback address, and nothing else besides.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from fhir_api.settings import Settings


def check_endpoint(endpoint: str, settings: Settings) -> str | None:
    """Why ``endpoint`` may not be delivered to, or None when it may."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return f"{endpoint[:128]!r} is not a URL."
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https URL."
    if parts.username or parts.password:
        return "must not carry credentials in the URL; send them as a channel header."
    try:
        addresses = {
            ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            for info in socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
        }
    except (OSError, UnicodeError, ValueError):
        return f"the host {host[:128]!r} does not resolve."
    loopback_allowed = bool(settings.allow_http_loopback_endpoints)
    if loopback_allowed and addresses and all(address.is_loopback for address in addresses):
        return None
    if parts.scheme != "https":
        return "must use https."
    for address in addresses:
        if not address.is_global or address.is_multicast:
            return f"the host {host[:128]!r} resolves to a non-public address ({address})."
    return None
