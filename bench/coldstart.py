"""Cold starts: a fresh Python process imports a function and answers its first event.

Each run is a new interpreter (``python -c``) with the function's environment (tables on DynamoDB
Local). The clock starts at the script's first statement, so it covers what Lambda's init and first
invoke cover for the code (imports, module-level work, the first answer with its DynamoDB calls) and
leaves out the interpreter's own start, which every Python function pays alike. The process's whole
wall time is kept beside it. One unmeasured run per function first writes the bytecode caches, as a
deployed layer would ship them. Runs go round-robin over the functions, so background noise spreads
over all of them; the figure is the median.
"""

from __future__ import annotations

import ast
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import ROOT

BARE = "bare boto3 function"
BARE_SOURCE = Path(__file__).resolve().parent / "bare_function.py"
READ_FUNCTIONS = ("encounter_read", "encounter_search", "encounter_vread", "metadata")
WRITE_FUNCTIONS = ("encounter_create", "encounter_update")

# The clock starts before any import of the function; the context is built from builtins only.
_SCRIPT = """\
import time
_started = time.perf_counter()
import importlib.util
import sys
_spec = importlib.util.spec_from_file_location("app", {source!r})
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_imported = time.perf_counter()
_answer = _module.handler({event!r}, _Context())
_answered = time.perf_counter()
with open(sys.argv[1], "w") as _out:
    _out.write(repr({{
        "import_ms": (_imported - _started) * 1000,
        "total_ms": (_answered - _started) * 1000,
        "status": _answer.get("statusCode"),
    }}))
"""

_CONTEXT = """\
class _Context:
    function_name = {name!r}
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + {name!r}
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self):
        return 15000
"""


@dataclass
class ColdStart:
    """The runs of one function."""

    function: str
    expected_status: int
    import_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    process_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        """Import plus first answer, median over the runs."""
        return statistics.median(self.total_ms)

    @property
    def median_import_ms(self) -> float:
        return statistics.median(self.import_ms)

    @property
    def median_first_answer_ms(self) -> float:
        return statistics.median(
            total - imported for total, imported in zip(self.total_ms, self.import_ms, strict=True)
        )

    @property
    def median_process_ms(self) -> float:
        return statistics.median(self.process_ms)


def _source(function: str) -> Path:
    return BARE_SOURCE if function == BARE else ROOT / "functions" / function / "app.py"


def _script(function: str, event: dict[str, Any]) -> str:
    return _CONTEXT.format(name=function) + _SCRIPT.format(source=str(_source(function)), event=event)


def _run_once(function: str, script: str, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("r", suffix=".txt", prefix="bench-cold-") as result:
        began = time.perf_counter()
        answer = subprocess.run(
            [sys.executable, "-c", script, result.name],
            env=env,
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
        ended = time.perf_counter()
        if answer.returncode != 0:
            detail = answer.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"cold start of {function} failed: {detail[0]}")
        figures: dict[str, Any] = ast.literal_eval(result.read())
    figures["process_ms"] = (ended - began) * 1000
    return figures


def function_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a function process: the functions' variables, the layer on the path."""
    child = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    child.update(env)
    # In Lambda the layer is /opt/python; here it is shared/. Nothing else of the repository is visible.
    child["PYTHONPATH"] = str(ROOT / "shared")
    return child


def measure(
    events: dict[str, tuple[dict[str, Any], int]], env: dict[str, str], runs: int = 5
) -> dict[str, ColdStart]:
    """Cold-start ``runs`` times each function of ``events`` (name -> (first event, expected status))."""
    child_env = function_env(env)
    scripts = {function: _script(function, event) for function, (event, _) in events.items()}
    results = {function: ColdStart(function, status) for function, (_, status) in events.items()}
    for function, script in scripts.items():
        _run_once(function, script, child_env)  # writes the bytecode caches; not measured
    for _ in range(runs):
        for function, script in scripts.items():
            figures = _run_once(function, script, child_env)
            result = results[function]
            if figures["status"] != result.expected_status:
                raise RuntimeError(
                    f"{function} answered {figures['status']} at cold start, "
                    f"expected {result.expected_status}"
                )
            result.import_ms.append(figures["import_ms"])
            result.total_ms.append(figures["total_ms"])
            result.process_ms.append(figures["process_ms"])
    return results


def slowest(results: dict[str, ColdStart], functions: tuple[str, ...]) -> ColdStart:
    """The function of ``functions`` with the longest median cold start."""
    return max((results[name] for name in functions), key=lambda result: result.median_ms)


def summary(results: dict[str, ColdStart]) -> dict[str, Any]:
    """The figures of every function, for the JSON-free part of the report."""
    return {
        name: {
            "import_ms": round(result.median_import_ms, 1),
            "first_answer_ms": round(result.median_first_answer_ms, 1),
            "total_ms": round(result.median_ms, 1),
            "process_ms": round(result.median_process_ms, 1),
        }
        for name, result in results.items()
    }
