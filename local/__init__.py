"""The local stack: DynamoDB Local, the tables of template.yaml, a token issuer and a gateway that
serves the API the way API Gateway does, all on a laptop without AWS or Docker.

Everything it keeps lives under ``.local/`` at the repository root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = ROOT / ".local"
TEMPLATE_PATH = ROOT / "template.yaml"
SHARED_DIR = ROOT / "shared"

# The account and region the local stack plays (ARNs, the functions' AWS_REGION).
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

# The gateway evaluates policies and matches routes with the Lambda layer's code (fhir_api), which
# Lambda puts on the path as /opt/python; here it is shared/.
if str(SHARED_DIR) not in sys.path:
    sys.path.insert(0, str(SHARED_DIR))


class LocalError(Exception):
    """A problem with the local tooling; its message is one line naming the problem and the fix."""


def local_secret(name: str, local_dir: Path | None = None) -> str:
    """A random secret kept in ``.local/<name>`` (created once, readable by its owner only)."""
    import secrets

    path = (local_dir or LOCAL_DIR) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text(encoding="utf-8").strip()
