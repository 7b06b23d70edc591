"""The printed report: the figures with their goals, then the detail behind each."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.capacity import Capacity
from bench.coldstart import ColdStarts
from bench.hostile import HostileRun
from bench.load import GATEWAY_LOG, LoadResult
from bench.overhead import Overhead
from bench.scaling import SearchTiming
from local import ROOT


@dataclass(frozen=True)
class Figure:
    """One headline figure: its value, its goal and why it is what it is."""

    name: str
    value: float | int
    goal: str
    met: bool | None
    note: str


def _table(header: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> list[str]:
    cells = [tuple(str(cell) for cell in header)] + [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = []
    for number, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _ms(value: float) -> str:
    return f"{value:.1f}"


def figures_table(figures: list[Figure]) -> list[str]:
    """The headline table."""
    rows = []
    for figure in figures:
        value = f"{figure.value:.3g}" if isinstance(figure.value, float) else str(figure.value)
        met = "-" if figure.met is None else ("yes" if figure.met else "NO")
        rows.append((figure.name, value, figure.goal, met, figure.note))
    return _table(("figure", "value", "goal", "met", "how"), rows)


def cold_table(results: ColdStarts) -> list[str]:
    """Cold starts of every function in every set-up, and of the baseline."""
    bare = results.bare
    rows = [
        (
            variant,
            name,
            _ms(result.median_import_ms),
            _ms(result.median_first_answer_ms),
            _ms(result.min_ms),
            _ms(result.median_ms),
            _ms(result.median_process_ms),
            result.compiled_modules,
            f"{result.min_ms / bare.min_ms:.2f}",
            f"{result.median_ms / bare.median_ms:.2f}",
        )
        for variant, by_function in results.by_variant.items()
        for name, result in by_function.items()
    ]
    title = (
        f"Cold starts: {results.runs} fresh processes each (ms; import, first answer and process wall are "
        "medians; import+answer min and median; compiled: sources imported without bytecode; "
        "vs bare: over the bare function's min and median)"
    )
    header = (
        "set-up",
        "function",
        "import",
        "first answer",
        "min",
        "median",
        "process wall",
        "compiled",
        "vs bare min",
        "vs bare median",
    )
    return [title, *_table(header, rows)]


_OVERHEAD_COLUMNS = (
    *("interaction", "DynamoDB calls", "runs", "handler", "raw calls", "difference", "ratio"),
    "own work µs",
)


def overhead_table(results: list[Overhead]) -> list[str]:
    """Warm latency through the handler against its raw DynamoDB calls."""
    rows = [
        (
            result.interaction,
            " + ".join(result.calls),
            len(result.handler_ms),
            _ms(result.handler_median_ms),
            _ms(result.raw_median_ms),
            _ms(result.handler_median_ms - result.raw_median_ms),
            f"{result.ratio:.2f}",
            f"{result.own_us:.0f}",
        )
        for result in results
    ]
    return [
        "Warm requests in process: handler against the same DynamoDB calls made raw (median ms); "
        "own work: the handler with DynamoDB's recorded answers handed back, nothing sent (median µs)"
    ] + _table(_OVERHEAD_COLUMNS, rows)


def scaling_table(small: dict[str, SearchTiming], large: dict[str, SearchTiming]) -> list[str]:
    """The searches at both table sizes."""
    rows = []
    for name, before in small.items():
        after = large[name]
        rows.append(
            (
                name,
                before.returned,
                f"{before.items_read} / {after.items_read}",
                _ms(before.median_ms),
                _ms(after.median_ms),
                f"{after.median_ms / before.median_ms:.2f}",
            )
        )
    first = next(iter(small.values()))
    second = next(iter(large.values()))
    title = (
        f"Search latency through the handler at {first.encounters:,} and {second.encounters:,} encounters "
        f"(median of {len(first.latencies_ms)} each, ms)"
    )
    return [title] + _table(
        ("search", "returned", "items read", f"{first.encounters:,}", f"{second.encounters:,}", "ratio"), rows
    )


def capacity_table(capacity: Capacity) -> list[str]:
    """The write units of one create, both ways, side by side."""
    measured = [(line.what, f"{line.units:g}") for line in capacity.measured]
    rules = [
        (line.what, "" if line.size_bytes is None else f"{line.size_bytes:,} B", f"{line.units:g}")
        for line in capacity.by_rules
    ]
    height = max(len(measured), len(rules))
    measured += [("", "")] * (height - len(measured))
    rules += [("", "", "")] * (height - len(rules))
    rows = [(*left, "|", *right) for left, right in zip(measured, rules, strict=True)]
    rows.append(("total", f"{capacity.measured_total:g}", "|", "total", "", f"{capacity.rules_total:g}"))
    title = f"Write units of one create of a {capacity.body_bytes:,}-byte encounter (one TransactWriteItems)"
    return [title] + _table(
        ("DynamoDB Local reports", "units", "|", "AWS billing rules", "size", "units"), rows
    )


def load_table(result: LoadResult) -> list[str]:
    """The load run, over all requests and by kind."""
    rows = [
        (
            kind,
            f"{len(latencies):,}",
            _ms(result.percentile(0.50, kind)),
            _ms(result.percentile(0.90, kind)),
            _ms(result.percentile(0.99, kind)),
            _ms(max(latencies)),
        )
        for kind, latencies in sorted(result.by_kind.items())
    ]
    rows.append(
        (
            "all",
            f"{result.requests:,}",
            _ms(result.p50_ms),
            _ms(result.percentile(0.90)),
            _ms(result.p99_ms),
            _ms(max(result.latencies_ms)),
        )
    )
    title = (
        f"Load through the local gateway: {result.clients} clients for {result.seconds:.1f} s: "
        f"{result.rps:.1f} requests/s, {result.errors} errors (latency ms)"
    )
    lines = [title, *_table(("request", "count", "p50", "p90", "p99", "max"), rows)]
    lines += [f"  error: {sample}" for sample in result.error_samples[:5]]
    if result.errors:
        lines.append(f"  the gateway process's stderr: {GATEWAY_LOG.relative_to(ROOT)}")
    return lines


def hostile_table(run: HostileRun) -> list[str]:
    """Each hostile search: its answer and the items DynamoDB read for it."""
    rows = [
        (request.name, request.status, request.entries, f"{request.items_read:,}", _ms(request.ms))
        for request in run.requests
    ]
    title = (
        f"Hostile searches through the handler: items read per request (budget {run.budget:,}), "
        f"most {run.max_items:,}"
    )
    return [title, *_table(("search", "status", "entries", "items read", "ms"), rows)]


def json_line(values: dict[str, Any]) -> str:
    """The last line of the output."""
    return json.dumps(values, separators=(", ", ": "))
