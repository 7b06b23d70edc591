"""JSON Patch (RFC 6902, with RFC 6901 pointers) and JSON Merge Patch (RFC 7386) on FHIR JSON.

The document is what ``fhirjson.loads`` made of a stored resource (decimals are ``Number`` and keep
their digits); values the patch brings come from the same parser, so they keep theirs too. The
document is never changed: each function returns a new one.

A patch that is not a patch (not a list of operations, an unknown ``op``, a member missing, a pointer
that is not one) is ``InvalidRequest`` (400). A patch that is well-formed but cannot be applied to
this document (a ``test`` that fails, a path that is not there, an index out of range) is
``UnprocessablePatch`` (422): the client's patch was written against another version of the resource.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from fhir_api.errors import InvalidRequest, UnprocessablePatch

OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")
# A patch larger than this is not an edit of one resource; it is refused before any work.
MAX_OPERATIONS = 1000
# The most JSON values copy operations may duplicate in one patch: each copy may double the document,
# so without a bound a few dozen operations would exhaust the function's memory. No resource this
# server stores holds this many values.
MAX_COPIED_VALUES = 100_000


def apply_json_patch(document: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``document`` with the RFC 6902 ``patch`` applied, all operations or none."""
    if not isinstance(patch, list):
        raise InvalidRequest("A JSON Patch document is a JSON array of operations.")
    if len(patch) > MAX_OPERATIONS:
        raise InvalidRequest(f"The patch has {len(patch)} operations; at most {MAX_OPERATIONS} are accepted.")
    operations = [_operation(index, item) for index, item in enumerate(patch)]
    result: Any = copy.deepcopy(document)
    copied = 0
    for index, (op, path, argument) in enumerate(operations):
        if op == "copy":
            copied += _values(_get(result, argument, index), MAX_COPIED_VALUES - copied + 1)
            if copied > MAX_COPIED_VALUES:
                raise UnprocessablePatch(
                    f"The patch copies more than {MAX_COPIED_VALUES} values; no resource here is that large."
                )
        result = _apply(result, index, op, path, argument)
    if not isinstance(result, dict):
        raise UnprocessablePatch("The patch replaces the whole resource with something that is not one.")
    return result


def apply_merge_patch(document: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``document`` with the RFC 7386 ``patch`` (a partial resource; ``null`` removes) merged in."""
    if not isinstance(patch, dict):
        raise InvalidRequest("A JSON Merge Patch document is a JSON object.")
    merged = _merge(document, patch)
    assert isinstance(merged, dict)
    return merged


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = _merge(result.get(name), value)
    return result


# -- RFC 6902 ------------------------------------------------------------------------------------


def _operation(index: int, item: Any) -> tuple[str, list[str], Any]:
    """(op, parsed path, its value or parsed ``from``) of one operation, checked for form only."""
    if not isinstance(item, dict):
        raise InvalidRequest(f"Patch operation {index} is not a JSON object.")
    op = item.get("op")
    if op not in OPERATIONS:
        raise InvalidRequest(
            f"Patch operation {index}: op must be one of {', '.join(OPERATIONS)} (got {op!r})."
        )
    path = _pointer(index, item.get("path"), "path")
    if op in ("add", "replace", "test"):
        if "value" not in item:
            raise InvalidRequest(f"Patch operation {index} ({op}) needs a value.")
        return op, path, item["value"]
    if op in ("move", "copy"):
        source = _pointer(index, item.get("from"), "from")
        if op == "move" and path[: len(source)] == source and len(path) > len(source):
            raise InvalidRequest(f"Patch operation {index} moves a location into one of its own children.")
        return op, path, source
    return op, path, None


def _pointer(index: int, text: Any, member: str) -> list[str]:
    """The reference tokens of an RFC 6901 JSON Pointer (``~1`` is ``/``, ``~0`` is ``~``)."""
    if not isinstance(text, str):
        raise InvalidRequest(f"Patch operation {index} needs {member} as a JSON Pointer string.")
    if text == "":
        return []
    if not text.startswith("/"):
        raise InvalidRequest(f"Patch operation {index}: {member} {text!r} must start with '/'.")
    tokens = text[1:].split("/")
    for token in tokens:
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise InvalidRequest(
                f"Patch operation {index}: {member} {text!r} has a '~' not followed by 0 or 1."
            )
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _apply(document: Any, index: int, op: str, path: list[str], argument: Any) -> Any:
    if op == "test":
        if not _equal(_get(document, path, index), argument):
            raise UnprocessablePatch(
                f"Patch operation {index} (test at {_show(path)}) failed: the value differs."
            )
        return document
    if op == "add":
        return _add(document, path, copy.deepcopy(argument), index)
    if op == "remove":
        return _remove(document, path, index)
    if op == "replace":
        if not path:
            return copy.deepcopy(argument)
        return _add(_remove(document, path, index), path, copy.deepcopy(argument), index)
    value = copy.deepcopy(_get(document, argument, index))
    if op == "move":
        document = _remove(document, argument, index)
    return _add(document, path, value, index)


def _get(document: Any, path: list[str], index: int) -> Any:
    node = document
    for depth, token in enumerate(path):
        node = _child(node, token, path[: depth + 1], index)
    return node


def _child(node: Any, token: str, where: list[str], index: int) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise UnprocessablePatch(f"Patch operation {index}: {_show(where)} does not exist.")
        return node[token]
    if isinstance(node, list):
        return node[_array_index(node, token, where, index, appending=False)]
    raise UnprocessablePatch(f"Patch operation {index}: {_show(where)} does not exist.")


def _array_index(array: list[Any], token: str, where: list[str], index: int, appending: bool) -> int:
    """An array index token: digits without leading zeros, or ``-`` (past the end) when adding."""
    if token == "-" and appending:
        return len(array)
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise UnprocessablePatch(f"Patch operation {index}: {_show(where)} is not an index of the array.")
    position = int(token)
    if position > len(array) or (position == len(array) and not appending):
        raise UnprocessablePatch(f"Patch operation {index}: {_show(where)} is past the end of the array.")
    return position


def _add(document: Any, path: list[str], value: Any, index: int) -> Any:
    if not path:
        return value
    parent = _get(document, path[:-1], index)
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(parent, token, path, index, appending=True), value)
    else:
        raise UnprocessablePatch(f"Patch operation {index}: {_show(path[:-1])} cannot hold {token!r}.")
    return document


def _remove(document: Any, path: list[str], index: int) -> Any:
    if not path:
        raise UnprocessablePatch(f"Patch operation {index} removes the whole resource.")
    parent = _get(document, path[:-1], index)
    token = path[-1]
    _child(parent, token, path, index)
    if isinstance(parent, dict):
        del parent[token]
    else:
        del parent[int(token)]
    return document


def _equal(left: Any, right: Any) -> bool:
    """RFC 6902 equality: numbers by value, objects by members, arrays in order, no bool-number mix."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    return type(left) is type(right) and not isinstance(left, (dict, list)) and bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal))


def _values(value: Any, limit: int) -> int:
    """How many JSON values ``value`` holds (itself included), counting no further than ``limit``."""
    count, pending = 0, [value]
    while pending and count < limit:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def _show(path: list[str]) -> str:
    return (
        "/" + "/".join(token.replace("~", "~0").replace("/", "~1") for token in path) if path else "the root"
    )
