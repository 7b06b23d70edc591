"""Who may call which route: the SMART scope parser, roles and scopes combined, and the check every
function makes again on its authorizer context (expiry and route)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from fhir_api import errors
from fhir_api.auth.access import Caller, allowed_routes, caller_from_event, check
from fhir_api.auth.scopes import parse_scope, scopes_from_claims
from fhir_api.routes import ROUTES, route_for_function

LEEWAY = 30


def functions(*names: str) -> set[str]:
    return set(names)


# SMART's r: read, vread, history, and $validate (which stores nothing)
ENCOUNTER_READS = functions("encounter_read", "encounter_vread", "encounter_history", "encounter_validate")
PATIENT_READS = functions("patient_read", "patient_vread", "patient_history", "patient_validate")
# A search is the same interaction by GET and by POST _search (a form body).
ENCOUNTER_SEARCH = functions("encounter_search", "encounter_search_post")
PATIENT_SEARCH = functions("patient_search", "patient_search_post")
AUDIT_TRAIL = functions("audit_event_search", "audit_event_read")
BUNDLE = functions("bundle")


def allowed(roles: tuple[str, ...] = (), scopes: tuple[str, ...] = ()) -> set[str]:
    return {route.function for route in allowed_routes(roles, scopes).routes}


# --- the scope parser ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "context", "resource_type", "permissions"),
    [
        ("system/Encounter.cruds", "system", "Encounter", "cruds"),
        ("system/Patient.rs", "system", "Patient", "rs"),
        ("system/*.rs", "system", "*", "rs"),
        ("user/Encounter.rs", "user", "Encounter", "rs"),
        ("patient/Patient.r", "patient", "Patient", "r"),
        ("system/Encounter.c", "system", "Encounter", "c"),
        ("system/Encounter.cu", "system", "Encounter", "cu"),
        # SMART v1 forms, as SMART v2 maps them
        ("system/Encounter.read", "system", "Encounter", "rs"),
        ("system/Encounter.write", "system", "Encounter", "cud"),
        ("system/Encounter.*", "system", "Encounter", "cruds"),
        ("user/*.*", "user", "*", "cruds"),
    ],
)
def test_a_smart_scope_is_parsed(text: str, context: str, resource_type: str, permissions: str) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert (scope.context, scope.resource_type, scope.permissions) == (context, resource_type, permissions)


@pytest.mark.parametrize(
    "text",
    [
        "system/Encounter.sr",  # out of SMART's c, r, u, d, s order
        "system/Encounter.rrs",  # a letter twice
        "system/Encounter.x",
        "system/Encounter.",
        "system/Encounter",
        "system/encounter.rs",  # resource types start upper case
        "System/Encounter.rs",
        "launch/Encounter.rs",
        "system/Encounter.rs extra",
        "system//Encounter.rs",
        "openid",
        "fhirUser",
        "",
        "system/" + "A" * 200 + ".rs",
    ],
)
def test_garbage_is_no_scope(text: str) -> None:
    assert parse_scope(text) is None


def test_a_scope_with_a_query_or_an_unknown_type_grants_nothing() -> None:
    for text in ("system/Encounter.rs?status=finished", "system/Observation.rs", "system/Encounter.rs?"):
        scope = parse_scope(text)
        assert scope is not None and scope.grants() == frozenset(), text
        assert allowed(scopes=(text,)) == set(), text


def test_scopes_come_from_scope_or_scp() -> None:
    # A space-separated scope string, an scp list, an scp string; non-clinical scopes are left out
    assert scopes_from_claims({"scope": "openid system/Encounter.rs  system/Patient.r"}) == (
        "system/Encounter.rs",
        "system/Patient.r",
    )
    assert scopes_from_claims({"scp": ["system/Encounter.rs", 7, None, "profile"]}) == (
        "system/Encounter.rs",
    )
    assert scopes_from_claims({"scp": "system/*.rs"}) == ("system/*.rs",)
    assert scopes_from_claims({"scope": 42}) == ()


# --- roles and scopes together ------------------------------------------------------------------------


def test_system_scopes_grant_their_permission_letters() -> None:
    # Any grant on a clinical type reaches the Bundle route too: each entry is then checked on its own
    assert allowed(scopes=("system/Encounter.rs",)) == ENCOUNTER_READS | ENCOUNTER_SEARCH | BUNDLE
    assert (
        allowed(scopes=("system/Patient.cu",))
        == {"patient_create", "patient_update", "patient_patch", "patient_conditional_update"} | BUNDLE
    )
    assert allowed(scopes=("system/Patient.d",)) == {"patient_delete"} | BUNDLE
    assert allowed(scopes=("system/Encounter.s",)) == ENCOUNTER_SEARCH | BUNDLE
    assert allowed(scopes=("system/Encounter.r",)) == ENCOUNTER_READS | BUNDLE
    # ``*`` is every clinical type: the audit trail is granted only by its name
    everything = {route.function for route in ROUTES if route.smart_permission} - AUDIT_TRAIL | BUNDLE
    assert allowed(scopes=("system/*.cruds",)) == everything
    assert allowed(scopes=("system/AuditEvent.rs",)) == AUDIT_TRAIL
    assert allowed(scopes=("system/AuditEvent.cruds",)) == AUDIT_TRAIL
    assert allowed(scopes=("system/*.*",)) == everything
    assert (
        allowed(scopes=("system/*.read",))
        == ENCOUNTER_READS | PATIENT_READS | ENCOUNTER_SEARCH | PATIENT_SEARCH | BUNDLE
    )
    assert (
        allowed(scopes=("system/Encounter.write",))
        == {
            "encounter_create",
            "encounter_update",
            "encounter_patch",
            "encounter_conditional_update",
            "encounter_delete",
        }
        | BUNDLE
    )


def test_roles_and_system_scopes_add_up() -> None:
    assert allowed(("auditor",), ("system/Patient.c",)) == allowed(("auditor",)) | {"patient_create"}


def test_user_scopes_narrow_the_role_and_need_one() -> None:
    # Given a practitioner (reads and writes both types) whose app was granted encounter reads only
    assert allowed(("practitioner",), ("user/Encounter.rs",)) == ENCOUNTER_READS | ENCOUNTER_SEARCH | BUNDLE
    # An auditor's app asking for everything still only reads
    assert allowed(("auditor",), ("user/*.cruds",)) == allowed(("auditor",)) - AUDIT_TRAIL
    assert allowed(("auditor",), ("user/AuditEvent.rs",)) == AUDIT_TRAIL
    # A practitioner's app cannot reach the audit trail, whatever it was granted
    assert allowed(("practitioner",), ("user/AuditEvent.rs",)) == set()
    # Without a role a user scope allows nothing
    assert allowed((), ("user/*.cruds",)) == set()
    # A query-restricted user scope leaves the app nothing
    assert allowed(("admin",), ("user/Encounter.rs?status=finished",)) == set()


def test_a_patient_scope_refuses_the_token_by_name() -> None:
    access = allowed_routes(("admin",), ("system/*.cruds", "patient/Encounter.rs"))
    assert access.routes == ()
    assert access.refused_scopes == ("patient/Encounter.rs",)


def test_no_public_route_is_granted_by_roles_or_scopes() -> None:
    granted = allowed(("admin",), ("system/*.cruds",))
    assert "metadata" not in granted and "smart_configuration" not in granted


# --- the functions' own check -------------------------------------------------------------------------


def caller(roles: str = "practitioner", scopes: str = "", exp: Any = None, **extra: Any) -> dict[str, Any]:
    context = {"principalId": "u-1", "sub": "u-1", "roles": roles, "scopes": scopes, **extra}
    context["exp"] = str(int(time.time()) + 300) if exp is None else exp
    return {"requestContext": {"authorizer": context}}


def test_an_event_without_authorizer_context_has_no_caller() -> None:
    assert caller_from_event({}) is None
    assert caller_from_event({"requestContext": {"authorizer": {}}}) is None


def test_the_caller_is_read_from_the_authorizer_context() -> None:
    found = caller_from_event(caller("auditor", "system/Patient.c", exp="1900000000", client_id="app-1"))
    assert found == Caller("u-1", ("auditor",), ("system/Patient.c",), "app-1", 1900000000)


@pytest.mark.parametrize("route", [route for route in ROUTES if route.smart_permission], ids=str)
def test_no_authorizer_context_is_401(route: Any) -> None:
    with pytest.raises(errors.Unauthenticated):
        check(route, None, LEEWAY)


def test_public_routes_need_nothing() -> None:
    check(route_for_function("metadata"), None, LEEWAY)
    check(route_for_function("smart_configuration"), None, LEEWAY)


@pytest.mark.parametrize("exp", ["", "soon", "-5", "1" * 20, None])
def test_an_unreadable_expiry_is_401(exp: str | None) -> None:
    event = caller()
    event["requestContext"]["authorizer"]["exp"] = exp
    with pytest.raises(errors.Unauthenticated):
        check(route_for_function("encounter_read"), caller_from_event(event), LEEWAY)


def test_the_expiry_counts_with_the_leeway() -> None:
    route = route_for_function("encounter_create")
    expired_at = 1_800_000_000
    found = caller_from_event(caller(exp=str(expired_at)))
    check(route, found, LEEWAY, now=expired_at + LEEWAY)
    with pytest.raises(errors.Unauthenticated):
        check(route, found, LEEWAY, now=expired_at + LEEWAY + 1)


def test_a_route_the_roles_and_scopes_do_not_allow_is_403() -> None:
    with pytest.raises(errors.Forbidden):
        check(route_for_function("patient_create"), caller_from_event(caller("auditor")), LEEWAY)
    check(
        route_for_function("patient_create"), caller_from_event(caller("auditor", "system/Patient.c")), LEEWAY
    )
    with pytest.raises(errors.Forbidden, match="patient/Patient.rs"):
        check(
            route_for_function("patient_read"),
            caller_from_event(caller("admin", "patient/Patient.rs")),
            LEEWAY,
        )


# --- a function invoked without its authorizer writes nothing ----------------------------------------


def test_a_direct_invocation_of_a_write_is_refused_and_stores_nothing(moto_tables: dict[str, str]) -> None:
    from fhir_api.api.handler import make_handler
    from local.lambda_runtime import LambdaContext
    from tests.unit.test_events import load_event

    # Given the create event without its authorizer context, and one with an auditor's
    bare = load_event("patient_create")
    del bare["requestContext"]["authorizer"]
    auditor = load_event("patient_create")
    auditor["requestContext"]["authorizer"]["roles"] = "auditor"
    expired = load_event("patient_create")
    expired["requestContext"]["authorizer"]["exp"] = str(int(time.time()) - 120)
    handler = make_handler("patient_create")

    # When the function gets them directly
    context = LambdaContext("patient_create", "direct-1")
    answers = [handler(event, context) for event in (bare, auditor, expired)]

    # Then 401 with the Bearer challenge, 403, 401, each an OperationOutcome; and no patient stored
    assert [answer["statusCode"] for answer in answers] == [401, 403, 401]
    assert answers[0]["headers"]["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert all(json.loads(answer["body"])["resourceType"] == "OperationOutcome" for answer in answers)
    search = load_event("patient_search")
    search["queryStringParameters"] = search["multiValueQueryStringParameters"] = None
    found = make_handler("patient_search")(search, LambdaContext("patient_search", "direct-2"))
    assert found["statusCode"] == 200, found["body"]
    assert json.loads(found["body"]).get("entry") is None


def test_subscriptions_are_for_admins_only_and_no_scope_grants_them() -> None:
    subscription_routes = {route.function for route in ROUTES if route.resource_type == "Subscription"}
    assert subscription_routes == {
        "subscription_create",
        "subscription_search",
        "subscription_read",
        "subscription_update",
    }
    assert subscription_routes <= allowed(("admin",))
    assert not subscription_routes & allowed(("practitioner", "auditor"))
    assert not subscription_routes & allowed((), ("system/*.cruds",))
    assert not subscription_routes & allowed(("practitioner",), ("system/*.*",))


def test_only_auditors_and_admins_read_the_audit_trail_and_nobody_writes_it() -> None:
    assert allowed(("auditor",)) >= AUDIT_TRAIL
    assert allowed(("admin",)) >= AUDIT_TRAIL
    assert allowed(("practitioner",)).isdisjoint(AUDIT_TRAIL)
    assert allowed(("practitioner", "auditor")) >= AUDIT_TRAIL
    # No route writes AuditEvents: only the recorder, which no token reaches, does
    assert {route.interaction for route in ROUTES if route.resource_type == "AuditEvent"} == {
        "read",
        "search-type",
    }
