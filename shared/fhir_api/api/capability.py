"""The CapabilityStatement served at ``GET /api/fhir/metadata`` (FHIR R4, 4.0.1).

Generated, never hand-written: interactions come from ``routes.ROUTES``, the security description
from ``routes.ROLE_INTERACTIONS``, search parameters from each resource definition's table
(``resources.search_parameters``), each resource's documentation from its ``SAFETY_RULES``
(``fhir_api.resources``), so the statement cannot drift from what the code does.

Usage::

    capability_statement(base_url, [ENCOUNTER, PATIENT])   # resource definitions (ResourceDefinition)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from fhir_api.fhir import terminology
from fhir_api.routes import API_PREFIX, RESTRICTED_TYPES, ROLE_INTERACTIONS, ROUTES
from fhir_api.search.parameters import (
    DEFAULT_COUNT,
    MAX_AND_GROUPS,
    MAX_CHAINED_MATCHES,
    MAX_COUNT,
    MAX_OR_VALUES,
    MAX_PARAMETERS,
    MAX_REVINCLUDED,
    SearchParameter,
)

FHIR_VERSION = "4.0.1"
SOFTWARE_NAME = "encounter-api"
SOFTWARE_VERSION = "1.0.0"
FORMATS = ["json", "application/fhir+json"]
SECURITY_SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

# FHIR's order of the type-level interactions, so the statement reads the same on every build.
_INTERACTION_ORDER = terminology.TYPE_INTERACTIONS
VALIDATE_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"
# What each interaction (and the validate operation) does here beyond FHIR's definition of it.
_INTERACTION_DOCUMENTATION = {
    "read": 'If-None-Match (W/"n", "n", a list, or *) naming the current version, or '
    "If-Modified-Since not before its lastUpdated (whole seconds), answers 304 with the ETag and no body.",
    "vread": "Conditional like read: If-None-Match or If-Modified-Since answer 304 for that version.",
    "patch": "JSON Patch (RFC 6902, Content-Type application/json-patch+json) or JSON Merge Patch "
    "(RFC 7386, application/merge-patch+json; application/json is read as either by its shape). "
    "FHIRPath Patch (a Parameters resource) is not supported: 415. The patched resource goes through "
    "the update's validation, rules, lifecycle and versioning; If-Match is honoured (412). A malformed "
    "patch is 400; a failing test, a missing path, a change of id or resourceType, or a result that is "
    "not a valid resource is 422, and nothing is stored.",
}
_VALIDATE_DOCUMENTATION = (
    "POST [type]/$validate with the resource, or a Parameters resource with resource and optionally mode "
    "(create, the default, or update: checked against the stored version the resource's id names) and "
    "profile (only the type's base profile). The checks of a create or an update (structure, value sets, "
    "narrative safety, the clinical-safety rules, the lifecycle, the subject patient's existence); "
    "identifier uniqueness and races are checked only by the write itself. Nothing is stored. 200 with "
    "an OperationOutcome whether or not the resource is valid (errors as issues); a 4xx means it could "
    "not be validated. mode=delete is not supported (400)."
)
# The system-level interactions, in FHIR's order: a Bundle at the base URL is one or the other.
_SYSTEM_INTERACTION_ORDER = ("transaction", "batch")


class ResourceDefinition(Protocol):
    """What the statement needs from a resource definition (``fhir_api.resources.*``)."""

    @property
    def resource_type(self) -> str: ...

    @property
    def search_parameters(self) -> Mapping[str, SearchParameter]: ...

    @property
    def conditional_create(self) -> bool: ...

    @property
    def conditional_update(self) -> bool: ...

    @property
    def safety_rules(self) -> Sequence[SafetyRule]: ...

    @property
    def chained_parameters(self) -> Mapping[str, Mapping[str, SearchParameter]]: ...

    @property
    def includes(self) -> Mapping[str, str]: ...

    @property
    def revincludes(self) -> Mapping[str, tuple[str, str]]: ...


class SafetyRule(Protocol):
    """A rule refusing valid R4 for the clinic's safety (``fhir_api.resources.base.SafetyRule``)."""

    def describe(self) -> str: ...


def _interactions(resource_type: str) -> list[str]:
    found = {route.interaction for route in ROUTES if route.resource_type == resource_type}
    return [code for code in _INTERACTION_ORDER if code in found]


