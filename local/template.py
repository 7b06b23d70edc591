"""template.yaml as plain Python data, for the local gateway, the local tables and the tests.

cfn-lint's decoder reads the template the way CloudFormation does: the short tags (``!Ref X``,
``!Sub "..."``, ``!GetAtt A.B``, ``!If [...]``) become the long form (``{"Ref": "X"}``,
``{"Fn::Sub": "..."}``, ``{"Fn::GetAtt": ["A", "B"]}``, ``{"Fn::If": [...]}``), so readers handle one
shape only, and a JSON template is read as well as a YAML one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

from local import TEMPLATE_PATH, LocalError


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
    document, problems = decode_str(text)
    if problems:
        first = problems[0]
        where = f" at line {first.linenumber}" if first.linenumber else ""
        message = " ".join(str(first.message).split())
        raise LocalError(f"{template_path} is not valid YAML{where} ({message}); fix the file")
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise LocalError(f"{template_path} has no Resources section; it is not a SAM template")
    # The decoder's nodes carry line marks; readers get plain dicts, lists and strings.
    plain: dict[str, Any] = json.loads(json.dumps(document, default=str))
    return plain
