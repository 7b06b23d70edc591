"""What operating the stack in AWS relies on: each function's own log group, the alarms, the dashboard
and the optional demo identity provider. Functions are found by type, so one added later without its
log group or alarms fails here."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from fhir_api.routes import ROLE_INTERACTIONS

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_TYPE = "AWS::Serverless::Function"
TABLE_TYPE = "AWS::DynamoDB::Table"
ALARM_TYPE = "AWS::CloudWatch::Alarm"
AUTHORIZER = "AuthorizerFunction"
NO_VALUE = {"Ref": "AWS::NoValue"}
NOTIFY = {"Fn::If": ["AlarmTopicSet", [{"Ref": "AlarmTopicArn"}], NO_VALUE]}
DEMO = "DemoUserPoolEnabled"
TOKEN_PARAMETERS = {
    "TOKEN_ISSUER": "TokenIssuer",
    "TOKEN_AUDIENCE": "TokenAudience",
    "JWKS_URL": "JwksUrl",
    "ROLES_CLAIM": "RolesClaim",
    "TOKEN_ALGORITHMS": "TokenAlgorithms",
}


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def _alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in _of_type(resources, ALARM_TYPE).items()}


def _lambda_alarm_targets(resources: dict[str, Any], metric: str) -> list[str]:
    """The functions (logical ids) that have an alarm on the AWS/Lambda ``metric``."""
    targets = []
    for alarm in _alarms(resources).values():
        if alarm.get("Namespace") == "AWS/Lambda" and alarm.get("MetricName") == metric:
            assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
            assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            (dimension,) = alarm["Dimensions"]
            assert dimension["Name"] == "FunctionName"
            targets.append(dimension["Value"]["Ref"])
    return targets


def _insights_query(alarm: dict[str, Any]) -> str:
    (query,) = alarm["Metrics"]
    assert query["ReturnData"] is True and query["Period"] == 300
    return " ".join(str(query["Expression"]["Fn::Sub"]).split())


def _string_constants(folder: Path) -> set[str]:
    constants: set[str] = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                constants.add(node.value)
    return constants


def _resolve(value: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """The few intrinsics the authorizer's settings use, resolved for the given parameter values."""
    if isinstance(value, list):
        return [_resolve(item, template, parameters) for item in value]
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((name, argument),) = value.items()
    if name == "Ref" and argument in template["Parameters"]:
        return parameters.get(argument, template["Parameters"][argument].get("Default"))
    if name == "Fn::Equals":
        left, right = (_resolve(item, template, parameters) for item in argument)
        return str(left) == str(right)
    if name == "Fn::If":
        condition, when_true, when_false = argument
        chosen = (
            when_true if _resolve(template["Conditions"][condition], template, parameters) else when_false
        )
        return _resolve(chosen, template, parameters)
    return value


def test_every_function_writes_to_its_own_retained_log_group(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    parameters = template["Parameters"]
    assert parameters["LogRetentionDays"]["Default"] == 365
    assert template["Conditions"]["LogKmsKeySet"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "LogKmsKeyArn"}, ""]}]
    }
    functions = _of_type(resources, FUNCTION_TYPE)
    assert AUTHORIZER in functions and "FallbackFunction" in functions
    groups = set()
    for name, function in functions.items():
        # Given a function: Lambda writes to the log group its LoggingConfig names
        logging = function["Properties"].get("LoggingConfig") or {}
        assert "LogGroup" in logging, f"{name}: declare {name}LogGroup and set LoggingConfig.LogGroup to it"
        group_id = logging["LogGroup"]["Ref"]
        groups.add(group_id)
        group = resources[group_id]
        # Then that group is declared, named after the function, kept LogRetentionDays, optionally
        # encrypted with LogKmsKeyArn, and kept when the stack goes (it holds audit records)
        assert group["Type"] == "AWS::Logs::LogGroup"
        properties = group["Properties"]
        assert properties["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{name}"}
        assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert properties["KmsKeyId"] == {"Fn::If": ["LogKmsKeySet", {"Ref": "LogKmsKeyArn"}, NO_VALUE]}
        assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Retain"
    # And no two functions share one
    assert len(groups) == len(functions)


def test_every_function_has_an_errors_and_a_throttles_alarm(resources: dict[str, Any]) -> None:
    functions = set(_of_type(resources, FUNCTION_TYPE))
    errors = _lambda_alarm_targets(resources, "Errors")
    throttles = _lambda_alarm_targets(resources, "Throttles")
    # Every function: one alarm on its throttles
    assert sorted(throttles) == sorted(functions)
    # And one on its errors, but the authorizer, which refuses a token by raising (a Lambda error)
    assert sorted(errors) == sorted(functions - {AUTHORIZER})


