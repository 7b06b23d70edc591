"""The TOKEN authorizer as API Gateway runs it: called with the request's methodArn, its answer checked
and cached per token for the authorizer's ReauthorizeEvery seconds (0 turns the cache off).

The cached answer is evaluated again for every later request with that token, which is why the
authorizer's policy must be right for any route, not only the one that first called it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from local import ACCOUNT_ID, REGION
from local.api_model import Authorizer

UNAUTHORIZED_MESSAGE = "Unauthorized"

# Calls a function by logical id with an event and a request id, and returns its answer.
Invoke = Callable[[str, dict[str, Any], str], Any]


class Unauthorized(Exception):
    """The authorizer refused the token (it raised Exception("Unauthorized"))."""


class AuthorizerFailure(Exception):
    """The authorizer raised something else (API Gateway answers 500)."""


class InvalidPolicy(Exception):
    """The authorizer answered something that is not a principal and an IAM policy (500)."""


def method_arn(api_id: str, stage: str, method: str, path: str) -> str:
    """The ARN API Gateway hands a TOKEN authorizer: the request's method and actual path."""
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/{stage}/{method}/{path.lstrip('/')}"


class AuthorizerCache:
    """Authorizer answers by (authorizer, token), each kept until its TTL runs out."""

    def __init__(self, invoke: Invoke, clock: Callable[[], float] = time.monotonic) -> None:
        self._invoke = invoke
        self.clock = clock
        self._answers: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def authorize(self, authorizer: Authorizer, token: str, arn: str, request_id: str) -> dict[str, Any]:
        """The authorizer's answer for ``token``, from the cache while it is fresh.

        Raises Unauthorized when the authorizer refuses the token, AuthorizerFailure when it fails and
        InvalidPolicy when its answer is not a principal with an IAM policy."""
        key = (authorizer.name, token)
        now = self.clock()
        if authorizer.ttl > 0:
            with self._lock:
                cached = self._answers.get(key)
                if cached is not None and cached[0] > now:
                    return cached[1]
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}
        self.calls += 1
        try:
            result = self._invoke(authorizer.function, event, request_id)
        except Exception as error:
            if str(error) == UNAUTHORIZED_MESSAGE:
                raise Unauthorized from error
            raise AuthorizerFailure(type(error).__name__) from error
        check_authorizer_result(result)
        if authorizer.ttl > 0:
            with self._lock:
                self._answers[key] = (now + authorizer.ttl, result)
        return result

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._answers.clear()


def check_authorizer_result(result: Any) -> None:
    """InvalidPolicy unless ``result`` is a principal with an IAM policy and a flat context."""
    if not isinstance(result, dict):
        raise InvalidPolicy("the authorizer answered no object")
    if not result.get("principalId"):
        raise InvalidPolicy("the authorizer answer has no principalId")
    policy = result.get("policyDocument")
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if not statements:
        raise InvalidPolicy("the authorizer answer has no policyDocument with statements")
    context = result.get("context") or {}
    if not isinstance(context, dict) or any(isinstance(value, dict | list) for value in context.values()):
        raise InvalidPolicy("the authorizer context must map names to strings, numbers or booleans")
