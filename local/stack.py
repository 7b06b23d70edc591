"""A whole local stack for tests: DynamoDB Local on a free port, the template's tables under a unique
prefix, and the gateway serving them on another free port, in this process.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from local import ROOT, LocalError, issuer, tables
from local.dynamodb import DynamoDBLocal, free_port
from local.gateway import Gateway
from local.lambda_runtime import release_environment
from local.server import GatewayServer, serve_in_thread

if TYPE_CHECKING:
    from local.notifications import LocalNotifications


def start_dynamodb(db_path: Path | None = None, attempts: int = 3) -> DynamoDBLocal:
    """DynamoDB Local on a free port (in memory unless ``db_path`` is given)."""
    for attempt in range(attempts):
        try:
            return DynamoDBLocal(free_port(), db_path=db_path).start()
        except LocalError as error:
            # Another process may take the port between choosing and binding it: try another one.
            if "in use" not in str(error) or attempt == attempts - 1:
                raise
    raise LocalError("no free port for DynamoDB Local; free some ports and retry")


def start_notifications(gateway: Gateway, dynamodb_endpoint: str) -> LocalNotifications:
    """The change stream consumer and the rest-hook deliverer over the gateway's tables and settings
    (imported once the gateway has put the shared layer on the path)."""
    gateway.activate()
    from fhir_api.settings import Settings
    from local.notifications import LocalNotifications

    return LocalNotifications(dynamodb_endpoint, Settings.from_environ(gateway.environment)).start()


class LocalStack:
    """Context manager: tables with a unique prefix on DynamoDB Local, and the gateway in a thread.

    Pass a running ``dynamodb`` to share one JVM across stacks (pytest's session fixture does);
    without one the stack starts and stops its own in-memory instance.
    """

    def __init__(
        self,
        dynamodb: DynamoDBLocal | None = None,
        *,
        template: dict[str, Any] | None = None,
        prefix: str | None = None,
        root: Path = ROOT,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.dynamodb = dynamodb
        self._owns_dynamodb = dynamodb is None
        self.template = template
        self.prefix = prefix if prefix is not None else f"t{uuid.uuid4().hex[:10]}-"
        self.root = root
        self.extra_env = extra_env or {}
        self.table_names: dict[str, str] = {}
        self.gateway: Gateway | None = None
        self.server: GatewayServer | None = None
        self.notifications: LocalNotifications | None = None
        self._saved_env: dict[str, str] = {}

    @property
    def port(self) -> int:
        """The gateway's port."""
        if self.server is None:
            raise LocalError("the local stack is not started; use it as a context manager")
        return self.server.port

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The FHIR base: http://127.0.0.1:<port>/api/fhir"""
        return f"{self.root_url}/api/fhir"

    @property
    def env(self) -> dict[str, str]:
        """The functions' environment (table names, endpoints, secrets)."""
        return dict(self.gateway.environment) if self.gateway is not None else {}

    def client(self) -> Any:
        """A boto3 DynamoDB client for the stack's DynamoDB Local."""
        if self.dynamodb is None:
            raise LocalError("the local stack is not started; use it as a context manager")
        return self.dynamodb.client()

    def token(
        self, role: str, sub: str = issuer.DEFAULT_SUB, ttl: int = issuer.DEFAULT_TTL, **overrides: Any
    ) -> str:
        """A bearer token from the local issuer (see ``local.issuer.mint``)."""
        return issuer.mint(role, sub, ttl, **overrides)

    def start(self) -> LocalStack:
        """Start DynamoDB Local (unless shared), create the tables and serve the gateway."""
        from local.template import load_template

        template = self.template if self.template is not None else load_template()
        self._saved_env = dict(os.environ)
        try:
            if self.dynamodb is None:
                self.dynamodb = start_dynamodb()
            self.table_names = tables.create_tables(self.dynamodb.client(), template, prefix=self.prefix)
            self.gateway = Gateway(
                template,
                root=self.root,
                port=0,
                dynamodb_endpoint=self.dynamodb.endpoint,
                table_prefix=self.prefix,
                extra_env=self.extra_env,
            )
            self.server, _ = serve_in_thread(self.gateway)
            self.gateway.activate()
            self.notifications = start_notifications(self.gateway, self.dynamodb.endpoint)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the gateway, drop the tables, stop DynamoDB Local if this stack started it."""
        if self.notifications is not None:
            self.notifications.stop()
            self.notifications = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.gateway is not None:
            self.gateway.close()
        if self.dynamodb is not None and self.table_names:
            if self.dynamodb.process is not None:
                tables.delete_tables(self.dynamodb.client(), self.table_names)
            self.table_names = {}
        if self._owns_dynamodb and self.dynamodb is not None:
            self.dynamodb.stop()
            self.dynamodb = None
        if self._saved_env:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = {}
        release_environment()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
