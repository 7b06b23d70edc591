"""Change events as consumers see them: the JSON schema the project publishes, and an event as
EventBridge delivers it from the entry the change stream put."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENT_SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "docs" / "schemas" / "change-event.schema.json").read_text(
        encoding="utf-8"
    )
)


def as_delivered(entry: dict[str, Any]) -> dict[str, Any]:
    """The event a rule's target receives for a PutEvents entry: source, detail-type, parsed detail."""
    return {
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "detail": json.loads(entry["Detail"]),
    }
