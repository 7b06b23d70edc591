"""template.yaml against the facts it must agree with: the route table (routes.py), the settings'
environment names (settings.py), the tables of the contract, least privilege and the gateway responses.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fhir_api.resources import DEFINITIONS
from fhir_api.routes import (
    PUBLIC_INTERACTIONS,
    READ_INTERACTIONS,
    RESOURCE_TYPES,
    ROUTES,
    WRITE_INTERACTIONS,
    Route,
)
from fhir_api.settings import ENVIRONMENT_NAMES
from local.tables import env_name
from local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FUNCTION_TYPE = "AWS::Serverless::Function"
FALLBACK = "FallbackFunction"
AUTHORIZER = "AuthorizerFunction"
PROXY_PATH = "/api/fhir/{proxy+}"

READ_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:DescribeTable",
    "secretsmanager:GetSecretValue",
}
SECURITY_HEADERS = {"Cache-Control": "'no-store'", "X-Content-Type-Options": "'nosniff'"}
IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}

# The tables of the contract: key schema, attribute types and indexes (HASH, RANGE, projected attributes).
TABLES: dict[str, dict[str, Any]] = {
    "EncountersTable": {
        "key": [("id", "HASH")],
        "attributes": {
            "id": "S",
            "subject": "S",
            "statusShard": "S",
            "dateShard": "S",
            "periodStart": "S",
            "term": "S",
            "termValue": "S",
        },
        "indexes": {
            "subject-index": (("subject", "periodStart"), ["periodEnd"]),
            "status-index": (("statusShard", "periodStart"), ["periodEnd"]),
            "date-index": (("dateShard", "periodStart"), ["periodEnd"]),
            "term-index": (("term", "termValue"), ["owner"]),
        },
        "retain": True,
    },
    "PatientsTable": {
        "key": [("id", "HASH")],
        "attributes": {"id": "S", "term": "S", "termValue": "S"},
        "indexes": {"term-index": (("term", "termValue"), ["owner"])},
        "retain": True,
    },
    "VersionsTable": {
        "key": [("resourceKey", "HASH"), ("versionId", "RANGE")],
        "attributes": {"resourceKey": "S", "versionId": "N"},
        "indexes": {},
        "retain": True,
    },
    "IdempotencyTable": {
        "key": [("id", "HASH")],
        "attributes": {"id": "S"},
        "indexes": {},
        "retain": False,
    },
    "SubscriptionsTable": {
        "key": [("id", "HASH")],
        "attributes": {"id": "S", "status": "S", "lastUpdated": "S"},
        "indexes": {"status-index": (("status", "lastUpdated"), [])},
        "retain": True,
    },
    "AuditEventsTable": {
        "key": [("id", "HASH")],
        "attributes": {"id": "S", "term": "S", "recorded": "S"},
        "indexes": {"term-index": (("term", "recorded"), ["owner"])},
        "retain": True,
    },
}
# The functions fed by the change stream and the delivery queue (fhir_api.notifications.aws), by folder.
EVENT_DRIVEN = {
    "ChangeStreamFunction": "change_stream",
    "SubscriptionDeliveryFunction": "subscription_delivery",
}
RECORDER = "AuditRecorderFunction"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in resources.items() if res["Type"] == FUNCTION_TYPE}


def _api_events(properties: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        event["Properties"] for event in (properties.get("Events") or {}).values() if event["Type"] == "Api"
    ]


def _statements(properties: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in properties.get("Policies") or []:
        assert isinstance(policy, dict) and "Statement" in policy, f"only inline policy documents: {policy}"
        statements.extend(policy["Statement"])
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _target(resource: Any) -> tuple[str, str]:
    """(table logical id, "table" or "index") for !GetAtt T.Arn or !Sub "${T.Arn}/index/*";
    ("PageTokenSecret", "secret") for the secret's !Ref (its ARN)."""
    if resource == {"Ref": "PageTokenSecret"}:
        return "PageTokenSecret", "secret"
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        assert resource["Fn::GetAtt"][1] == "Arn", resource
        return str(resource["Fn::GetAtt"][0]), "table"
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = str(resource["Fn::Sub"])
        table = text.split("${", 1)[1].split(".", 1)[0]
        assert text == f"${{{table}.Arn}}/index/*", text
        return table, "index"
    raise AssertionError(f"a table ARN must be !GetAtt or !Sub of a table, not {resource!r}")


