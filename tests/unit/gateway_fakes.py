"""A tiny SAM template and fake functions for the local gateway's unit tests (no AWS, no network)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

ECHO = """
import json

def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {"X-Multi": ["a", "b"]},
            "body": json.dumps({"event": event, "function": context.function_name})}
"""

BINARY = """
import base64

def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(bytes([0, 255, 1])).decode(), "isBase64Encoded": True}
"""

# A function answering a patient's record instead of a proxy result.
NOT_PROXY = """
def handler(event, context):
    return {"resourceType": "Patient", "name": [{"family": "Chalmers"}]}
"""

CRASH = """
def handler(event, context):
    raise RuntimeError("boom")
"""

# The authorizer decides by the token's text, so each test names the behaviour it wants.
AUTHORIZER = """
CALLS = []

def policy(effect, resource, context=None):
    answer = {"principalId": "user-1", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]}}
    if context is not None:
        answer["context"] = context
    return answer

def handler(event, context):
    CALLS.append(event)
    token = event["authorizationToken"].removeprefix("Bearer ")
    arn = event["methodArn"]
    base = arn.split("/", 1)[0]
    if token == "allow":
        return policy("Allow", base + "/*/*/*", {"sub": "user-1", "roles": "admin"})
    if token == "get-items-only":
        return policy("Allow", base + "/Prod/GET/items/*")
    if token == "single-char":
        return policy("Allow", base + "/Prod/GET/items/?")
    if token == "deny":
        return policy("Deny", base + "/*")
    if token == "allow-then-deny":
        answer = policy("Allow", base + "/*")
        answer["policyDocument"]["Statement"].append(
            {"Action": "execute-api:*", "Effect": "Deny", "Resource": base + "/*/PUT/*"})
        return answer
    if token == "no-policy":
        return {"principalId": "user-1"}
    if token == "crash":
        raise ValueError("authorizer bug")
    raise Exception("Unauthorized")
"""


def _function(logical_id: str, folder: str, events: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"CodeUri": f"functions/{folder}/", "Handler": "app.handler"}
    if events:
        properties["Events"] = events
    return {logical_id: {"Type": "AWS::Serverless::Function", "Properties": properties}}


def _api_event(path: str, method: str, auth: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {"RestApiId": {"Ref": "Api"}, "Path": path, "Method": method}
    if not auth:
        properties["Auth"] = {"Authorizer": "NONE"}
    return {"Type": "Api", "Properties": properties}


def write_fake_api(root: Path, reauthorize_every: int = 300) -> dict[str, Any]:
    """Write the fake functions under ``root/functions`` and return the template that serves them."""
    sources = {
        "echo": ECHO,
        "binary": BINARY,
        "crash": CRASH,
        "not_proxy": NOT_PROXY,
        "authorizer": AUTHORIZER,
    }
    for folder, source in sources.items():
        (root / "functions" / folder).mkdir(parents=True, exist_ok=True)
        (root / "functions" / folder / "app.py").write_text(textwrap.dedent(source), encoding="utf-8")
    resources: dict[str, Any] = {
        "Api": {
            "Type": "AWS::Serverless::Api",
            "Properties": {
                "StageName": {"Ref": "Stage"},
                "Auth": {
                    "DefaultAuthorizer": "Tokens",
                    "Authorizers": {
                        "Tokens": {
                            "FunctionArn": {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]},
                            "FunctionPayloadType": "TOKEN",
                            "Identity": {"Header": "Authorization", "ReauthorizeEvery": reauthorize_every},
                        }
                    },
                },
                "GatewayResponses": {
                    "UNAUTHORIZED": {
                        "StatusCode": 401,
                        "ResponseParameters": {
                            "Headers": {
                                "WWW-Authenticate": "'Bearer'",
                                "Content-Type": "'application/fhir+json'",
                                "X-Origin": "method.request.header.Origin",
                            }
                        },
                        "ResponseTemplates": {
                            "application/json": '{"error":$context.error.messageString,'
                            '"type":"$context.error.responseType","id":"$context.requestId"}'
                        },
                    },
                    "DEFAULT_5XX": {
                        "ResponseTemplates": {"application/json": '{"outcome":"server error"}'},
                    },
                },
            },
        },
    }
    resources.update(_function("AuthorizerFunction", "authorizer"))
    resources.update(
        _function(
            "EchoFunction",
            "echo",
            {
                "List": _api_event("/items", "GET"),
                "Read": _api_event("/items/{id}", "GET"),
                "Update": _api_event("/items/{id}", "PUT"),
                "Versions": _api_event("/items/{id}/_history/{vid}", "GET"),
                "Open": _api_event("/open", "POST", auth=False),
            },
        )
    )
    resources.update(
        _function("FallbackFunction", "echo", {"Any": _api_event("/items/{proxy+}", "ANY", False)})
    )
    resources["FallbackFunction"]["Properties"]["Environment"] = {"Variables": {"FALLBACK_FLAG": "on"}}
    resources.update(_function("BinaryFunction", "binary", {"Get": _api_event("/binary", "GET", auth=False)}))
    resources.update(_function("CrashFunction", "crash", {"Get": _api_event("/crash", "GET", auth=False)}))
    resources.update(
        _function("NotProxyFunction", "not_proxy", {"Get": _api_event("/not-proxy", "GET", auth=False)})
    )
    return {
        "Parameters": {"Stage": {"Type": "String", "Default": "Prod"}},
        "Globals": {"Function": {"Environment": {"Variables": {"GLOBAL_FLAG": "yes"}}}},
        "Resources": resources,
    }