def _security_description() -> str:
    lines = [
        "Every request except `GET " + API_PREFIX + "/metadata` needs `Authorization: Bearer <token>`: "
        "a JWT signed by the configured issuer (verified against its JWKS), whose roles claim names "
        "one or more roles, or an OAuth access token with SMART on FHIR v2 scopes (`system/Encounter.rs`, "
        "`system/*.cruds`, v1 `.read`/`.write`/`.*`; `user/` scopes narrow the token's roles; `patient/` "
        "scopes are refused). A missing, invalid or expired token gets 401; a token whose roles and "
        "scopes do not allow the interaction gets 403. See `"
        + API_PREFIX
        + "/.well-known/smart-configuration`.",
        "",
        "Roles and the interactions they allow:",
        "",
    ]
    for role, interactions in sorted(ROLE_INTERACTIONS.items()):
        order = (*_INTERACTION_ORDER, "operation", *_SYSTEM_INTERACTION_ORDER)
        allowed = [code for code in order if code in interactions]
        lines.append(f"- `{role}`: {', '.join(allowed)}")
    lines.append("")
    lines.append("`operation` is `$validate`, which stores nothing; SMART scopes grant it with `r`.")
    for resource_type, roles in sorted(RESTRICTED_TYPES.items()):
        names = ", ".join(f"`{role}`" for role in sorted(roles))
        lines.append(f"- `{resource_type}`: {names} only; no SMART scope grants it")
    return "\n".join(lines)


def _search_documentation() -> str:
    """How searches behave: paging, handling (strict by default) and the cost limits."""
    return (
        "Search answers a Bundle searchset with total, self and next links; "
        f"`_count` defaults to {DEFAULT_COUNT} and is capped at {MAX_COUNT}; "
        "`_summary=count` returns the total only; `_total=accurate` counts every match (fhirpy's "
        "`_totalMethod=count` is read as the same); the next link carries a signed page token.\n\n"
        "`POST [type]/_search` takes the same parameters as a form body "
        "(`application/x-www-form-urlencoded`; parameters in the URL are added) and answers the same "
        "Bundle; its `self` and `next` links carry the query sealed (encrypted) in `_page`, so names and "
        "identifiers stay out of URLs and access logs, and a GET of them continues the same search.\n\n"
        "`_summary=true|text|data` and `_elements=a,b` (top-level elements) subset every resource of the "
        "answer, on search, read and vread: `resourceType`, `id`, `meta` and the mandatory elements are "
        "always kept and each subsetted resource carries the `SUBSETTED` tag; `_elements` applies to the "
        "matches, `_summary` to included resources too. `_include` and `_revinclude` (see searchInclude and "
        "searchRevInclude) add each referenced or referencing resource once per page with `search.mode` "
        "`include`, never counted in `total`; when some cannot be given (more than "
        f"{MAX_REVINCLUDED} per page, or the read or response limits), an OperationOutcome entry "
        "(`search.mode` `outcome`) says so.\n\n"
        "Search handling is strict by default (with or without `Prefer: handling=strict`): a search "
        "parameter, modifier or chain not listed here, `_has`, a result parameter not listed here "
        "(`_contained`, `_graph`), an `_include`/`_revinclude` the resource does not list (`*` included), "
        "an `_elements` name the resource lacks, a parameter without a value, or a `status`/`gender` code "
        "outside its required value set is refused with 400 and an OperationOutcome whose issues name each "
        "one (`expression`) and list the supported parameters; nothing is searched. With "
        "`Prefer: handling=lenient` each is left out of the search and of the self link, and the Bundle "
        "carries an OperationOutcome entry (`search.mode` = `outcome`) with a warning for each parameter "
        "left out or whose codes were dropped. A code in another code system than the value set's matches "
        "nothing.\n\n"
        f"Limits (400, issue code too-costly): at most {MAX_OR_VALUES} comma-separated values in one "
        f"parameter, {MAX_AND_GROUPS} repeats of one parameter and {MAX_PARAMETERS} parameters per search."
    )


def _security(cors: bool, token_endpoint: str | None) -> dict[str, Any]:
    security: dict[str, Any] = {}
    if token_endpoint:
        security["extension"] = [
            {"url": OAUTH_URIS_EXTENSION, "extension": [{"url": "token", "valueUri": token_endpoint}]}
        ]
    security.update(
        {
            "cors": cors,
            "service": [
                {
                    "coding": [
                        {"system": SECURITY_SERVICE_SYSTEM, "code": "OAuth", "display": "OAuth"},
                        {
                            "system": SECURITY_SERVICE_SYSTEM,
                            "code": "SMART-on-FHIR",
                            "display": "SMART-on-FHIR",
                        },
                    ],
                    "text": "OAuth2 bearer token (JWT): roles, or SMART on FHIR v2 scopes",
                }
            ],
            "description": _security_description(),
        }
    )
    return security


def _search_param(parameter: SearchParameter, definition: ResourceDefinition) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": parameter.name}
    if parameter.definition:
        entry["definition"] = parameter.definition
    entry["type"] = parameter.type
    entry["documentation"] = parameter.documentation + "".join(
        f" Chains (R4 has no element for them): {parameter.name}.{{{', '.join(chained)}}} search the "
        f"{target} as {target}?{{name}}= does; also written {parameter.name}:{target}.{{name}}."
        for target in parameter.target
        if (chained := definition.chained_parameters.get(target))
    )
    return entry


