"""The local stack's tooling: tables from template.yaml (on moto), the token issuer, and one-line
errors for bad input (a template without a table, a port in use, java missing)."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from typing import Any

import boto3
import jwt
import pytest

from local import ROOT, LocalError, issuer, tables
from local.dynamodb import DynamoDBLocal, free_port


def test_moto_tables_follow_the_template(moto_tables: dict[str, str]) -> None:
    # Given the tables the moto fixture built from template.yaml
    client = boto3.client("dynamodb", region_name="us-east-1")

    # When they are described
    encounters = client.describe_table(TableName=moto_tables["EncountersTable"])["Table"]
    versions = client.describe_table(TableName=moto_tables["VersionsTable"])["Table"]

    # Then names, keys and indexes are the template's
    assert moto_tables["EncountersTable"] == "Encounters"
    assert {index["IndexName"] for index in encounters["GlobalSecondaryIndexes"]} == {
        "subject-index",
        "status-index",
        "date-index",
        "term-index",
    }
    assert versions["KeySchema"] == [
        {"AttributeName": "resourceKey", "KeyType": "HASH"},
        {"AttributeName": "versionId", "KeyType": "RANGE"},
    ]
    assert os.environ["ENCOUNTERS_TABLE"] == "Encounters"


def test_create_tables_is_idempotent_and_prefixed(
    moto_tables: dict[str, str], template: dict[str, Any]
) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")

    again = tables.create_tables(client, template)
    prefixed = tables.create_tables(client, template, prefix="t1-")

    assert again == moto_tables
    assert prefixed["PatientsTable"] == "t1-Patients"
    assert "t1-Patients" in client.list_tables()["TableNames"]


def test_table_names_and_env(template: dict[str, Any]) -> None:
    assert tables.table_names("p-", template)["IdempotencyTable"] == "p-Idempotency"
    assert tables.table_env("", template) == {
        "ENCOUNTERS_TABLE": "Encounters",
        "PATIENTS_TABLE": "Patients",
        "VERSIONS_TABLE": "Versions",
        "IDEMPOTENCY_TABLE": "Idempotency",
        "SUBSCRIPTIONS_TABLE": "Subscriptions",
        "AUDIT_EVENTS_TABLE": "AuditEvents",
    }


def test_a_template_without_a_needed_table_is_a_one_line_error(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    del broken["Resources"]["VersionsTable"]

    with pytest.raises(LocalError) as error:
        tables.table_resources(broken)

    message = str(error.value)
    assert "VersionsTable" in message and "add" in message and "\n" not in message


def test_issuer_tokens_verify_against_the_jwks() -> None:
    # Given a token for a role and the published key set
    token = issuer.mint("practitioner", "dr-who", 600)
    (key,) = issuer.jwks()["keys"]

    # When it is verified the way the authorizer does
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="encounter-api",
        issuer="encounter-api-local",
    )

    # Then kid, claims and roles are the contract's
    assert header["kid"] == key["kid"] == issuer.thumbprint(key)
    assert claims["sub"] == "dr-who"
    assert claims["roles"] == ["practitioner"]
    assert claims["exp"] - claims["iat"] == 600
    assert (ROOT / ".local" / "issuer" / "private.pem").stat().st_mode & 0o077 == 0


def test_negative_ttl_mints_an_expired_token() -> None:
    token = issuer.mint("admin", ttl=-1)
    (key,) = issuer.jwks()["keys"]

    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="encounter-api", leeway=60)


def test_hostile_token_helpers() -> None:
    # Given another key signing under the issuer's kid
    other = issuer.generate_key()
    token = issuer.mint("admin", key=other, headers={"kid": issuer.kid()}, roles=["admin", "x"], nbf=None)
    (key,) = issuer.jwks()["keys"]

    # Then the header claims the issuer's kid but the signature does not verify
    assert jwt.get_unverified_header(token)["kid"] == issuer.kid()
    assert "nbf" not in jwt.decode(token, options={"verify_signature": False})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="encounter-api")


def test_token_cli_prints_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.issuer", "nurse", "", "-30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert jwt.decode(result.stdout.strip(), options={"verify_signature": False})["roles"] == ["nurse"]


def test_token_cli_keeps_role_sub_and_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    # Given / When the arguments make token passes for ROLE, SUB and TTL (SCOPE and AUD empty)
    assert issuer.main(["auditor", "nurse-7", "120", "", ""]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})

    # Then it is today's role-bearing token
    assert (claims["roles"], claims["sub"], claims["aud"]) == (["auditor"], "nurse-7", issuer.AUDIENCE)
    assert claims["exp"] - claims["iat"] == 120
    assert "scope" not in claims and "client_id" not in claims


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["", "", "", "system/Encounter.rs system/Patient.rs", "none"], {"roles": None, "aud": None}),
        (
            ["practitioner", "", "", "user/Encounter.rs", ""],
            {"roles": ["practitioner"], "aud": issuer.AUDIENCE},
        ),
    ],
)
def test_token_cli_prints_an_access_token_for_scopes(
    args: list[str], expected: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given / When make token SCOPE="..." (with or without ROLE, with AUD=none or not)
    assert issuer.main(args) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})

    # Then it carries client_id and scope like a client-credentials access token
    assert claims["client_id"] == claims["sub"] == issuer.CLIENT_ID
    assert claims["scope"] == args[3]
    assert claims.get("roles") == expected["roles"]
    assert claims.get("aud") == expected["aud"]


def test_token_cli_needs_a_role_or_a_scope(capsys: pytest.CaptureFixture[str]) -> None:
    assert issuer.main(["", "", "", "", ""]) == 2
    assert "SCOPE=" in capsys.readouterr().err


def test_dynamodb_local_on_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(LocalError) as error:
            DynamoDBLocal(port).start()

    assert f"port {port}" in str(error.value) and "DDB_PORT" in str(error.value)


def test_missing_java_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(LocalError) as error:
        DynamoDBLocal(free_port()).command()

    assert "java not found" in str(error.value) and "install" in str(error.value)


def test_missing_jar_is_a_one_line_error(tmp_path: Any) -> None:
    with pytest.raises(LocalError) as error:
        DynamoDBLocal(free_port(), install_dir=tmp_path).command()

    assert "make install" in str(error.value)


def test_install_without_npm_is_a_one_line_error(tmp_path: Any) -> None:
    # Given a PATH with java but without npm
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)

    # When the installer runs
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import local.dynamodb as d, pathlib; d.install(pathlib.Path({str(tmp_path)!r}) / 'x')",
        ],
        cwd=ROOT,
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it fails naming npm and the fix
    assert result.returncode != 0
    assert "npm not found on PATH; install Node.js and npm" in result.stderr


def test_a_table_made_without_its_stream_gets_it(
    moto_tables: dict[str, str], template: dict[str, Any]
) -> None:
    # Given an Encounters table of an older data folder, made before the template named its stream
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="old-Encounters",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # When the tables are made again
    tables.create_tables(client, template, prefix="old-")
    # Then it streams old and new images, as deployed
    stream = client.describe_table(TableName="old-Encounters")["Table"]["StreamSpecification"]
    assert stream == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_a_table_made_before_an_index_was_added_gets_it(
    moto_tables: dict[str, str], template: dict[str, Any]
) -> None:
    # Given an Encounters table of an older data folder, made before the template added term-index
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="older-Encounters",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "subject", "AttributeType": "S"},
            {"AttributeName": "periodStart", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "subject-index",
                "KeySchema": [
                    {"AttributeName": "subject", "KeyType": "HASH"},
                    {"AttributeName": "periodStart", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    # When the tables are made again
    tables.create_tables(client, template, prefix="older-")
    # Then it has every index of the template, the visit numbers' term-index among them
    indexes = client.describe_table(TableName="older-Encounters")["Table"]["GlobalSecondaryIndexes"]
    assert {index["IndexName"] for index in indexes} == {
        "subject-index",
        "status-index",
        "date-index",
        "term-index",
    }
