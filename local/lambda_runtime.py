"""What Lambda gives a function, played in this process: the context object, the handler imported from
its file, and the function environment in ``os.environ``.

Every Lambda is its own process in AWS; here the functions share this one, so the process environment
is the union of their variables (they do not conflict), and one gateway's variables at a time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from local import ACCOUNT_ID, REGION, LocalError
from local.api_model import FunctionSpec

LambdaHandler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """The context object a Lambda handler receives (what Powertools and the handlers read from it)."""

    def __init__(
        self,
        function_name: str,
        request_id: str = "00000000-0000-4000-8000-000000000000",
        timeout_seconds: float = 30.0,
        memory_limit_in_mb: int = 512,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# Handlers share this process, so the process environment holds one owner's variables at a time.
_ENV_LOCK = threading.RLock()
_ENV_OWNER: list[object] = [None]

# The shared layer's caches of what it read from the environment (settings, boto3 clients).
_RESET_HOOKS = (
    ("fhir_api.settings", "reset_settings"),
    ("fhir_api.store.dynamo", "reset_client"),
    ("fhir_api.store.idempotency", "reset"),
)


def _reset_settings() -> None:
    for module_name, hook in _RESET_HOOKS:
        reset = getattr(sys.modules.get(module_name), hook, None)
        if callable(reset):
            reset()


def release_environment() -> None:
    """Forget which gateway's environment the process holds (after the caller restored its own)."""
    with _ENV_LOCK:
        _ENV_OWNER[0] = None
    _reset_settings()


class FunctionRuntime:
    """The functions of one template in this process: their environment and their handlers."""

    def __init__(
        self, functions: dict[str, FunctionSpec], environment: dict[str, str], layer_dir: Path
    ) -> None:
        self.functions = functions
        self.environment = environment
        self.layer_dir = layer_dir
        self.modules: dict[str, ModuleType] = {}
        self._module_lock = threading.Lock()

    def set_variable(self, name: str, value: str) -> None:
        """Change one variable; the process takes it before the next handler runs."""
        self.environment[name] = value
        with _ENV_LOCK:
            if _ENV_OWNER[0] is self:
                _ENV_OWNER[0] = None

    @contextlib.contextmanager
    def _env(self) -> Iterator[None]:
        with _ENV_LOCK:
            if _ENV_OWNER[0] is not self:
                os.environ.update(self.environment)
                _reset_settings()
                _ENV_OWNER[0] = self
        yield

    def activate(self) -> None:
        """Put these functions' environment into the process (before a handler runs)."""
        with self._env():
            pass

    def handler(self, logical_id: str) -> LambdaHandler:
        """The function's handler, its module imported by file path on first use."""
        spec = self.functions.get(logical_id)
        if spec is None:
            raise LocalError(
                f"template.yaml has no function {logical_id}; define it as AWS::Serverless::Function"
            )
        with self._module_lock:
            module = self.modules.get(logical_id)
            if module is None:
                module = self._import(spec)
                self.modules[logical_id] = module
        handler = getattr(module, spec.handler_name, None)
        if not callable(handler):
            raise LocalError(
                f"{spec.source} has no callable {spec.handler_name}; check the Handler of {logical_id}"
            )
        return handler

    def _import(self, spec: FunctionSpec) -> ModuleType:
        if str(self.layer_dir) not in sys.path:
            sys.path.insert(0, str(self.layer_dir))
        self.activate()
        name = f"_local_function_{spec.logical_id}_{id(self):x}"
        module_spec = importlib.util.spec_from_file_location(name, spec.source)
        if module_spec is None or module_spec.loader is None or not spec.source.is_file():
            raise LocalError(f"{spec.source} not found for {spec.logical_id}; check its CodeUri and Handler")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module

    def invoke(self, logical_id: str, event: dict[str, Any], request_id: str) -> Any:
        """Call a function's handler as Lambda would."""
        handler = self.handler(logical_id)
        self.activate()
        return handler(event, LambdaContext(logical_id, request_id))