def _grants(properties: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(table logical id, "table" or "index", or the secret) -> the actions a function may call there."""
    grants: dict[tuple[str, str], set[str]] = {}
    for statement in _statements(properties):
        assert statement["Effect"] == "Allow"
        for resource in _as_list(statement["Resource"]):
            grants.setdefault(_target(resource), set()).update(_as_list(statement["Action"]))
    return grants


def _pages(route: Route) -> bool:
    """Whether the route signs or checks page tokens: search and history bundles page, a conditional
    create or update runs a search, and a Bundle's entries may do any of these."""
    return (
        route.interaction in {"search-type", "history-instance", "transaction"}
        or route.conditional
        or (route.interaction == "create" and DEFINITIONS[route.resource_type or ""].conditional_create)
    )


def _expected_grants(route: Route) -> dict[tuple[str, str], set[str]]:
    """What each interaction calls in shared/fhir_api/store: nothing more is granted.

    A write is one TransactWriteItems, which IAM authorizes as its item actions: Put of the current
    item, Put of the replaced version's copy (updates only), ConditionCheck of a referenced Patient,
    Put/Delete of search terms.
    A route that pages reads the page token key from its secret (store/secrets.py).
    """
    if route.interaction == "transaction":
        return _bundle_grants()
    if route.resource_type is None:
        return {}
    grants = _table_grants(route)
    if _pages(route):
        grants[("PageTokenSecret", "secret")] = {"secretsmanager:GetSecretValue"}
    return grants


def _bundle_grants() -> dict[tuple[str, str], set[str]]:
    """A Bundle's entries run the interactions of the clinical types' routes: what those are granted."""
    grants: dict[tuple[str, str], set[str]] = {
        ("PageTokenSecret", "secret"): {"secretsmanager:GetSecretValue"}
    }
    for route in ROUTES:
        if route.resource_type in DEFINITIONS and route.resource_type != "Subscription":
            for target, actions in _table_grants(route).items():
                grants.setdefault(target, set()).update(actions)
    # An encounter's identifiers are term items of the Encounters table: a new version or a deletion
    # that drops one deletes its item.
    grants[("EncountersTable", "table")].add("dynamodb:DeleteItem")
    return grants


def _table_grants(route: Route) -> dict[tuple[str, str], set[str]]:
    assert route.resource_type is not None
    table = (f"{route.resource_type}sTable", "table")
    index = (f"{route.resource_type}sTable", "index")
    versions = ("VersionsTable", "table")
    definition = DEFINITIONS.get(route.resource_type)
    if route.interaction == "read":
        return {table: {"dynamodb:GetItem"}}
    # The newest version is the current item; older ones are copies in the versions table.
    if route.interaction == "vread":
        return {table: {"dynamodb:GetItem"}, versions: {"dynamodb:GetItem"}}
    if route.interaction == "history-instance":
        return {table: {"dynamodb:GetItem"}, versions: {"dynamodb:Query"}}
    if route.interaction == "search-type":
        # Encounter searches read patients (chains, _include), Patient searches encounters (_revinclude).
        other = "Patient" if route.resource_type == "Encounter" else "Encounter"
        grants = {index: {"dynamodb:Query"}, table: {"dynamodb:BatchGetItem"}}
        if route.resource_type in ("Encounter", "Patient"):
            grants[(f"{other}sTable", "index")] = {"dynamodb:Query"}
            grants[(f"{other}sTable", "table")] = {"dynamodb:BatchGetItem"}
        return grants
    if route.interaction == "operation":
        # $validate reads the version an update would replace and the patient an encounter names
        grants_read = {table: {"dynamodb:GetItem"}}
        if route.resource_type == "Encounter":
            grants_read[("PatientsTable", "table")] = {"dynamodb:GetItem"}
        return grants_read
    grants: dict[tuple[str, str], set[str]] = {table: {"dynamodb:PutItem"}}
    if route.interaction in ("update", "patch", "delete"):
        # the copy of the version it replaces, and the search terms the new version no longer has
        grants[table].add("dynamodb:GetItem")
        grants[versions] = {"dynamodb:PutItem"}
        if route.resource_type in RESOURCE_TYPES:  # the types with search-term items
            grants[table].add("dynamodb:DeleteItem")
    if route.conditional:
        # the condition is a search
        grants[index] = {"dynamodb:Query"}
        grants[table].add("dynamodb:BatchGetItem")
    if route.interaction == "delete" and route.resource_type == "Patient":
        # the encounters that still reference the patient
        grants[("EncountersTable", "index")] = {"dynamodb:Query"}
    if route.resource_type == "Encounter" and route.interaction != "delete":
        grants[("PatientsTable", "table")] = {"dynamodb:ConditionCheckItem"}
    if route.interaction == "create":
        grants[("IdempotencyTable", "table")] = set(IDEMPOTENCY_ACTIONS)
        if definition is not None and definition.conditional_create:
            # If-None-Exist runs a search before the create
            grants[index] = {"dynamodb:Query"}
            grants[table].add("dynamodb:BatchGetItem")
    return grants


def test_cfn_lint_reports_no_error_and_no_warning() -> None:
    # Given the template as it is deployed
    command = [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]
    # When cfn-lint checks it
    result = subprocess.run(
        [*command, "--non-zero-exit-code", "warning", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Then it finds no error and no warning
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_route_has_one_function_with_one_matching_event(resources: dict[str, Any]) -> None:
    # Given the functions of the template
    functions = _functions(resources)
    for route in ROUTES:
        # When the route's function is looked up by its logical id
        assert route.logical_id in functions, f"{route.logical_id} missing for {route.method} {route.path}"
        events = _api_events(functions[route.logical_id])
        # Then it has exactly one Api event, for exactly this method and path, on the API
        assert len(events) == 1, f"{route.logical_id} must have exactly one Api event"
        event = events[0]
        assert (event["Method"].upper(), event["Path"]) == (route.method, route.path)
        assert event["RestApiId"] == {"Ref": "FhirApi"}


def test_no_function_serves_two_routes(resources: dict[str, Any]) -> None:
    # Given every (method, path) that any function other than the fallback serves
    served: dict[tuple[str, str], list[str]] = {}
    for name, properties in _functions(resources).items():
        if name == FALLBACK:
            continue
        for event in _api_events(properties):
            served.setdefault((event["Method"].upper(), event["Path"]), []).append(name)
    # Then each is one route of routes.py, served by one function only
    expected = {(route.method, route.path): [route.logical_id] for route in ROUTES}
    assert served == expected


def test_fallback_answers_every_other_method_and_path_without_a_token(resources: dict[str, Any]) -> None:
    # Given the fallback's events
    events = _api_events(resources[FALLBACK]["Properties"])
    # Then it takes ANY method on every path of the API and on everything else under /api/fhir
    paths = sorted(event["Path"] for event in events)
    assert paths == sorted({route.path for route in ROUTES} | {PROXY_PATH})
    for event in events:
        assert event["Method"].upper() == "ANY"
        assert event["Auth"] == {"Authorizer": "NONE"}, f"{event['Path']}: a 405/404 needs no token"


def test_token_authorizer_is_the_default_and_only_metadata_is_open(resources: dict[str, Any]) -> None:
    # Given the REST API
    api = resources["FhirApi"]
    assert api["Type"] == "AWS::Serverless::Api"
    auth = api["Properties"]["Auth"]
    # Then its default authorizer is the TOKEN authorizer, reading Authorization, cached 300 s
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionPayloadType"] == "TOKEN"
    assert authorizer["Identity"]["Header"] == "Authorization"
    assert authorizer["Identity"]["ReauthorizeEvery"] == 300
    assert AUTHORIZER in json.dumps(authorizer["FunctionArn"])
    # And only the public routes (metadata, SMART configuration) opt out of it
    functions = _functions(resources)
    for route in ROUTES:
        event = _api_events(functions[route.logical_id])[0]
        if route.interaction in PUBLIC_INTERACTIONS:
            assert event["Auth"] == {"Authorizer": "NONE"}
        else:
            assert "Auth" not in event, f"{route.logical_id} must use the default authorizer"


def test_each_function_folder_hands_its_events_to_the_shared_layer(resources: dict[str, Any]) -> None:
    functions = _functions(resources)
    folders = {route.logical_id: route.function for route in ROUTES}
    folders.update(
        {FALLBACK: "fallback", AUTHORIZER: "authorizer", RECORDER: "audit_recorder", **EVENT_DRIVEN}
    )
    # Given every function of the template
    assert set(functions) == set(folders)
    for logical_id, folder in folders.items():
        properties = functions[logical_id]
        # Then its code is functions/<folder>/app.py with a `handler`
        assert properties["CodeUri"] == f"functions/{folder}/"
        assert properties["Handler"] == "app.handler"
        source = (ROOT / "functions" / folder / "app.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
        assert ast.get_docstring(tree), f"functions/{folder}/app.py needs a docstring naming its route"
        if folder == "authorizer":
            assert "from fhir_api.auth.authorizer import lambda_handler as handler" in source
            continue
        if logical_id in EVENT_DRIVEN:
            assert "from fhir_api.notifications.aws import" in source and "as handler" in source
            continue
        if folder == "audit_recorder":
            assert "from fhir_api.auditevents.recorder import handler" in source
            continue
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "make_handler"
        ]
        assert len(calls) == 1 and isinstance(calls[0].args[0], ast.Constant)
        assert calls[0].args[0].value == folder


def test_every_function_has_its_event_file(resources: dict[str, Any]) -> None:
    functions = _functions(resources)
    by_logical_id = {route.logical_id: route for route in ROUTES}
    for logical_id, properties in functions.items():
        folder = properties["CodeUri"].strip("/").split("/")[-1]
        path = ROOT / "events" / f"{folder}.json"
        # Given the function's event file
        assert path.exists(), f"events/{folder}.json missing for {logical_id}"
        event = json.loads(path.read_text(encoding="utf-8"))
        if logical_id == AUTHORIZER:
            # Then the authorizer's is a TOKEN authorizer event
            assert event["type"] == "TOKEN"
            assert event["authorizationToken"].startswith("Bearer ")
            assert event["methodArn"].startswith("arn:aws:execute-api:")
            continue
        if logical_id in EVENT_DRIVEN:
            # Then a stream's or a queue's records, of the source its event mapping names
            sources = {spec["Type"] for spec in properties["Events"].values()}
            expected = {"DynamoDB": "aws:dynamodb", "SQS": "aws:sqs"}
            assert {expected[kind] for kind in sources} == {r["eventSource"] for r in event["Records"]}
            continue
        if logical_id == RECORDER:
            # And the recorder's is a CloudWatch Logs subscription delivery
            assert set(event) == {"awslogs"} and event["awslogs"]["data"]
            continue
        # Then the others are REST proxy events (payload 1.0) for a path the function serves
        for key in ("multiValueHeaders", "multiValueQueryStringParameters", "requestContext", "body"):
            assert key in event, f"events/{folder}.json lacks {key}"
        served = [(e["Method"].upper(), e["Path"]) for e in _api_events(properties)]
        assert (event["httpMethod"], event["resource"]) in served or ("ANY", event["resource"]) in served
        route: Route | None = by_logical_id.get(logical_id)
        if route is not None and route.interaction not in PUBLIC_INTERACTIONS:
            authorizer = event["requestContext"]["authorizer"]
            assert authorizer["sub"] and authorizer["roles"]


def test_read_functions_can_only_read(resources: dict[str, Any]) -> None:
    functions = _functions(resources)
    for route in ROUTES:
        if route.interaction in READ_INTERACTIONS or route.interaction in ("capabilities", "operation"):
            # Given a function that only reads: read actions only, on the tables it reads
            grants = _grants(functions[route.logical_id])
            for target, actions in grants.items():
                assert actions <= READ_ACTIONS, f"{route.logical_id} may {actions - READ_ACTIONS} on {target}"
            assert grants == _expected_grants(route), route.logical_id
    for name in (FALLBACK, AUTHORIZER):
        assert _grants(functions[name]) == {}, f"{name} touches no table"


def test_write_functions_get_exactly_what_their_transaction_needs(resources: dict[str, Any]) -> None:
    functions = _functions(resources)
    for route in ROUTES:
        if route.interaction in WRITE_INTERACTIONS | {"delete"}:
            # Given a write function: the item actions of its transaction, on the tables it touches
            assert _grants(functions[route.logical_id]) == _expected_grants(route), route.logical_id


def test_the_bundle_function_gets_what_the_entries_interactions_get(resources: dict[str, Any]) -> None:
    # Given the function of POST /api/fhir
    route = next(route for route in ROUTES if route.interaction == "transaction")
    # Then it may call what the clinical types' own functions may, together, and nothing else
    assert _grants(_functions(resources)[route.logical_id]) == _expected_grants(route)


def test_version_copies_are_limited_to_the_functions_resource_type(resources: dict[str, Any]) -> None:
    functions = _functions(resources)
    for route in ROUTES:
        for statement in _statements(functions[route.logical_id]):
            if _target(_as_list(statement["Resource"])[0])[0] != "VersionsTable":
                continue
            # Then the function reaches only the versions of its own resource type (a Bundle's: the
            # clinical types its entries may be)
            keys = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            types = RESOURCE_TYPES if route.interaction == "transaction" else (route.resource_type,)
            assert keys == [f"{resource_type}/*" for resource_type in types]


def test_no_policy_uses_wildcards(resources: dict[str, Any]) -> None:
    for name, properties in _functions(resources).items():
        for statement in _statements(properties):
            for action in _as_list(statement["Action"]):
                assert "*" not in action, f"{name}: {action}"
            for resource in _as_list(statement["Resource"]):
                assert resource != "*", name


def test_tables_have_the_keys_and_indexes_the_code_uses(resources: dict[str, Any]) -> None:
    for logical_id, spec in TABLES.items():
        # Given the table
        resource = resources[logical_id]
        assert resource["Type"] == "AWS::DynamoDB::Table"
        properties = resource["Properties"]
        # Then its key, attribute types and indexes are the contract's
        assert [(k["AttributeName"], k["KeyType"]) for k in properties["KeySchema"]] == spec["key"]
        attributes = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
        assert attributes == spec["attributes"]
        indexes = {}
        for index in properties.get("GlobalSecondaryIndexes") or []:
            keys = tuple(k["AttributeName"] for k in index["KeySchema"])
            assert [k["KeyType"] for k in index["KeySchema"]] == ["HASH", "RANGE"]
            projected = index["Projection"].get("NonKeyAttributes", [])
            assert index["Projection"]["ProjectionType"] == ("INCLUDE" if projected else "KEYS_ONLY")
            indexes[index["IndexName"]] = (keys, projected)
        assert indexes == spec["indexes"]


def test_tables_are_on_demand_recoverable_encrypted_and_protected(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["DeletionProtection"]["Default"] == "true"
    condition = template["Conditions"]["DeletionProtectionEnabled"]
    assert condition == {"Fn::Equals": [{"Ref": "DeletionProtection"}, "true"]}
    for logical_id, spec in TABLES.items():
        resource = resources[logical_id]
        properties = resource["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"]["SSEEnabled"] is True
        assert properties["DeletionProtectionEnabled"] == {
            "Fn::If": ["DeletionProtectionEnabled", True, False]
        }
        if spec["retain"]:
            # Clinical facts survive a deleted stack and a replaced table
            assert resource.get("DeletionPolicy") == "Retain", logical_id
            assert resource.get("UpdateReplacePolicy") == "Retain", logical_id
    ttl = resources["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiration", "Enabled": True}


@pytest.mark.parametrize(
    ("response_type", "status"),
    [
        ("UNAUTHORIZED", 401),
        ("ACCESS_DENIED", 403),
        ("MISSING_AUTHENTICATION_TOKEN", 404),
        ("THROTTLED", 429),
        ("DEFAULT_4XX", None),
        ("DEFAULT_5XX", None),
    ],
)
def test_gateway_responses_are_operation_outcomes(
    resources: dict[str, Any], response_type: str, status: int | None
) -> None:
    # Given a response API Gateway gives by itself
    response = resources["FhirApi"]["Properties"]["GatewayResponses"][response_type]
    # Then it has the expected status and an OperationOutcome body of type application/fhir+json
    assert response.get("StatusCode") == status
    headers = response["ResponseParameters"]["Headers"]
    assert headers["Content-Type"] == "'application/fhir+json'"
    # And, like every function answer, it is neither cached nor sniffed
    assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(issue["severity"] and issue["code"] for issue in body["issue"])
    # And its last issue quotes the request id, as every function's OperationOutcome does
    assert body["issue"][-1] == {
        "severity": "information",
        "code": "informational",
        "diagnostics": "Request id: $context.requestId",
    }
    if response_type == "UNAUTHORIZED":
        challenge = response["ResponseParameters"]["Headers"]["WWW-Authenticate"]
        assert challenge.startswith("'Bearer") and challenge.endswith("'")


def test_globals_run_python312_on_arm64_with_tracing_and_the_shared_layer(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.12"
    assert function_globals["Architectures"] == ["arm64"]
    # X-Ray traces of the functions and the stage follow one parameter, and so does the Tracer.
    assert function_globals["Tracing"] == {"Fn::If": ["TracingEnabled", "Active", "PassThrough"]}
    assert template["Parameters"]["EnableTracing"]["Default"] == "false"
    assert template["Conditions"]["TracingEnabled"] == {"Fn::Equals": [{"Ref": "EnableTracing"}, "true"]}
    assert resources["FhirApi"]["Properties"]["TracingEnabled"] == {"Fn::If": ["TracingEnabled", True, False]}
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    variables = function_globals["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "encounter-api"
    assert {"POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE"} <= set(variables)
    assert variables["POWERTOOLS_TRACE_DISABLED"] == {"Fn::If": ["TracingEnabled", "false", "true"]}
    layer = resources["SharedLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "shared/"
    # shared/Makefile builds it (requirements for arm64, bytecode of python3.12)
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    for name, properties in _functions(resources).items():
        assert "Runtime" not in properties and "Layers" not in properties, f"{name} overrides Globals"


def test_environment_names_are_the_settings_names(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    known = ENVIRONMENT_NAMES
    tables = {env_name(name): name for name in TABLES}
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    # Then every table variable names its table
    for variable, table in tables.items():
        assert variables[variable] == {"Ref": table}
    for properties in _functions(resources).values():
        variables.update((properties.get("Environment") or {}).get("Variables") or {})
    # And no variable is one the settings would ignore
    unknown = {name for name in variables if name not in known and not name.startswith("POWERTOOLS_")}
    assert unknown == set()


def test_authorizer_gets_the_token_parameters(template: dict[str, Any], resources: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["RolesClaim"]["Default"] == "roles"
    variables = resources[AUTHORIZER]["Properties"]["Environment"]["Variables"]
    # Without the demo user pool (tests/infrastructure/test_operations.py covers it) each setting is
    # its parameter
    expected = {
        "TOKEN_ISSUER": "TokenIssuer",
        "TOKEN_AUDIENCE": "TokenAudience",
        "JWKS_URL": "JwksUrl",
        "ROLES_CLAIM": "RolesClaim",
        "TOKEN_ALGORITHMS": "TokenAlgorithms",
    }
    for variable, parameter in expected.items():
        condition, _, without_pool = variables[variable]["Fn::If"]
        assert condition == "DemoUserPoolEnabled"
        assert without_pool == {"Ref": parameter}, variable


def test_snapstart_is_opt_in(template: dict[str, Any]) -> None:
    assert template["Parameters"]["EnableSnapStart"]["Default"] == "false"
    function_globals = template["Globals"]["Function"]
    assert function_globals["SnapStart"] == {
        "ApplyOn": {"Fn::If": ["SnapStartEnabled", "PublishedVersions", "None"]}
    }
    # SnapStart applies to published versions only, so the API calls each function through its alias
    assert function_globals["AutoPublishAlias"]


def test_page_token_secret_is_generated_and_only_its_arn_reaches_the_paging_functions(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    secret = resources["PageTokenSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    # The value is in no environment (not even as a dynamic reference resolved at deploy time)
    assert "resolve:secretsmanager" not in json.dumps(template)
    functions = _functions(resources)
    for route in ROUTES:
        variables = (functions[route.logical_id].get("Environment") or {}).get("Variables") or {}
        assert "PAGE_TOKEN_SECRET" not in variables, route.logical_id
        if _pages(route):
            # The functions that page get the ARN, and may read that secret (and no other)
            assert variables["PAGE_TOKEN_SECRET_ARN"] == {"Ref": "PageTokenSecret"}, route.logical_id
        else:
            assert "PAGE_TOKEN_SECRET_ARN" not in variables, route.logical_id
    assert "PAGE_TOKEN_SECRET" not in json.dumps(functions[AUTHORIZER])
    assert "PAGE_TOKEN_SECRET" not in json.dumps(template["Globals"])


def test_the_stage_is_throttled_with_documented_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["ThrottlingRateLimit"]["Default"] == 100
    assert parameters["ThrottlingBurstLimit"]["Default"] == 200
    # Every method of every resource shares one stage-wide bucket
    settings = template["Resources"]["FhirApi"]["Properties"]["MethodSettings"]
    assert settings == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        }
    ]


def test_reserved_concurrency_is_opt_in_for_every_function(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # Empty (the default) or 0 reserves nothing; any other number is reserved for each function
    assert template["Parameters"]["ReservedConcurrency"]["Default"] == ""
    condition = template["Conditions"]["ConcurrencyReserved"]
    assert condition == {
        "Fn::Not": [
            {
                "Fn::Or": [
                    {"Fn::Equals": [{"Ref": "ReservedConcurrency"}, ""]},
                    {"Fn::Equals": [{"Ref": "ReservedConcurrency"}, "0"]},
                ]
            }
        ]
    }
    assert template["Globals"]["Function"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ConcurrencyReserved", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    for name, properties in _functions(resources).items():
        assert "ReservedConcurrentExecutions" not in properties, f"{name} overrides Globals"


def test_a_web_acl_is_associated_with_the_stage_only_when_given(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["WebAclArn"]["Default"] == ""
    assert template["Conditions"]["WebAclAssociated"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WebAclArn"}, ""]}]
    }
    association = resources["FhirApiWebAclAssociation"]
    assert association["Type"] == "AWS::WAFv2::WebACLAssociation"
    assert association["Condition"] == "WebAclAssociated"
    assert association["Properties"]["WebACLArn"] == {"Ref": "WebAclArn"}
    # The stage of this API: arn:...:apigateway:<region>::/restapis/<api>/stages/<stage>
    prefix, stage = association["Properties"]["ResourceArn"]["Fn::Join"][1]
    assert prefix["Fn::Sub"].endswith("::/restapis/${FhirApi}/stages/")
    assert stage == {"Ref": "FhirApi.Stage"}


def test_outputs_name_the_api_url_and_tables(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    url = outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("https://${FhirApi}.execute-api.${AWS::Region}.") and url.endswith("/api/fhir")
    for logical_id in TABLES:
        assert outputs[f"{logical_id}Name"]["Value"] == {"Ref": logical_id}


def test_api_gateway_logs_every_request_as_json_without_query_strings(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # Requests refused from a cached authorizer policy reach no function: API Gateway's log has them.
    assert template["Parameters"]["EnableApiAccessLog"]["Default"] == "true"
    condition, enabled, disabled = resources["FhirApi"]["Properties"]["AccessLogSetting"]["Fn::If"]
    assert condition == "ApiAccessLogEnabled"
    assert disabled == {"Ref": "AWS::NoValue"}
    assert enabled["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    record = json.loads(enabled["Format"])
    assert record["request_id"] == "$context.requestId"
    assert record["sub"] == "$context.authorizer.principalId"
    assert record["status"] == "$context.status"
    assert not any("querystring" in value.lower() for value in record.values())
    group = resources["ApiAccessLogGroup"]
    assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Retain"


def _reference(value: Any) -> str:
    """A resource reference as written in the template: !GetAtt T.Arn, !Ref T or !Sub "${T.Arn}/index/*"."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return ".".join(value["Fn::GetAtt"])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::Sub" in value:
        return str(value["Fn::Sub"])
    return str(value)


def _notification_grants(properties: dict[str, Any]) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in _statements(properties):
        assert statement["Effect"] == "Allow"
        for resource in _as_list(statement["Resource"]):
            grants.setdefault(_reference(resource), set()).update(_as_list(statement["Action"]))
    return grants


def test_the_notification_functions_get_exactly_what_they_call(resources: dict[str, Any]) -> None:
    functions = _functions(resources)
    # The stream consumer: events on its bus, messages on its queues, the active subscriptions
    assert _notification_grants(functions["ChangeStreamFunction"]) == {
        "ChangeEventBus.Arn": {"events:PutEvents"},
        "DeliveryQueue.Arn": {"sqs:SendMessage"},
        "ChangeStreamDeadLetterQueue.Arn": {"sqs:SendMessage"},
        "${SubscriptionsTable.Arn}/index/*": {"dynamodb:Query"},
        "SubscriptionsTable.Arn": {"dynamodb:BatchGetItem"},
    }
    # The deliverer: the subscription (and its error version), the resources and versions it sends
    assert _notification_grants(functions["SubscriptionDeliveryFunction"]) == {
        "SubscriptionsTable.Arn": {"dynamodb:GetItem", "dynamodb:PutItem"},
        "VersionsTable.Arn": {"dynamodb:PutItem", "dynamodb:GetItem"},
        "EncountersTable.Arn": {"dynamodb:GetItem"},
        "PatientsTable.Arn": {"dynamodb:GetItem"},
    }
    keys = {
        statement["Sid"]: statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        for statement in _statements(functions["SubscriptionDeliveryFunction"])
        if _reference(_as_list(statement["Resource"])[0]) == "VersionsTable.Arn"
    }
    assert keys == {
        "WriteSubscriptionVersions": ["Subscription/*"],
        "ReadNotifiedVersions": ["Encounter/*", "Patient/*"],
    }


def test_the_clinical_tables_stream_every_version_to_the_consumer_in_order_with_a_dead_letter_queue(
    resources: dict[str, Any],
) -> None:
    events = resources["ChangeStreamFunction"]["Properties"]["Events"]
    for table in ("EncountersTable", "PatientsTable"):
        # Given a clinical table: its stream carries the old and the new image of every write
        stream = resources[table]["Properties"]["StreamSpecification"]
        assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
        # Then the consumer reads it one batch per shard at a time, retries, halves and dead-letters
        mapping = next(
            e["Properties"]
            for e in events.values()
            if e["Properties"]["Stream"] == {"Fn::GetAtt": [table, "StreamArn"]}
        )
        assert mapping["ParallelizationFactor"] == 1
        assert mapping["BisectBatchOnFunctionError"] is True
        assert 0 < mapping["MaximumRetryAttempts"] <= 20
        assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["ChangeStreamDeadLetterQueue", "Arn"]
        }
    assert resources["SubscriptionsTable"]["Properties"].get("StreamSpecification") is None


def test_deliveries_are_retried_then_dead_lettered_with_alarms(resources: dict[str, Any]) -> None:
    queue = resources["DeliveryQueue"]["Properties"]
    delivery = resources["SubscriptionDeliveryFunction"]["Properties"]
    # The queue hands a message over as many times as the deliverer tries, then dead-letters it
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]},
        "maxReceiveCount": int(delivery["Environment"]["Variables"]["DELIVERY_MAX_ATTEMPTS"]),
    }
    # and outlasts six of the function's timeouts, as Lambda asks of the queues it reads
    assert queue["VisibilityTimeout"] >= 6 * delivery["Timeout"]
    assert delivery["Events"]["Deliveries"]["Properties"]["FunctionResponseTypes"] == [
        "ReportBatchItemFailures"
    ]
    # In AWS, endpoints must be https and public
    for name in ("SubscriptionCreateFunction", "SubscriptionUpdateFunction", "SubscriptionDeliveryFunction"):
        assert (
            resources[name]["Properties"]["Environment"]["Variables"]["ALLOW_HTTP_LOOPBACK_ENDPOINTS"] == "0"
        )
    # Every dead-letter queue has an alarm on its first message
    for dead_letters in ("ChangeStreamDeadLetterQueue", "DeliveryDeadLetterQueue"):
        alarm = resources[f"{dead_letters}Alarm"]["Properties"]
        assert alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}
        ]
        assert alarm["Threshold"] == 1
        assert resources[dead_letters]["Properties"]["SqsManagedSseEnabled"] is True


def test_deliveries_are_ordered_per_subscription_and_resource(resources: dict[str, Any]) -> None:
    # The delivery queue and its dead letters are FIFO queues (a FIFO queue's dead letters must be too)
    for name in ("DeliveryQueue", "DeliveryDeadLetterQueue"):
        queue = resources[name]["Properties"]
        assert queue["FifoQueue"] is True
        assert queue["QueueName"]["Fn::Sub"].endswith(".fifo")
    # Deduplicated and throttled per message group (a subscription and a resource), not per queue
    queue = resources["DeliveryQueue"]["Properties"]
    assert queue["DeduplicationScope"] == "messageGroup"
    assert queue["FifoThroughputLimit"] == "perMessageGroupId"
    # One message per invocation, so a receive is an attempt; FIFO mappings take no batching window
    mapping = resources["SubscriptionDeliveryFunction"]["Properties"]["Events"]["Deliveries"]["Properties"]
    assert mapping["BatchSize"] == 1
    assert "MaximumBatchingWindowInSeconds" not in mapping


# -- the audit trail ---------------------------------------------------------------------------------

AUDIT_TABLE = "AuditEventsTable"
APPEND_ACTIONS = {"dynamodb:PutItem", "dynamodb:BatchWriteItem"}


def test_only_the_recorder_writes_audit_events_and_it_can_only_add(resources: dict[str, Any]) -> None:
    for name, properties in _functions(resources).items():
        # Given what each function may do on the AuditEvents table
        actions = set().union(
            *(actions for (table, _), actions in _grants(properties).items() if table == AUDIT_TABLE)
        )
        if name == RECORDER:
            # Then the recorder may add items, and neither change nor remove one
            assert _grants(properties) == {(AUDIT_TABLE, "table"): APPEND_ACTIONS}
        else:
            # And every other function at most reads it
            assert actions <= READ_ACTIONS, f"{name} may {actions - READ_ACTIONS} on the audit trail"
    # And no other IAM resource of the stack names the table
    for name, resource in resources.items():
        if resource["Type"].startswith("AWS::IAM::"):
            assert AUDIT_TABLE not in json.dumps(resource), name


def test_every_function_log_and_the_access_log_feed_the_recorder(resources: dict[str, Any]) -> None:
    subscriptions = {
        json.dumps(res["Properties"]["LogGroupName"]): res
        for res in resources.values()
        if res["Type"] == "AWS::Logs::SubscriptionFilter"
    }
    recorder = {"Ref": f"{RECORDER}.Alias"}
    for name, properties in _functions(resources).items():
        if name in (AUTHORIZER, RECORDER):
            continue  # the access log has the authorizer's refusals under their API request id
        # Given a function's log group: its audit lines go to the recorder
        subscription = subscriptions[json.dumps(properties["LoggingConfig"]["LogGroup"])]
        assert subscription["Properties"]["FilterPattern"] == '{ $.message = "audit" }', name
        assert subscription["Properties"]["DestinationArn"] == recorder
        assert subscription["DependsOn"] == "AuditRecorderLogsPermission"
    # And so do API Gateway's access log lines (the requests no function answered)
    access = subscriptions[json.dumps({"Ref": "ApiAccessLogGroup"})]
    assert access["Condition"] == "ApiAccessLogEnabled"
    assert access["Properties"]["DestinationArn"] == recorder
    permission = resources["AuditRecorderLogsPermission"]["Properties"]
    assert permission["Principal"] == "logs.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"].endswith(":log-group:/aws/lambda/${AWS::StackName}/*")


def test_a_batch_the_recorder_cannot_store_is_retried_then_kept_with_an_alarm(
    resources: dict[str, Any],
) -> None:
    config = resources[RECORDER]["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["AuditDeadLetterQueue", "Arn"]},
    }
    queue = resources["AuditDeadLetterQueue"]
    assert queue["Properties"]["MessageRetentionPeriod"] == 1209600  # 14 days, SQS's longest
    alarm = resources["AuditDeadLetterAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["AuditDeadLetterQueue", "QueueName"]}}
    ]


def test_audit_events_expire_only_after_the_retention_parameter(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["AuditRetentionDays"]
    assert parameter["Default"] == 2192  # six years
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AUDIT_RETENTION_DAYS"] == {"Ref": "AuditRetentionDays"}
    table = template["Resources"][AUDIT_TABLE]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert template["Resources"][AUDIT_TABLE]["DeletionPolicy"] == "Retain"