def test_authorizer_failures_are_counted_from_its_log(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    filters = _of_type(resources, "AWS::Logs::MetricFilter")
    on_authorizer = [
        res["Properties"]
        for res in filters.values()
        if res["Properties"]["LogGroupName"] == {"Ref": f"{AUTHORIZER}LogGroup"}
    ]
    patterns = " ".join(f["FilterPattern"] for f in on_authorizer)
    # Given the reasons the filters count
    reasons = set(re.findall(r'\$\.audit\.reason = "([^"]+)"', patterns))
    # Then each is one the authorizer really writes in its audit records, and timeouts count too
    assert reasons and reasons <= _string_constants(ROOT / "shared" / "fhir_api" / "auth")
    assert {"signing keys unavailable", "authorizer error"} <= reasons
    assert '"Task timed out"' in patterns
    metrics = {
        (json.dumps(t["MetricNamespace"]), t["MetricName"])
        for f in on_authorizer
        for t in f["MetricTransformations"]
    }
    assert len(metrics) == 1
    ((namespace, metric),) = metrics
    # And an alarm watches that metric
    watching = [
        a
        for a in _alarms(resources).values()
        if json.dumps(a.get("Namespace")) == namespace and a.get("MetricName") == metric
    ]
    assert len(watching) == 1 and watching[0]["Threshold"] == 1


def test_api_alarms_watch_the_5xx_rate_and_p99_latency_of_this_api(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    api_name = resources["FhirApi"]["Properties"]["Name"]
    dimensions = [{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": {"Ref": "StageName"}}]
    alarms = _alarms(resources)
    # The 5xx rate: 5XXError over Count of this API and stage, in percent, from AlarmApiServerErrorPercent
    (rate,) = [a for a in alarms.values() if "Metrics" in a and "5XXError" in json.dumps(a["Metrics"])]
    stats = {q["Id"]: q["MetricStat"] for q in rate["Metrics"] if "MetricStat" in q}
    assert {s["Metric"]["MetricName"] for s in stats.values()} == {"5XXError", "Count"}
    assert all(s["Metric"]["Dimensions"] == dimensions and s["Stat"] == "Sum" for s in stats.values())
    (expression,) = [q["Expression"] for q in rate["Metrics"] if q.get("ReturnData")]
    assert "100 * errors / requests" in expression
    assert rate["Threshold"] == {"Ref": "AlarmApiServerErrorPercent"}
    assert template["Parameters"]["AlarmApiServerErrorPercent"]["Default"] == 1
    # The latency: p99 of this API and stage, above AlarmApiLatencyP99Milliseconds
    (latency,) = [a for a in alarms.values() if a.get("MetricName") == "Latency"]
    assert latency["Namespace"] == "AWS/ApiGateway" and latency["Dimensions"] == dimensions
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == {"Ref": "AlarmApiLatencyP99Milliseconds"}


def test_every_table_has_throttling_and_system_error_alarms(resources: dict[str, Any]) -> None:
    queries = [_insights_query(a) for a in _alarms(resources).values() if "SELECT" in json.dumps(a)]
    for table in _of_type(resources, TABLE_TYPE):
        for metric in ("ThrottledRequests", "SystemErrors"):
            # Given the table: one alarm sums the metric over every operation on it
            expected = (
                f'SELECT SUM({metric}) FROM SCHEMA("AWS/DynamoDB", Operation, TableName) '
                f"WHERE TableName = '${{{table}}}'"
            )
            assert queries.count(expected) == 1, f"{table} {metric}"


def test_every_alarm_notifies_the_topic_when_one_is_given(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["AlarmTopicSet"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    for name, alarm in _alarms(resources).items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == NOTIFY, name
        # Quiet hours are not an incident: no data is not a breach
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert "${AWS::StackName}" in alarm["AlarmName"]["Fn::Sub"], name


def test_the_dashboard_shows_the_api_every_function_and_table_and_every_alarm(
    resources: dict[str, Any],
) -> None:
    (dashboard,) = _of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    widgets = {w["properties"]["title"]: w["properties"] for w in body["widgets"]}

    def metric_names(title: str) -> list[str]:
        return [m[1] for m in widgets[title]["metrics"] if isinstance(m[0], str)]

    def dimension_values(title: str) -> set[str]:
        return {m[3] for m in widgets[title]["metrics"] if isinstance(m[0], str) and len(m) > 3}

    assert metric_names("API requests") == ["Count"]
    assert {m[-1]["stat"] for m in widgets["API latency"]["metrics"]} >= {"p50", "p99"}
    assert set(metric_names("API 4xx and 5xx answers")) == {"4XXError", "5XXError"}
    functions = {f"${{{name}}}" for name in _of_type(resources, FUNCTION_TYPE)}
    for title in ("Function errors", "Function throttles", "Function concurrency (max)"):
        assert dimension_values(title) == functions, title
    tables = {f"${{{name}}}" for name in _of_type(resources, TABLE_TYPE)}
    assert dimension_values("Table consumed read units") == tables
    assert dimension_values("Table consumed write units") == tables
    throttle_queries = " ".join(
        m[0]["expression"]
        for m in widgets["Table throttled requests and authorizer failures"]["metrics"]
        if isinstance(m[0], dict)
    )
    assert all(table in throttle_queries for table in tables)
    alarms = {f"${{{name}.Arn}}" for name in _of_type(resources, ALARM_TYPE)}
    assert set(widgets["Alarms"]["alarms"]) == alarms


@pytest.mark.parametrize("demo_pool", [False, True])
def test_the_authorizer_trusts_the_demo_pool_only_when_asked(
    template: dict[str, Any], resources: dict[str, Any], demo_pool: bool
) -> None:
    assert template["Parameters"]["CreateDemoUserPool"]["Default"] == "false"
    variables = resources[AUTHORIZER]["Properties"]["Environment"]["Variables"]
    parameters = {"CreateDemoUserPool": "true" if demo_pool else "false"}
    # When the authorizer's token settings are resolved
    settings = {name: _resolve(variables[name], template, parameters) for name in TOKEN_PARAMETERS}
    if demo_pool:
        # Then they are the demo pool's: its issuer URL, its app client, its keys, its groups
        assert settings == {
            "TOKEN_ISSUER": {"Fn::GetAtt": ["DemoUserPool", "ProviderURL"]},
            "TOKEN_AUDIENCE": {"Ref": "DemoUserPoolClient"},
            "JWKS_URL": {"Fn::Sub": "${DemoUserPool.ProviderURL}/.well-known/jwks.json"},
            "ROLES_CLAIM": "cognito:groups",
            "TOKEN_ALGORITHMS": "RS256",
        }
    else:
        # Then they are the parameters, as without the demo pool
        assert settings == {
            name: template["Parameters"][parameter].get("Default")
            for name, parameter in TOKEN_PARAMETERS.items()
        }


def test_the_demo_pool_exists_only_when_asked_and_its_groups_are_the_roles(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Conditions"][DEMO] == {"Fn::Equals": [{"Ref": "CreateDemoUserPool"}, "true"]}
    cognito = {name: res for name, res in resources.items() if res["Type"].startswith("AWS::Cognito::")}
    # Every Cognito resource is made only with CreateDemoUserPool=true
    assert cognito and all(res.get("Condition") == DEMO for res in cognito.values())
    groups = {
        res["Properties"]["GroupName"]
        for res in cognito.values()
        if res["Type"] == "AWS::Cognito::UserPoolGroup"
    }
    assert groups == set(ROLE_INTERACTIONS)
    (client,) = [
        res["Properties"] for res in cognito.values() if res["Type"] == "AWS::Cognito::UserPoolClient"
    ]
    # A terminal can sign in (initiate-auth USER_PASSWORD_AUTH) with a public client
    assert "ALLOW_USER_PASSWORD_AUTH" in client["ExplicitAuthFlows"]
    assert client["GenerateSecret"] is False
    (pool,) = [res["Properties"] for res in cognito.values() if res["Type"] == "AWS::Cognito::UserPool"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    outputs = template["Outputs"]
    assert outputs["DemoUserPoolId"]["Condition"] == outputs["DemoUserPoolClientId"]["Condition"] == DEMO


def test_without_the_demo_pool_the_identity_provider_is_required(template: dict[str, Any]) -> None:
    (rule,) = [
        rule
        for rule in template["Rules"].values()
        if rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "CreateDemoUserPool"}, "false"]}
    ]
    asserted = {a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in rule["Assertions"]}
    assert asserted == {"TokenIssuer", "TokenAudience", "JwksUrl"}
