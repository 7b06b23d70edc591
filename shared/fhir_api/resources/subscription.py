"""Subscription (FHIR R4 4.0.1, rest-hook): its rules, its life cycle, its criteria and its secrets.

- ``criteria`` is an Encounter or Patient search this server supports, parsed by the search parameter
  parser (strict handling) and matched later by the resource definitions' own ``matches``: one place
  for each rule. Anything else is refused with 400 naming what is not supported.
- ``channel`` is ``rest-hook`` with an endpoint ``endpoints.check_endpoint`` accepts; ``payload`` is
  absent (an empty notification) or FHIR JSON; each ``header`` is ``Name: value``.
- Life cycle (R4): a client writes ``requested`` (or ``active``) and the server stores ``active`` once it
  accepts the criteria and the endpoint; the deliverer sets ``error`` with an ``error`` text after
  repeated failures; ``off`` stops delivery. Writing ``requested`` again re-activates one in error.
- ``channel.header`` values are secrets: read and search show ``Name: ******``; an update that sends a
  header back masked keeps the stored value of that header.

Subscriptions are few and read by status: the ``status-index`` (partition ``status``, sorted by
``lastUpdated``) serves both the search and the matcher.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fhir_api import errors
from fhir_api.errors import InvalidResource, Issue
from fhir_api.resources.base import (
    IdLookup,
    ResourceDefinition,
    SafetyRule,
    SearchPlan,
    all_groups_match,
    intersection,
    shared_safety_rules,
)
from fhir_api.search import dates, tokens
from fhir_api.search.parameters import (
    RESULT_PARAMETERS,
    SearchParameter,
    SearchQuery,
    parameter_table,
    parse_query,
)
from fhir_api.settings import Settings
from fhir_api.store.types import Listing, StoredResource

SPEC = "http://hl7.org/fhir/SearchParameter"
STATUS_SYSTEM = "http://hl7.org/fhir/subscription-status"
STATUSES = ("requested", "active", "error", "off")
# What a client may write; the server turns the first two into ``active`` (error only it sets).
WRITABLE_STATUSES = ("requested", "active", "off")
CHANNEL_TYPES = ("rest-hook",)
PAYLOAD_TYPES = ("application/fhir+json", "application/json")
CRITERIA_TYPES = ("Encounter", "Patient")
MASK = "******"
_HEADER = re.compile(r"(?P<name>[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}):[ \t]*(?P<value>[^\r\n]*)")
# Headers the deliverer sets itself (or that would change how the request is framed).
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})

SUBSCRIPTION_PARAMETERS: dict[str, SearchParameter] = parameter_table(
    SearchParameter(
        "status",
        "token",
        "Subscription.status",
        "The subscription's status (requested, active, error, off); a comma means OR.",
        f"{SPEC}/Subscription-status",
        codes=STATUSES,
        system=STATUS_SYSTEM,
    ),
    SearchParameter(
        "type",
        "token",
        "Subscription.channel.type",
        "The channel type (rest-hook).",
        f"{SPEC}/Subscription-type",
    ),
    SearchParameter(
        "_id",
        "token",
        "Subscription.id",
        "The Subscription's logical id; a comma means OR.",
        f"{SPEC}/Resource-id",
    ),
    SearchParameter(
        "_lastUpdated",
        "date",
        "Subscription.meta.lastUpdated",
        "When the subscription last changed; every date prefix and precision.",
        f"{SPEC}/Resource-lastUpdated",
    ),
)

SAFETY_RULES: tuple[SafetyRule, ...] = (
    SafetyRule(
        "Subscription.criteria",
        "anything but an Encounter or Patient search this server supports (`Encounter?status=finished`, "
        "`Encounter?subject=Patient/123&class=EMER`): other resource types, unknown parameters or "
        "modifiers, chains, result parameters such as `_count` or `_sort`",
        400,
        "A criterion the server would ignore would send more records to the endpoint than its author "
        "asked for.",
    ),
    SafetyRule(
        "Subscription.channel",
        "a channel type other than `rest-hook`, a payload other than `application/fhir+json`, a header "
        "not of the form `Name: value`",
        422,
        "Only rest-hook is delivered; a subscription the server cannot deliver would stay silent.",
    ),
    SafetyRule(
        "Subscription.channel.endpoint",
        "an endpoint that is not `https` or whose host resolves to a private, loopback, link-local or "
        "otherwise non-public address (the local stack allows `http` on loopback)",
        422,
        "Notifications carry patient data: they must travel encrypted and must not reach the cloud's "
        "internal addresses (instance metadata, private services) on a caller's say-so.",
    ),
    SafetyRule(
        "Subscription.status",
        "`error` written by a client (only the server sets it, after repeated delivery failures)",
        422,
        "The status tells the clinic whether notifications arrive; only the deliverer knows that.",
    ),
    *shared_safety_rules("Subscription"),
)


@dataclass(frozen=True)
class Criteria:
    """A parsed ``Subscription.criteria``: the resource type and the search every match satisfies."""

    resource_type: str
    query: SearchQuery

    def matches(self, stored: StoredResource) -> bool:
        """Whether a written resource satisfies the criteria (the search's own ``matches``)."""
        from fhir_api.resources import DEFINITIONS

        if stored.resource_type != self.resource_type:
            return False
        return DEFINITIONS[self.resource_type].matches(stored, self.query)


def parse_criteria(criteria: object) -> Criteria:
    """``Type?search`` -> Criteria; InvalidResource (400) naming what is not supported."""
    from fhir_api.resources import DEFINITIONS

    where = ("Subscription.criteria",)
    if not isinstance(criteria, str) or not criteria.strip():
        raise InvalidResource(
            "Subscription.criteria must be a search such as Encounter?status=finished.", where
        )
    resource_type, _, search = criteria.strip().partition("?")
    if resource_type not in CRITERIA_TYPES:
        raise InvalidResource(
            f"Subscription.criteria: {resource_type[:64]!r} is not supported; criteria must search "
            f"{' or '.join(CRITERIA_TYPES)} (e.g. Encounter?status=finished).",
            where,
        )
    raw = parse_qs(search, keep_blank_values=True)
    for name in raw:
        if name.partition(":")[0] in RESULT_PARAMETERS:
            raise InvalidResource(
                f"Subscription.criteria: the result parameter {name[:64]!r} is not supported in criteria "
                "(every matching write is notified).",
                where,
            )
    definition = DEFINITIONS[resource_type]
    try:
        query = parse_query(raw, definition.search_parameters, strict=True)
    except errors.InvalidRequest as exc:
        issues = [
            Issue(issue.code, f"Subscription.criteria: {issue.diagnostics}", where) for issue in exc.issues
        ]
        raise InvalidResource(issues[0].diagnostics, where, issues) from None
    return Criteria(resource_type, query)


def header_pairs(channel: dict[str, Any]) -> list[tuple[str, str]]:
    """The channel's headers as (name, value); the rules have checked their form."""
    pairs = []
    for header in channel.get("header") or []:
        matched = _HEADER.fullmatch(str(header))
        if matched:
            pairs.append((matched.group("name"), matched.group("value")))
    return pairs


def masked(stored: StoredResource) -> StoredResource:
    """The Subscription as read and search show it: every header value replaced by the mask."""
    from fhir_api.fhir import fhirjson

    document = stored.document
    channel = document.get("channel") or {}
    if not channel.get("header"):
        return stored
    shown = {**channel, "header": [f"{name}: {MASK}" for name, _ in header_pairs(channel)]}
    text = fhirjson.dumps({**document, "channel": shown})
    return StoredResource(stored.resource_type, stored.id, stored.version_id, stored.last_updated, text)


class SubscriptionDefinition(ResourceDefinition):
    """The Subscription resource (rest-hook channel)."""

    resource_type = "Subscription"
    search_parameters = SUBSCRIPTION_PARAMETERS
    safety_rules = SAFETY_RULES

    def validate(self, document: Any) -> dict[str, Any]:
        """FHIR R4 structure, then the life cycle: requested or active become active (accepted)."""
        resource = super().validate(document)
        if resource.get("status") in ("requested", "active"):
            resource["status"] = "active"
            resource.pop("error", None)
        return resource

    def carry_over(self, resource: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        """Header values sent back masked keep their stored value (a client never sees it)."""
        channel = resource.get("channel")
        if not isinstance(channel, dict) or not isinstance(channel.get("header"), list):
            return resource
        stored = dict(header_pairs(previous.get("channel") or {}))
        headers = []
        for header in channel["header"]:
            matched = _HEADER.fullmatch(header) if isinstance(header, str) else None
            if matched and matched.group("value") == MASK and matched.group("name") in stored:
                header = f"{matched.group('name')}: {stored[matched.group('name')]}"
            headers.append(header)
        return {**resource, "channel": {**channel, "header": headers}}

    def presented(self, stored: StoredResource) -> StoredResource:
        """Header values masked."""
        return masked(stored)

    def check_rules(self, resource: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """Criteria (400), then the channel, its endpoint and the status a client may write (422)."""
        parse_criteria(resource.get("criteria"))
        status = resource.get("status")
        if status not in WRITABLE_STATUSES and not (
            status == "error" and previous is not None and previous.get("status") == "error"
        ):
            raise errors.BusinessRuleViolation(
                f"Subscription.status {status!r} is set by the server only; write requested (to activate) "
                "or off (to stop delivery).",
                expression=("Subscription.status",),
            )
        channel = resource.get("channel") or {}
        issues = _channel_issues(channel)
        if issues:
            raise errors.BusinessRuleViolation(issues[0].diagnostics, issues[0].expression, issues)
        if status != "off":
            from fhir_api.notifications.endpoints import check_endpoint
            from fhir_api.settings import get_settings

            problem = check_endpoint(str(channel.get("endpoint") or ""), get_settings())
            if problem:
                raise errors.BusinessRuleViolation(
                    f"Subscription.channel.endpoint: {problem}", expression=("Subscription.channel.endpoint",)
                )

    def index_attributes(
        self, resource: dict[str, Any], resource_id: str, settings: Settings
    ) -> dict[str, str]:
        """The status, the partition key of the status index."""
        return {"status": str(resource.get("status"))}

    def plan(self, query: SearchQuery) -> IdLookup | SearchPlan:
        """``_id`` reads by id; anything else reads the status index, one partition per status."""
        if query.has("_id"):
            return IdLookup(intersection(query.values("_id")))
        groups = query.values("status")
        statuses: tuple[str, ...] = STATUSES
        if groups and all(
            token.code is not None and token.system in (None, STATUS_SYSTEM)
            for group in groups
            for token in group
        ):
            statuses = intersection([[token.code for token in group] for group in groups])
        return SearchPlan(Listing(self.resource_type, "status", statuses))

    def matches(self, stored: StoredResource, query: SearchQuery) -> bool:
        """Every criterion, checked on the resource."""
        resource = stored.document
        channel = resource.get("channel") or {}
        checks = (
            ("_id", lambda value: value == stored.id),
            ("status", lambda token: tokens.code_matches(token, resource.get("status"), STATUS_SYSTEM)),
            ("type", lambda token: tokens.code_matches(token, channel.get("type"))),
        )
        if not all(all_groups_match(query.values(name), test) for name, test in checks):
            return False
        from fhir_api.fhir import fhirtime

        return dates.matches_all(query.values("_lastUpdated"), *fhirtime.parse_range(stored.last_updated))


def _channel_issues(channel: dict[str, Any]) -> list[Issue]:
    """What this server cannot deliver on: the channel type, the payload type, malformed headers."""
    issues = []
    if channel.get("type") not in CHANNEL_TYPES:
        issues.append(
            Issue(
                "not-supported",
                f"Subscription.channel.type {str(channel.get('type'))[:64]!r} is not supported; this server "
                "delivers rest-hook only.",
                ("Subscription.channel.type",),
            )
        )
    payload = channel.get("payload")
    if payload is not None and str(payload).split(";")[0].strip().lower() not in PAYLOAD_TYPES:
        issues.append(
            Issue(
                "not-supported",
                f"Subscription.channel.payload {str(payload)[:64]!r} is not supported; send "
                "application/fhir+json, or leave payload out for notifications without a body.",
                ("Subscription.channel.payload",),
            )
        )
    seen: set[str] = set()
    for index, header in enumerate(channel.get("header") or []):
        matched = _HEADER.fullmatch(header) if isinstance(header, str) else None
        where = (f"Subscription.channel.header[{index}]",)
        if matched is None:
            issues.append(Issue("value", "a channel header must be written 'Name: value'.", where))
        elif matched.group("name").lower() in _RESERVED_HEADERS:
            issues.append(
                Issue("value", f"the header {matched.group('name')!r} is set by the server.", where)
            )
        elif matched.group("name").lower() in seen:
            issues.append(Issue("value", f"the header {matched.group('name')!r} is given twice.", where))
        else:
            seen.add(matched.group("name").lower())
    return issues
