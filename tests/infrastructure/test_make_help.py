"""`make help` lists every target of the Makefile, one line each."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target_once() -> None:
    # Given the targets the Makefile declares
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert phony is not None
    targets = phony.group(1).split()
    # When make help runs (also what a bare `make` does)
    result = subprocess.run(["make", "-s", "-C", str(ROOT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Then each target has exactly one line with a description
    lines = result.stdout.splitlines()
    for target in targets:
        described = [line for line in lines if re.match(rf"\s*make {re.escape(target)}\s+\S", line)]
        assert len(described) == 1, f"make help: {target} needs one line (a `{target}: ## text` line)"
    assert len(lines) == len(targets)
