"""HTTP fixtures: the local gateway serving template.yaml's functions over the session's DynamoDB
Local, one table set and one gateway per test module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from fhirclient import client as smart_client
from fhirpy import SyncFHIRClient

from local.dynamodb import DynamoDBLocal
from local.stack import LocalStack
from tests.http.route_calls import create_records

REQUEST_TIMEOUT_SECONDS = 30


class ApiSession(requests.Session):
    """A requests session whose relative URLs are under the stack's FHIR base, with a timeout."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        if not text.startswith(("http://", "https://")):
            text = f"{self.base_url}/{text.lstrip('/')}"
        kwargs.setdefault("timeout", REQUEST_TIMEOUT_SECONDS)
        return super().request(method, text, *args, **kwargs)


@pytest.fixture(scope="module")
def local_stack(dynamodb_local: DynamoDBLocal, template: dict[str, Any]) -> Iterator[LocalStack]:
    """The gateway in a thread with a fresh table set (dropped when the module's tests end)."""
    with LocalStack(dynamodb_local, template=template) as stack:
        yield stack


@pytest.fixture
def api(local_stack: LocalStack) -> Iterator[ApiSession]:
    """A session against the local API: ``api.get("Encounter", headers=...)``."""
    if local_stack.gateway is not None:
        local_stack.gateway.activate()  # another module's stack may have held the environment
    with ApiSession(local_stack.base_url) as session:
        yield session


@pytest.fixture
def auth(token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """Factory of Authorization headers: ``auth("practitioner")``."""

    def make(role: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(role, **kwargs)}"}

    return make


@pytest.fixture(scope="module")
def records(local_stack: LocalStack) -> dict[str, str]:
    """A patient and an encounter made by an admin, for the routes that need ids."""
    return create_records(local_stack)


@pytest.fixture
def fhirpy_client(local_stack: LocalStack, token: Callable[..., str]) -> Callable[[str], SyncFHIRClient]:
    """Factory of fhirpy clients for the local API, one bearer token per role."""
    if local_stack.gateway is not None:
        local_stack.gateway.activate()

    def make(role: str) -> SyncFHIRClient:
        return SyncFHIRClient(
            local_stack.base_url,
            authorization=f"Bearer {token(role)}",
            requests_config={"timeout": REQUEST_TIMEOUT_SECONDS},
        )

    return make


@pytest.fixture
def smart(local_stack: LocalStack, token: Callable[..., str]) -> Callable[[str], smart_client.FHIRClient]:
    """Factory of fhirclient clients holding a bearer token (an OAuth2 state with an access token)."""
    if local_stack.gateway is not None:
        local_stack.gateway.activate()

    def make(role: str) -> smart_client.FHIRClient:
        state = {
            "app_id": "encounter-api-tests",
            # A base restored from state is joined with relative paths as is: it needs its trailing slash.
            "server": {
                "base_uri": f"{local_stack.base_url}/",
                "auth_type": "oauth2",
                "auth": {"access_token": token(role)},
            },
        }
        return smart_client.FHIRClient(state=state)

    return make
