"""The code stays readable: no function of the shared layer or the local stack above radon's grade C
(cyclomatic complexity 20), and no module above 600 lines."""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("shared", "local")
MAX_COMPLEXITY = 20  # the top of radon's grade C
MAX_MODULE_LINES = 600


def modules() -> list[Path]:
    """Every Python module under the checked folders."""
    return sorted(
        path
        for folder in CHECKED
        for path in (ROOT / folder).rglob("*.py")
        if not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(ROOT).parts)
    )


def too_complex(source: str, name: str) -> list[str]:
    """The functions, methods and classes of ``source`` above MAX_COMPLEXITY, as ``name:line what (n)``."""
    return [
        f"{name}:{block.lineno} {block.fullname} ({block.complexity}, grade {cc_rank(block.complexity)})"
        for block in cc_visit(source)
        if block.complexity > MAX_COMPLEXITY
    ]


def test_the_limit_is_the_top_of_grade_c() -> None:
    assert cc_rank(MAX_COMPLEXITY) == "C"
    assert cc_rank(MAX_COMPLEXITY + 1) == "D"


def test_the_complexity_check_finds_a_function_of_grade_d() -> None:
    # Given a function of complexity 21 and one of 20
    def branches(count: int) -> str:
        return "".join(f"    if x == {n}:\n        return {n}\n" for n in range(count)) + "    return x\n"

    source = f"def tangled(x):\n{branches(20)}\ndef fine(x):\n{branches(19)}"

    # Then only the first is too complex
    assert too_complex(source, "example.py") == ["example.py:1 tangled (21, grade D)"]


def test_the_checked_folders_hold_the_code() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in modules()}
    assert "shared/fhir_api/search/engine.py" in names
    assert "local/gateway.py" in names


def test_no_function_is_above_grade_c() -> None:
    offenders = [
        offender
        for path in modules()
        for offender in too_complex(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    ]
    assert offenders == [], "split these (radon cc -s -n D shared local):\n" + "\n".join(offenders)


def test_no_module_is_longer_than_600_lines() -> None:
    offenders = [
        f"{path.relative_to(ROOT).as_posix()} ({lines} lines)"
        for path in modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert offenders == [], "split these modules:\n" + "\n".join(offenders)
