"""shared/Makefile, which `sam build` runs for the shared layer (BuildMethod: makefile): it stops with
one line naming the missing interpreter, and otherwise leaves fhir_api under python/ with bytecode
for every module. The requirements are replaced by an empty file so the test needs no network; a
real build downloads them for arm64 from PyPI (see the README's Deploy section)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
TARGET = "build-SharedLayer"
# The flags of a hash-based .pyc whose source is never checked (PEP 552).
UNCHECKED_HASH_FLAGS = 0b01

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _build(artifacts: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(SHARED), TARGET, f"ARTIFACTS_DIR={artifacts}", *variables],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_template_builds_the_layer_with_this_makefile(template: dict[str, object]) -> None:
    resources = template["Resources"]
    assert isinstance(resources, dict)
    (layer_id,) = [name for name, res in resources.items() if res["Type"] == "AWS::Serverless::LayerVersion"]
    assert resources[layer_id]["Metadata"]["BuildMethod"] == "makefile"
    assert f"{TARGET}:" in (SHARED / "Makefile").read_text(encoding="utf-8")
    assert TARGET == f"build-{layer_id}"


def test_a_missing_python_stops_the_build_with_one_line_naming_it(tmp_path: Path) -> None:
    # Given a machine without the runtime's Python
    missing = tmp_path / "python3.12"
    # When the layer is built
    result = _build(tmp_path / "artifacts", f"LAYER_PYTHON={missing}")
    # Then it stops before doing anything, with one line that names the interpreter and the way out
    assert result.returncode != 0
    (line,) = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert str(missing) in line and "sam build --use-container" in line and "Python 3.12" in line
    assert not (tmp_path / "artifacts").exists()


def test_the_layer_holds_fhir_api_with_unchecked_bytecode_for_every_module(tmp_path: Path) -> None:
    # Given no requirements (no download) and this interpreter in place of python3.12
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("", encoding="utf-8")
    artifacts = tmp_path / "artifacts"
    # When the layer is built
    result = _build(artifacts, f"LAYER_PYTHON={sys.executable}", f"REQUIREMENTS={requirements}")
    assert result.returncode == 0, result.stdout + result.stderr
    # Then every module of fhir_api is in python/ (where Lambda looks), each with its bytecode
    package = artifacts / "python" / "fhir_api"
    sources = sorted(path.relative_to(SHARED / "fhir_api") for path in (SHARED / "fhir_api").rglob("*.py"))
    assert sorted(path.relative_to(package) for path in package.rglob("*.py")) == sources
    tag = sys.implementation.cache_tag
    for source in sources:
        compiled = package / source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), compiled
        # And the bytecode is used as it is: file times lost in the zip cannot make it stale
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == UNCHECKED_HASH_FLAGS, compiled
