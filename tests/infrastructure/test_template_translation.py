"""template.yaml as CloudFormation will run it: the SAM transform (aws-sam-translator, offline: a fixed
region, code locations as `sam package` leaves them, no AWS call) and cfn-lint on the plain
CloudFormation it gives. This catches what a lint of the SAM template cannot see, such as an attribute
a !GetAtt asks of a resource type that has no such attribute.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from cfnlint.api import lint
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

REGION = "us-east-1"
PACKAGED_BUCKET = "s3://encounter-api-artifacts"
# Where each SAM resource type keeps its local code path.
CODE_PROPERTIES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
IDENTITY_PROVIDER = {
    "TokenIssuer": "https://idp.example.org/",
    "TokenAudience": "encounter-api",
    "JwksUrl": "https://idp.example.org/.well-known/jwks.json",
}


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """The template as `sam package` leaves it: every local code path replaced by an S3 URI."""
    result = copy.deepcopy(template)
    for logical_id, resource in result["Resources"].items():
        code_property = CODE_PROPERTIES.get(resource.get("Type"))
        if code_property is not None:
            resource["Properties"][code_property] = f"{PACKAGED_BUCKET}/{logical_id}.zip"
    return result


def _no_managed_policy_lookup() -> dict[str, str]:
    # Policies are inline or ARNs: the transform never needs IAM's list of managed policies.
    return {}


def translate(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The plain CloudFormation the SAM transform makes of ``template`` with ``parameters``."""
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    return translator.translate(
        packaged(template),
        parameter_values=dict(parameters),
        get_managed_policy_map=_no_managed_policy_lookup,
    )


PARAMETER_SETS = {
    "external identity provider": IDENTITY_PROVIDER,
    "demo user pool": {"CreateDemoUserPool": "true"},
}


@pytest.fixture(scope="module", params=sorted(PARAMETER_SETS))
def translated(request: pytest.FixtureRequest, template: dict[str, Any]) -> dict[str, Any]:
    """The translated template, once with each way of configuring the authorizer."""
    return translate(template, PARAMETER_SETS[request.param])


def test_the_transform_leaves_no_sam_resource_or_local_path(translated: dict[str, Any]) -> None:
    # Given the translated template
    resources = translated["Resources"]
    # Then only plain CloudFormation types remain, and every code location is in S3
    assert not [name for name, res in resources.items() if res["Type"].startswith("AWS::Serverless::")]
    assert "Transform" not in translated
    functions = {name: res for name, res in resources.items() if res["Type"] == "AWS::Lambda::Function"}
    assert functions
    for name, function in functions.items():
        assert function["Properties"]["Code"]["S3Bucket"] == PACKAGED_BUCKET.removeprefix("s3://"), name
        # And the function's log group survives the transform
        assert function["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": f"{name}LogGroup"}}


def test_cfn_lint_finds_nothing_in_the_translated_template(translated: dict[str, Any]) -> None:
    # When cfn-lint checks the plain CloudFormation
    matches = lint(json.dumps(translated), regions=[REGION])
    # Then it finds no error and no warning
    assert [f"{match.rule.id} {match.message} ({match.path})" for match in matches] == []


def test_cfn_lint_would_catch_an_attribute_the_sam_lint_misses(template: dict[str, Any]) -> None:
    # Given the template with an attribute no user pool has, inside the authorizer's !If
    broken = copy.deepcopy(template)
    variables = broken["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    variables["TOKEN_ISSUER"]["Fn::If"][1] = {"Fn::GetAtt": ["DemoUserPool", "IssuerUrl"]}
    # When it is translated and linted
    matches = lint(json.dumps(translate(broken, {"CreateDemoUserPool": "true"})), regions=[REGION])
    # Then the bad attribute is reported
    assert any("IssuerUrl" in match.message for match in matches)
