"""template.yaml as plain Python data, for the local gateway, the local tables and the tests.

CloudFormation's short tags (``!Ref X``, ``!Sub "..."``, ``!GetAtt A.B``, ``!If [...]``) become the
long form CloudFormation itself uses (``{"Ref": "X"}``, ``{"Fn::Sub": "..."}``,
``{"Fn::GetAtt": ["A", "B"]}``, ``{"Fn::If": [...]}``), so readers handle one shape only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from local import TEMPLATE_PATH, LocalError


class _TemplateLoader(yaml.SafeLoader):
    """A safe YAML loader that also understands CloudFormation's short-form intrinsic tags."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            # !GetAtt Resource.Attribute.Sub -> ["Resource", "Attribute.Sub"], as CloudFormation reads it.
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        problem = f"unexpected node for !{tag_suffix}"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template (template.yaml at the repository root by default).

    Raises ``LocalError`` with a one-line message when the file is missing or is not a template.
    """
    template_path = Path(path) if path is not None else TEMPLATE_PATH
    try:
        text = template_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocalError(
            f"{template_path} not found; run from the repository root or pass the template's path"
        ) from None
    try:
        # _TemplateLoader is a SafeLoader: it builds plain data only, never Python objects.
        document = yaml.load(text, Loader=_TemplateLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise LocalError(f"{template_path} is not valid YAML{where} ({problem}); fix the file") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise LocalError(f"{template_path} has no Resources section; it is not a SAM template")
    return document
