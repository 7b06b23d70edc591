"""The functions' AWS clients: one retry and timeout policy, made by botocore without boto3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fhir_api import aws_clients

SHARED = Path(__file__).resolve().parents[2] / "shared"


def test_every_client_tries_three_times_with_short_timeouts() -> None:
    # Given clients of the services the functions call
    for service in ("dynamodb", "secretsmanager", "events", "sqs"):
        client = aws_clients.client(service, "eu-west-1")

        # Then each is that service's client in that region, with the one policy
        config = client.meta.config
        assert client.meta.service_model.service_name == service
        assert client.meta.region_name == "eu-west-1"
        assert config.retries == {"total_max_attempts": 3, "mode": "standard"}
        assert (config.connect_timeout, config.read_timeout) == (2, 5)


def test_a_client_goes_to_the_endpoint_it_is_given() -> None:
    client = aws_clients.client("dynamodb", "us-east-1", endpoint_url="http://127.0.0.1:8000", pool_size=32)

    assert client.meta.endpoint_url == "http://127.0.0.1:8000"
    assert client.meta.config.max_pool_connections == 32


def test_a_function_makes_its_dynamodb_client_without_importing_boto3() -> None:
    # Given a fresh process that loads a read function and makes the store's client, as a cold start does
    probe = (
        "import sys\n"
        "from fhir_api.api.handler import make_handler\n"
        "from fhir_api.settings import get_settings\n"
        "from fhir_api.store.dynamo import dynamodb_client\n"
        "make_handler('encounter_read')\n"
        "dynamodb_client(get_settings()).meta.service_model\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    environment = {**os.environ, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=SHARED,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = result.stdout.split()

    # Then botocore made it, and neither boto3 nor its S3 transfer manager was imported
    assert "botocore.client" in loaded
    assert [module for module in loaded if module.split(".")[0] in ("boto3", "s3transfer")] == []
