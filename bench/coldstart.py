"""Cold starts: a fresh Python process imports a function and answers its first event.

Each run is a new interpreter (``python -c``) with the function's environment (tables on DynamoDB
Local). The clock starts at the script's first statement, so it covers what Lambda's init and first
invoke cover for the code (imports, module-level work, the first answer with its DynamoDB calls) and
leaves out the interpreter's own start, which every Python function pays alike. The process's whole
wall time is kept beside it.

Every function starts in three set-ups (``VARIANTS``):

- with .pyc: the layer ships bytecode for the runtime's Python; one unmeasured run per function
  writes the caches first.
- without .pyc: the layer ships sources only, so every cold start compiles the function and the
  layer. The runtime's own code (the standard library and boto3, which the Lambda runtime provides)
  keeps its bytecode: it comes from a cache directory (``PYTHONPYCACHEPREFIX``) holding only that,
  read and never written (``PYTHONDONTWRITEBYTECODE``); each run checks that nothing of the layer or
  the function had bytecode.
- traced: with .pyc, and Powertools Tracer on as in a deployment with tracing enabled (its X-Ray
  SDK loaded, segments sent over UDP to an address where nothing listens); each run checks that the
  SDK was loaded, and the other set-ups that it was not.

The bare boto3 function, the baseline, imports only the runtime's code, so it is the same in every
set-up and runs once per round. Runs go round after round, each round every function in every
set-up in a shuffled order, so background load spreads over all of them. A ratio divides minima (the
run least disturbed by other load); the medians' ratio is kept beside it.
"""

from __future__ import annotations

import ast
import logging
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import ROOT

BARE = "bare boto3 function"
BARE_SOURCE = Path(__file__).resolve().parent / "bare_function.py"
READ_FUNCTIONS = ("encounter_read", "encounter_search", "encounter_vread", "metadata")
WRITE_FUNCTIONS = ("encounter_create", "encounter_update")

WITH_PYC = "with .pyc"
NO_PYC = "without .pyc"
TRACED = "traced"
VARIANTS = (WITH_PYC, NO_PYC, TRACED)

# What the Lambda service sets for a sampled invocation; the SDK reads it as the parent segment.
SAMPLE_TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
# UDP where nothing listens: each of the SDK's sends costs one sendto, as in Lambda, and goes nowhere.
XRAY_DAEMON_ADDRESS = "127.0.0.1:2000"

_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep

logger = logging.getLogger("bench")

# The clock starts before any import of the function; the context is built from builtins only. What
# the process imported, and whether each source had bytecode, is collected after the clock stops.
_SCRIPT = """\
import time
_started = time.perf_counter()
import importlib.util
import os
import sys
_spec = importlib.util.spec_from_file_location("app", {source!r})
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_imported = time.perf_counter()
_answer = _module.handler({event!r}, _Context())
_answered = time.perf_counter()
import importlib.machinery
_sources = []
for _loaded in list(sys.modules.values()) + [_module]:
    # Only what a SourceFileLoader loaded can use bytecode (frozen and built-in modules never do).
    _spec = getattr(_loaded, "__spec__", None)
    if isinstance(getattr(_spec, "loader", None), importlib.machinery.SourceFileLoader):
        _cached = importlib.util.cache_from_source(_spec.origin)
        _sources.append((_spec.origin, _cached, os.path.exists(_cached)))
with open(sys.argv[1], "w") as _out:
    _out.write(repr({{
        "import_ms": (_imported - _started) * 1000,
        "total_ms": (_answered - _started) * 1000,
        "status": _answer.get("statusCode"),
        "xray": "aws_xray_sdk" in sys.modules,
        "sources": _sources,
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
    """The runs of one function in one set-up."""

    function: str
    expected_status: int
    variant: str = WITH_PYC
    import_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    process_ms: list[float] = field(default_factory=list)
    compiled: list[int] = field(default_factory=list)  # imported sources that had no bytecode

    @property
    def min_ms(self) -> float:
        """Import plus first answer, the fastest run."""
        return min(self.total_ms)

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

    @property
    def compiled_modules(self) -> int:
        """Sources compiled at each start (the most of any run)."""
        return max(self.compiled, default=0)


@dataclass(frozen=True)
class Ratio:
    """The slowest of some functions (by its fastest run) against the bare function."""

    function: str
    by_min: float  # the figure: fastest run over fastest run
    by_median: float  # the same function's median over the bare function's median
    slowest: ColdStart
    bare: ColdStart


def ratio(results: dict[str, ColdStart], functions: Iterable[str], bare: ColdStart) -> Ratio:
    """Pick the function of ``functions`` whose fastest cold start is slowest; divide it by ``bare``."""
    slowest = max((results[name] for name in functions), key=lambda result: result.min_ms)
    return Ratio(
        slowest.function,
        slowest.min_ms / bare.min_ms,
        slowest.median_ms / bare.median_ms,
        slowest,
        bare,
    )


@dataclass
class ColdStarts:
    """Every function in every set-up, and the baseline."""

    runs: int
    bare: ColdStart
    by_variant: dict[str, dict[str, ColdStart]]

    def ratio(self, variant: str, functions: Iterable[str]) -> Ratio:
        """The slowest of ``functions`` in ``variant`` against the bare function."""
        return ratio(self.by_variant[variant], functions, self.bare)


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


def variant_env(variant: str, env: dict[str, str], runtime_bytecode: Path) -> dict[str, str]:
    """The environment of one set-up, from a function's environment (``function_env``)."""
    child = dict(env)
    child["POWERTOOLS_TRACE_DISABLED"] = "true"
    if variant == NO_PYC:
        child["PYTHONPYCACHEPREFIX"] = str(runtime_bytecode)
        child["PYTHONDONTWRITEBYTECODE"] = "1"
    elif variant == TRACED:
        # Tracer turns itself off outside Lambda (no LAMBDA_TASK_ROOT, or SAM's or Chalice's emulator).
        child["POWERTOOLS_TRACE_DISABLED"] = "false"
        child["LAMBDA_TASK_ROOT"] = str(ROOT / "functions")
        child["_X_AMZN_TRACE_ID"] = SAMPLE_TRACE_HEADER
        child["AWS_XRAY_DAEMON_ADDRESS"] = XRAY_DAEMON_ADDRESS
        child.pop("AWS_SAM_LOCAL", None)
        child.pop("AWS_CHALICE_CLI_MODE", None)
    return child