def _chain_documentation(definition: ResourceDefinition) -> str | None:
    """The chained parameters of a resource, for its documentation (R4's searchParam lists none)."""
    chains = [
        f"`{parameter.name}.{name}`"
        for parameter in definition.search_parameters.values()
        for target in parameter.target
        for name in definition.chained_parameters.get(target, {})
    ]
    if not chains:
        return None
    return (
        f"Chained search parameters: {', '.join(chains)} (and the `:Patient` forms, `subject:Patient.name`). "
        f"A chain may find at most {MAX_CHAINED_MATCHES} patients (400 too-costly beyond, saying what to "
        "narrow); its patients and their encounters are read within the search's one read budget."
    )


def _safety_documentation(rules: Sequence[SafetyRule]) -> str:
    lines = ["Clinical-safety rules: what this server refuses beyond FHIR R4's own rules, and why.", ""]
    lines += [f"- {rule.describe()}" for rule in rules]
    return "\n".join(lines)


def _resource(definition: ResourceDefinition) -> dict[str, Any]:
    resource_type = definition.resource_type
    entry: dict[str, Any] = {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [_interaction(code) for code in _interactions(resource_type)],
        # Updates honour If-Match (412 on a stale version): FHIR's "versioned-update".
        "versioning": "versioned-update",
        "readHistory": "vread" in _interactions(resource_type),
        "updateCreate": False,
        "conditionalCreate": bool(definition.conditional_create),
        "conditionalRead": "full-support",
        # PUT [type]?identifier=…: no match creates, one is updated, several are 412.
        "conditionalUpdate": bool(definition.conditional_update),
        "conditionalDelete": "not-supported",
    }
    documentation = [
        text
        for text in (
            _safety_documentation(definition.safety_rules) if definition.safety_rules else None,
            _chain_documentation(definition),
        )
        if text
    ]
    if documentation:
        entry["documentation"] = "\n\n".join(documentation)
    if definition.includes:
        entry["searchInclude"] = list(definition.includes)
    if definition.revincludes:
        entry["searchRevInclude"] = list(definition.revincludes)
    parameters = [_search_param(parameter, definition) for parameter in definition.search_parameters.values()]
    if parameters:
        entry["searchParam"] = parameters
    if any(route.resource_type == resource_type and route.interaction == "operation" for route in ROUTES):
        entry["operation"] = [
            {"name": "validate", "definition": VALIDATE_DEFINITION, "documentation": _VALIDATE_DOCUMENTATION}
        ]
    return entry


def _interaction(code: str) -> dict[str, str]:
    documentation = _INTERACTION_DOCUMENTATION.get(code)
    return {"code": code, "documentation": documentation} if documentation else {"code": code}


def _system_interactions() -> list[dict[str, str]]:
    """``rest.interaction``: what the Bundle route (``POST [base]``) takes, with how it is processed."""
    served = {route.interaction for route in ROUTES if route.resource_type is None}
    if "transaction" not in served:
        return []
    return [
        {
            "code": "transaction",
            "documentation": "POST [base] with a Bundle of type transaction: POST (with ifNoneExist), PUT "
            "(with ifMatch, and conditional PUT [type]?criteria), PATCH (a Binary holding a JSON Patch or "
            "JSON Merge Patch), DELETE and GET entries of Encounter and Patient, processed DELETE, POST, "
            "PUT and PATCH, GET; urn:uuid and urn:oid fullUrls resolved and every "
            "reference to them rewritten; all writes land in one DynamoDB transaction or none does. One "
            "refused entry refuses the Bundle, with an OperationOutcome naming Bundle.entry[n]. Each entry "
            "is authorised and audited as its own interaction.",
        },
        {
            "code": "batch",
            "documentation": "POST [base] with a Bundle of type batch: each entry is processed on its own "
            "and answered with its own status (its OperationOutcome in response.outcome on failure); the "
            "batch-response itself is 200.",
        },
    ]


def capability_statement(
    base_url: str,
    resources: Sequence[ResourceDefinition],
    date: str | None = None,
    cors: bool = False,
    token_endpoint: str | None = None,
) -> dict[str, Any]:
    """The server's CapabilityStatement as a FHIR JSON dict.

    ``base_url`` is the FHIR base (``https://host/api/fhir``); ``date`` defaults to now (FHIR dateTime);
    ``cors`` says whether CORS is on (``Settings.cors_origins`` is not empty); ``token_endpoint``, when
    configured, is advertised in SMART's oauth-uris extension.
    """
    base = base_url.rstrip("/")
    when = date or datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": when,
        "publisher": SOFTWARE_NAME,
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": SOFTWARE_VERSION},
        "implementation": {"description": "Encounter and Patient FHIR R4 API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": list(FORMATS),
        "rest": [
            {
                "mode": "server",
                "documentation": _search_documentation(),
                "security": _security(cors, token_endpoint),
                "resource": [_resource(definition) for definition in resources],
                "interaction": _system_interactions(),
            }
        ],
    }
