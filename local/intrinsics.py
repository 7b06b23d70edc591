"""CloudFormation's intrinsic functions (Ref, GetAtt, Sub, Join, If, ...) resolved to the values they
take in the local stack: its region and account, its table names, the template's parameter defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from local import ACCOUNT_ID, REGION, tables


class Resolver:
    """Resolves CloudFormation intrinsics (Ref, GetAtt, Sub, Join, If, ...) to local values."""

    def __init__(self, template: dict[str, Any], table_prefix: str = "") -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.parameters: dict[str, Any] = template.get("Parameters") or {}
        self.conditions: dict[str, Any] = template.get("Conditions") or {}
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self.table_prefix = table_prefix

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": "encounter-api-local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.resolve((self.parameters[name] or {}).get("Default", ""))
        resource = self.resources.get(name) or {}
        if resource.get("Type") == tables.TABLE_TYPE:
            return tables.local_name(name, self.table_prefix)
        return name

    def get_att(self, name: str, attribute: str) -> str:
        resource = self.resources.get(name) or {}
        if resource.get("Type") == tables.TABLE_TYPE and attribute == "Arn":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.ref(name)}"
        if attribute == "Arn" and resource.get("Type", "").endswith("::Function"):
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        return f"{name}.{attribute}"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions.get(name, False)))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local value."""
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not None}


def _sub(resolver: Resolver, argument: Any) -> str:
    text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(resolver.resolve(variables[name]))
        if "." in name and not name.startswith("AWS::"):
            resource, attribute = name.split(".", 1)
            return resolver.get_att(resource, attribute)
        return str(resolver.ref(name))

    return re.sub(r"\$\{([^}]+)\}", replace, str(text))


def _get_att(resolver: Resolver, argument: Any) -> str:
    name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
    return resolver.get_att(str(name), str(resolver.resolve(attribute)))


def _if(resolver: Resolver, argument: Any) -> Any:
    name, when_true, when_false = argument
    return resolver.resolve(when_true if resolver.condition(name) else when_false)


def _select(resolver: Resolver, argument: Any) -> Any:
    index, items = argument
    return resolver.resolve(items)[int(resolver.resolve(index))]


def _find_in_map(resolver: Resolver, argument: Any) -> Any:
    name, first, second = (resolver.resolve(item) for item in argument)
    return resolver.mappings[name][first][second]


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda resolver, name: resolver.ref(str(name)),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": lambda r, arg: str(r.resolve(arg[0])).join(str(item) for item in r.resolve(arg[1])),
    "Fn::If": _if,
    "Fn::Select": _select,
    "Fn::FindInMap": _find_in_map,
    "Fn::Equals": lambda r, arg: str(r.resolve(arg[0])) == str(r.resolve(arg[1])),
    "Fn::Not": lambda r, arg: not r.resolve(arg[0] if isinstance(arg, list) else arg),
    "Fn::And": lambda r, arg: all(r.resolve(item) for item in arg),
    "Fn::Or": lambda r, arg: any(r.resolve(item) for item in arg),
    "Condition": lambda r, name: r.condition(str(name)),
}
