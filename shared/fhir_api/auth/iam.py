"""IAM policy evaluation for API Gateway's ``execute-api:Invoke``: the one matcher the authorizer's
policy builder and the local gateway share.

Action and Resource patterns use IAM's wildcards: ``*`` is any run of characters (``/`` included) and
``?`` exactly one. Actions compare without regard to case, resources with it. An explicit Deny wins over
any Allow; with no matching Allow the answer is no.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

ACTION = "execute-api:Invoke"


def wildcard_match(pattern: str, value: str) -> bool:
    """Whether ``value`` matches the IAM pattern ``pattern`` (``*`` any run, ``?`` one character)."""
    return _pattern_regex(pattern).fullmatch(value) is not None


def is_allowed(policy_document: dict[str, Any], resource: str, action: str = ACTION) -> bool:
    """IAM's verdict on ``action`` on ``resource``: an explicit Deny wins, then an Allow, otherwise no."""
    allowed = False
    for statement in _as_list(policy_document.get("Statement")):
        if not isinstance(statement, dict) or not _statement_matches(statement, resource, action):
            continue
        effect = str(statement.get("Effect", "")).capitalize()
        if effect == "Deny":
            return False
        allowed = allowed or effect == "Allow"
    return allowed


def _statement_matches(statement: dict[str, Any], resource: str, action: str) -> bool:
    actions = [str(item).lower() for item in _as_list(statement.get("Action"))]
    if not any(wildcard_match(pattern, action.lower()) for pattern in actions):
        return False
    return any(wildcard_match(str(pattern), resource) for pattern in _as_list(statement.get("Resource")))


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(regex, flags=re.DOTALL)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
