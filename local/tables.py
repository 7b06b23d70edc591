"""The DynamoDB tables of template.yaml, created on DynamoDB Local or moto from the template itself,
so local runs and tests cannot drift from what is deployed.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from local import LocalError

TABLE_TYPE = "AWS::DynamoDB::Table"
# The tables the API functions need, by template logical id.
REQUIRED_TABLES = ("EncountersTable", "PatientsTable", "VersionsTable", "IdempotencyTable")
_CREATE_KEYS = ("KeySchema", "AttributeDefinitions", "LocalSecondaryIndexes", "StreamSpecification")


def load(template: dict[str, Any] | None) -> dict[str, Any]:
    """The given template, or template.yaml parsed by the project's tag-aware loader."""
    if template is not None:
        return template
    from local.template import load_template

    return load_template()


def table_resources(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every AWS::DynamoDB::Table of the template: logical id -> Properties; LocalError if one the
    code needs is missing."""
    resources = load(template).get("Resources") or {}
    tables = {
        logical_id: dict(resource.get("Properties") or {})
        for logical_id, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == TABLE_TYPE
    }
    missing = [logical_id for logical_id in REQUIRED_TABLES if logical_id not in tables]
    if missing:
        raise LocalError(
            f"template.yaml defines no {TABLE_TYPE} {', '.join(missing)}; add "
            f"{'it' if len(missing) == 1 else 'them'} under Resources (see docs/data-model.md)"
        )
    return tables


def local_name(logical_id: str, prefix: str = "") -> str:
    """The local table name: the logical id without "Table" (EncountersTable -> Encounters)."""
    base = logical_id[: -len("Table")] if logical_id.endswith("Table") else logical_id
    return f"{prefix}{base}"


def table_names(prefix: str = "", template: dict[str, Any] | None = None) -> dict[str, str]:
    """Logical id -> local table name, for every table of the template."""
    return {logical_id: local_name(logical_id, prefix) for logical_id in table_resources(template)}


def env_name(logical_id: str) -> str:
    """The environment variable naming a table: EncountersTable -> ENCOUNTERS_TABLE."""
    base = logical_id[: -len("Table")] if logical_id.endswith("Table") else logical_id
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).upper() + "_TABLE"


def table_env(prefix: str = "", template: dict[str, Any] | None = None) -> dict[str, str]:
    """The functions' table variables (ENCOUNTERS_TABLE=...) for the tables named with ``prefix``."""
    return {env_name(logical_id): name for logical_id, name in table_names(prefix, template).items()}


def _create_request(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"TableName": name}
    for key in _CREATE_KEYS:
        if key in properties:
            request[key] = properties[key]
    stream = properties.get("StreamSpecification")
    if isinstance(stream, dict) and stream.get("StreamViewType"):
        # CloudFormation's StreamSpecification names the view only; the API also wants it enabled.
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    billing = properties.get("BillingMode")
    if isinstance(billing, str) and billing != "PROVISIONED":
        request["BillingMode"] = billing
    else:
        throughput = properties.get("ProvisionedThroughput")
        request["BillingMode"] = "PROVISIONED" if throughput else "PAY_PER_REQUEST"
        if throughput:
            request["ProvisionedThroughput"] = throughput
    indexes = []
    for index in properties.get("GlobalSecondaryIndexes") or []:
        entry = {key: index[key] for key in ("IndexName", "KeySchema", "Projection") if key in index}
        if request["BillingMode"] == "PROVISIONED" and "ProvisionedThroughput" in index:
            entry["ProvisionedThroughput"] = index["ProvisionedThroughput"]
        indexes.append(entry)
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    return request


def create_tables(client: Any, template: dict[str, Any] | None = None, prefix: str = "") -> dict[str, str]:
    """Create every table of the template that does not exist yet (key schema, attribute definitions,
    GSIs, billing, TTL where the engine supports it); returns logical id -> table name."""
    tables = table_resources(template)
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page.get("TableNames", []))
    names: dict[str, str] = {}
    for logical_id, properties in tables.items():
        name = local_name(logical_id, prefix)
        names[logical_id] = name
        if name in existing:
            _enable_stream(client, name, properties)
            _add_missing_indexes(client, name, properties)
            continue
        client.create_table(**_create_request(name, properties))
        ttl = properties.get("TimeToLiveSpecification") or {}
        if ttl.get("Enabled") and ttl.get("AttributeName"):
            # Expiry is a convenience locally; an engine without TTL support still serves the API.
            with contextlib.suppress(client.exceptions.ClientError, NotImplementedError):
                client.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
    return names


def _enable_stream(client: Any, name: str, properties: dict[str, Any]) -> None:
    """Give a table made before the template named its stream (an older data folder) that stream."""
    wanted = _create_request(name, properties).get("StreamSpecification")
    if not wanted:
        return
    current = client.describe_table(TableName=name)["Table"].get("StreamSpecification") or {}
    if not current.get("StreamEnabled"):
        client.update_table(TableName=name, StreamSpecification=wanted)


def _add_missing_indexes(client: Any, name: str, properties: dict[str, Any]) -> None:
    """Give a table of an older data folder the indexes the template added since (Encounters'
    ``term-index``); DynamoDB fills each from the items already there. One index per update, as
    DynamoDB allows."""
    request = _create_request(name, properties)
    table = client.describe_table(TableName=name)["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes") or []}
    for index in request.get("GlobalSecondaryIndexes") or []:
        if index["IndexName"] in present:
            continue
        keys = {part["AttributeName"] for part in index["KeySchema"]}
        client.update_table(
            TableName=name,
            AttributeDefinitions=[
                definition
                for definition in request["AttributeDefinitions"]
                if definition["AttributeName"] in keys
            ],
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )


def delete_tables(client: Any, names: dict[str, str] | list[str]) -> None:
    """Delete the given tables (those already gone are skipped)."""
    for name in names.values() if isinstance(names, dict) else names:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=name)