def _runtime_sources(bare_figures: dict[str, Any]) -> set[str]:
    """The sources the runtime provides besides the standard library: what the bare function imports."""
    return {source for source, _, _ in bare_figures["sources"]}


def _in_stdlib(source: str) -> bool:
    return os.path.abspath(source).startswith(_STDLIB)


def _keep_runtime_bytecode(directory: Path, runtime: set[str], warm_runs: list[dict[str, Any]]) -> None:
    """Delete from ``directory`` the bytecode of everything the runtime does not provide."""
    keep = {
        cached
        for figures in warm_runs
        for source, cached, _ in figures["sources"]
        if source in runtime or _in_stdlib(source)
    }
    for cached in directory.rglob("*.pyc"):
        if str(cached) not in keep:
            cached.unlink()


def _check(variant: str, result: ColdStart, figures: dict[str, Any], runtime: set[str]) -> None:
    if figures["status"] != result.expected_status:
        raise RuntimeError(
            f"{result.function} ({variant}) answered {figures['status']} at cold start, "
            f"expected {result.expected_status}"
        )
    if figures["xray"] != (variant == TRACED):
        state = "loaded" if figures["xray"] else "did not load"
        raise RuntimeError(f"{result.function} ({variant}) {state} the X-Ray SDK")
    if variant == NO_PYC and result.function != BARE:
        cached = [
            source
            for source, _, has_bytecode in figures["sources"]
            if has_bytecode and source not in runtime and not _in_stdlib(source)
        ]
        if cached:
            raise RuntimeError(f"{result.function} ({variant}) found bytecode of {cached[0]}")


def measure(
    events: dict[str, tuple[dict[str, Any], int]],
    env: dict[str, str],
    runs: int = 9,
    seed: int = 11,
) -> ColdStarts:
    """Cold-start ``runs`` times each function of ``events`` (name -> (first event, expected status))
    in every set-up of ``VARIANTS``; ``events`` holds the bare function (``BARE``) too."""
    base_env = function_env(env)
    scripts = {function: _script(function, event) for function, (event, _) in events.items()}
    functions = [function for function in events if function != BARE]
    by_variant = {
        variant: {
            function: ColdStart(function, events[function][1], variant)
            for function in (functions if variant != WITH_PYC else [BARE, *functions])
        }
        for variant in VARIANTS
    }
    with tempfile.TemporaryDirectory(prefix="bench-runtime-bytecode-") as directory:
        runtime_bytecode = Path(directory)
        envs = {variant: variant_env(variant, base_env, runtime_bytecode) for variant in VARIANTS}
        # Unmeasured: the caches next to the sources (with .pyc), then the runtime's bytecode only.
        for function, script in scripts.items():
            _run_once(function, script, envs[WITH_PYC])
        writing = dict(envs[NO_PYC])
        del writing["PYTHONDONTWRITEBYTECODE"]
        warm_runs = {function: _run_once(function, script, writing) for function, script in scripts.items()}
        runtime = _runtime_sources(warm_runs[BARE])
        _keep_runtime_bytecode(runtime_bytecode, runtime, list(warm_runs.values()))
        for function in functions:
            _run_once(function, scripts[function], envs[TRACED])

        order = [(variant, function) for variant, results in by_variant.items() for function in results]
        shuffler = random.Random(seed)
        for round_number in range(1, runs + 1):
            logger.info("cold starts: round %d of %d (%d processes)", round_number, runs, len(order))
            shuffler.shuffle(order)
            for variant, function in order:
                figures = _run_once(function, scripts[function], envs[variant])
                result = by_variant[variant][function]
                _check(variant, result, figures, runtime)
                result.import_ms.append(figures["import_ms"])
                result.total_ms.append(figures["total_ms"])
                result.process_ms.append(figures["process_ms"])
                result.compiled.append(sum(1 for *_, has_bytecode in figures["sources"] if not has_bytecode))
    return ColdStarts(runs, by_variant[WITH_PYC][BARE], by_variant)


def creates_per_measure(runs: int) -> int:
    """How many encounters ``measure`` creates (the create function's runs, unmeasured ones included)."""
    return len(VARIANTS) * (runs + 1)
