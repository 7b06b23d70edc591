"""The baseline the cold-start figures divide by: the least a Python function reading DynamoDB does.

It imports boto3, makes a DynamoDB client at import (as most functions do) and answers its event with
one GetItem of the encounter named in the path: the same first call the read function makes. Dividing
by it leaves what the shared layer adds (its imports, settings, routing, validation, logging), not
what any boto3 function pays. It imports boto3 itself on purpose: it stands for a function without
the layer. The layer makes its clients with botocore alone and does not import boto3 (decision 0029),
so the ratios count that part of the baseline's cost as saved, as a deployed function saves it.
"""

from __future__ import annotations

import os
from typing import Any

import boto3

_client = boto3.client(
    "dynamodb",
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    endpoint_url=os.environ.get("DYNAMODB_ENDPOINT") or None,
)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GET /Encounter/{id} without the layer: one GetItem, the stored JSON text as the body."""
    answer = _client.get_item(
        TableName=os.environ["ENCOUNTERS_TABLE"],
        Key={"id": {"S": event["pathParameters"]["id"]}},
        ConsistentRead=True,
    )
    item = answer.get("Item")
    if item is None:
        return {"statusCode": 404, "headers": {}, "body": ""}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/fhir+json"},
        "body": item["resource"]["S"],
    }
