"""One benchmark run: start DynamoDB Local, load data, measure, report, clean up."""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from bench import audit_trail, coldstart, events, hostile, load, overhead, report, scaling
from bench import capacity as capacity_module
from bench.calls import CallRecorder
from bench.data import SEARCHED_STATUS, BulkLoader, encounter_document, patient_document, sized_encounter
from bench.machine import this_machine
from fhir_api.api.handler import make_handler
from fhir_api.resources import service_for
from fhir_api.settings import get_settings
from fhir_api.store.dynamo import dynamodb_client
from local import ROOT, tables
from local.dynamodb import DynamoDBLocal
from local.gateway import Gateway
from local.lambda_runtime import LambdaContext, release_environment
from local.stack import start_dynamodb
from local.template import load_template

PREFIX = "bench-"
FILLER_PATIENTS = 100
PROBE_ENCOUNTERS = 10  # the one-patient search returns exactly these, whatever the table's size
# BENCH_QUICK=1 shortens every measurement, to check that the bench runs; its figures mean little.
QUICK = os.environ.get("BENCH_QUICK", "") == "1"
SMALL_TABLE = 1_000
LARGE_TABLE = 5_000 if QUICK else 20_000
COLD_RUNS = 3 if QUICK else 9
SCALING_RUNS = 20 if QUICK else 60
# Unmeasured rounds of the searches before each size's timed ones: DynamoDB Local's JVM compiles its
# query path only after many requests, and the first size must not pay for that.
SEARCH_WARMUP_ROUNDS = 30 if QUICK else 150
OVERHEAD_RUNS = {"read": 300, "search": 200, "create": 200}
if QUICK:
    OVERHEAD_RUNS = dict.fromkeys(OVERHEAD_RUNS, 50)
LOAD_CLIENTS = 16
LOAD_SECONDS = 5.0 if QUICK else 20.0
CREATE_BODY_BYTES = 1024
LOAD_CHUNK = 2_000

GOALS = {
    "cold_start_ratio_read": 1.3,
    "cold_start_ratio_write": 2.0,
    "handler_overhead_ratio": 1.15,
    "search_scaling_ratio": 1.3,
}

logger = logging.getLogger("bench")


@dataclass
class Dataset:
    """What was loaded, and the ids the benchmarks use."""

    probe_patient: str = ""
    writer_patient: str = ""
    filler_patients: list[str] = field(default_factory=list)
    probe_encounters: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    encounter_ids: list[str] = field(default_factory=list)
    encounters: int = 0
    create_path_ms: float = 0.0  # per encounter, through ResourceService.create and its transaction
    bulk_ms: float = 0.0  # per encounter, through the bulk loader
    bulk_seconds: float = 0.0
    bulk_count: int = 0


def _progress(message: str, *args: Any) -> None:
    logger.info(message, *args)


def _setup_logging() -> None:
    # The bench's own progress goes to stderr; the functions' loggers keep their own handlers.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bench %(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _seed(client: Any, rng: random.Random) -> tuple[Dataset, BulkLoader]:
    settings = get_settings()
    patients = service_for("Patient", settings)
    encounters = service_for("Encounter", settings)
    data = Dataset()
    data.probe_patient = patients.create(patient_document(0)).id
    data.writer_patient = patients.create(patient_document(1)).id
    data.filler_patients = [
        patients.create(patient_document(index)).id for index in range(2, 2 + FILLER_PATIENTS)
    ]
    # The probe patient's encounters go through the whole create path, transaction included.
    began = time.perf_counter()
    for _ in range(PROBE_ENCOUNTERS):
        document = encounter_document(data.probe_patient, rng, status="in-progress")
        data.probe_encounters.append((encounters.create(document).id, document))
    data.create_path_ms = (time.perf_counter() - began) * 1000 / PROBE_ENCOUNTERS
    data.encounter_ids = [resource_id for resource_id, _ in data.probe_encounters]
    data.encounters = PROBE_ENCOUNTERS
    loader = BulkLoader(settings, client)
    _fill(loader, data, rng, SMALL_TABLE)
    _check_same_items(client, settings.encounters_table, data)
    return data, loader


def _fill(loader: BulkLoader, data: Dataset, rng: random.Random, total: int) -> None:
    while data.encounters < total:
        count = min(LOAD_CHUNK, total - data.encounters)
        documents = [encounter_document(rng.choice(data.filler_patients), rng) for _ in range(count)]
        began = time.perf_counter()
        ids = loader.load(documents)
        data.bulk_seconds += time.perf_counter() - began
        data.bulk_count += count
        data.bulk_ms = data.bulk_seconds * 1000 / data.bulk_count
        data.encounter_ids.extend(ids)
        data.encounters += count


def _check_same_items(client: Any, table: str, data: Dataset) -> None:
    """A bulk-loaded item has exactly the attributes of one written by the full create path."""
    full = client.get_item(TableName=table, Key={"id": {"S": data.probe_encounters[0][0]}})["Item"]
    bulk = client.get_item(TableName=table, Key={"id": {"S": data.encounter_ids[-1]}})["Item"]
    if sorted(full) != sorted(bulk):
        raise RuntimeError(f"bulk items differ from created ones: {sorted(full)} != {sorted(bulk)}")


def _searches(data: Dataset) -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "one patient (subject=)": lambda: events.search_event({"subject": [f"Patient/{data.probe_patient}"]}),
        f"status={SEARCHED_STATUS}": lambda: events.search_event({"status": [SEARCHED_STATUS]}),
    }


def _measure_capacity(
    recorder: CallRecorder, data: Dataset, template: dict[str, Any], client: Any
) -> capacity_module.Capacity:
    create = make_handler("encounter_create")
    document = sized_encounter(data.writer_patient, CREATE_BODY_BYTES)
    with recorder.recording() as calls:
        answer = create(events.create_event(document), LambdaContext("encounter_create", "capacity"))
    if answer["statusCode"] != 201:
        raise RuntimeError(f"the sized create answered {answer['statusCode']}: {answer.get('body')}")
    data.encounters += 1
    transaction = next(call for call in calls if call.operation == "TransactWriteItems")
    table_properties = {
        tables.local_name(logical_id, PREFIX): properties
        for logical_id, properties in tables.table_resources(template).items()
    }
    checked = {}
    for action in transaction.params["TransactItems"]:
        if "ConditionCheck" in action:
            check = action["ConditionCheck"]
            checked[check["TableName"]] = client.get_item(TableName=check["TableName"], Key=check["Key"])[
                "Item"
            ]
    result = capacity_module.Capacity(CREATE_BODY_BYTES)
    result.measured = capacity_module.measured(transaction)
    result.by_rules = capacity_module.by_rules(transaction, table_properties, checked)
    return result


def _cold_events(data: Dataset) -> dict[str, tuple[dict[str, Any], int]]:
    read_id = data.probe_encounters[0][0]
    update_id, update_document = data.probe_encounters[1]
    return {
        coldstart.BARE: (events.read_event(read_id), 200),
        "encounter_read": (events.read_event(read_id), 200),
        "encounter_search": (events.search_event({"subject": [f"Patient/{data.probe_patient}"]}), 200),
        "encounter_vread": (events.vread_event(read_id, 1), 200),
        "metadata": (events.metadata_event(), 200),
        "encounter_create": (
            events.create_event(encounter_document(data.writer_patient, random.Random(7))),
            201,
        ),
        "encounter_update": (events.update_event(update_id, update_document), 200),
    }


@dataclass
class Results:
    """Everything one run measured."""

    data: Dataset
    small: dict[str, scaling.SearchTiming]
    large: dict[str, scaling.SearchTiming]
    overheads: list[overhead.Overhead]
    capacity: capacity_module.Capacity
    colds: coldstart.ColdStarts
    load_run: load.LoadResult
    hostile_run: hostile.HostileRun
    audit_cost: audit_trail.AuditCost


def _measure_all(dynamodb: DynamoDBLocal, template: dict[str, Any], function_env: dict[str, str]) -> Results:
    rng = random.Random(2024)
    client = dynamodb.client()
    settings = get_settings()
    recorder = CallRecorder(dynamodb_client(settings))

    _progress("loading patients and %d encounters", SMALL_TABLE)
    data, loader = _seed(client, rng)

    _progress("search latency at %d encounters", data.encounters)
    search = make_handler("encounter_search")
    small = scaling.measure(
        _searches(data), search, recorder, data.encounters, SCALING_RUNS, SEARCH_WARMUP_ROUNDS
    )

    _progress("warm handler overhead")
    read_id = data.probe_encounters[0][0]
    overheads = [
        overhead.measure(
            "create",
            make_handler("encounter_create"),
            lambda: events.create_event(encounter_document(data.writer_patient, rng)),
            recorder,
            201,
            OVERHEAD_RUNS["create"],
        ),
        overhead.measure(
            "read", make_handler("encounter_read"), lambda: events.read_event(read_id), recorder, 200,
            OVERHEAD_RUNS["read"],
        ),
        overhead.measure(
            "search (one patient)", search, _searches(data)["one patient (subject=)"], recorder, 200,
            OVERHEAD_RUNS["search"],
        ),
    ]  # fmt: skip
    # The handler's creates (one recorded, then warm-up and timed ones) and as many replayed raw.
    data.encounters += 2 * (OVERHEAD_RUNS["create"] + overhead.WARMUP) + 1

    _progress("write units of one create")
    capacity_recorder = CallRecorder(dynamodb_client(settings), consumed_capacity="INDEXES")
    capacity = _measure_capacity(capacity_recorder, data, template, client)

    _progress("the audit trail: round trips, the audit step, write units of an AuditEvent")
    audit_cost = audit_trail.measure(
        make_handler("encounter_create"),
        events.create_event(encounter_document(data.writer_patient, rng)),
        recorder,
        capacity_recorder,
        settings.audit_events_table,
    )
    data.encounters += 1

    cold_events = _cold_events(data)
    _progress(
        "cold starts: %d functions %s, the bare function once a round; %d rounds",
        len(cold_events) - 1,
        ", ".join(coldstart.VARIANTS),
        COLD_RUNS,
    )
    colds = coldstart.measure(cold_events, function_env, COLD_RUNS)
    data.encounters += coldstart.creates_per_measure(COLD_RUNS)

    _progress("loading encounters up to %d", LARGE_TABLE)
    _fill(loader, data, rng, LARGE_TABLE)

    _progress("search latency at %d encounters", data.encounters)
    large = scaling.measure(
        _searches(data), search, recorder, data.encounters, SCALING_RUNS, SEARCH_WARMUP_ROUNDS
    )

    _progress("hostile searches at %d encounters", data.encounters)
    hostile_run = hostile.measure(search, recorder, settings.search_read_budget)

    _progress("load: %d clients for %.0f s through the local gateway", LOAD_CLIENTS, LOAD_SECONDS)
    gateway_env = coldstart.function_env({})
    gateway_env["PYTHONPATH"] = os.pathsep.join(str(path) for path in (ROOT / "shared", ROOT))
    with load.GatewayProcess(dynamodb.endpoint, PREFIX, gateway_env) as gateway:
        load.warm_up(gateway.port, read_id, data.probe_patient, data.writer_patient)
        loaded = load.run(
            gateway.port,
            data.encounter_ids,
            data.filler_patients,
            data.writer_patient,
            LOAD_CLIENTS,
            LOAD_SECONDS,
        )
    return Results(data, small, large, overheads, capacity, colds, loaded, hostile_run, audit_cost)


def run(out: IO[str]) -> int:
    """Every benchmark; the report goes to ``out``, its last line one JSON object."""
    _setup_logging()
    began = time.monotonic()
    machine = this_machine()
    template = load_template()
    saved_environ = dict(os.environ)
    _progress("starting DynamoDB Local")
    dynamodb = start_dynamodb()
    names: dict[str, str] = {}
    try:
        names = tables.create_tables(dynamodb.client(), template, prefix=PREFIX)
        # The functions' environment, as the local gateway derives it from template.yaml.
        gateway = Gateway(template, port=0, dynamodb_endpoint=dynamodb.endpoint, table_prefix=PREFIX)
        function_env = gateway.environment
        gateway.close()
        os.environ.update(function_env)
        release_environment()
        results = _measure_all(dynamodb, template, function_env)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        release_environment()
        if names and dynamodb.process is not None:
            tables.delete_tables(dynamodb.client(), names)
        dynamodb.stop()
        _progress("DynamoDB Local stopped")

    data = results.data
    figures, values = _figures(results)
    lines = [
        "Encounter API benchmarks (DynamoDB Local, in memory)"
        + (": a quick run (BENCH_QUICK=1) that checks the bench, not its figures" if QUICK else ""),
        f"machine: {machine.describe()}",
        f"data: {FILLER_PATIENTS + 2} patients; {SMALL_TABLE:,} then {data.encounters:,} encounters; "
        f"full create path {data.create_path_ms:.1f} ms per encounter, bulk loader {data.bulk_ms:.2f} ms "
        f"({data.bulk_count:,} in {data.bulk_seconds:.1f} s); whole run {time.monotonic() - began:.0f} s",
        "",
        *report.figures_table(figures),
        "",
        *report.cold_table(results.colds),
        "",
        *report.overhead_table(results.overheads),
        "",
        *report.scaling_table(results.small, results.large),
        "",
        *report.capacity_table(results.capacity),
        "",
        *report.load_table(results.load_run),
        "",
        *report.hostile_table(results.hostile_run),
        "",
        report.json_line({**values, **({"quick": True} if QUICK else {}), "machine": machine.as_dict()}),
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()
    return 0


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _figures(results: Results) -> tuple[list[report.Figure], dict[str, Any]]:
    colds, overheads, capacity, loaded = results.colds, results.overheads, results.capacity, results.load_run
    small, large = results.small, results.large
    functions = {"read": coldstart.READ_FUNCTIONS, "write": coldstart.WRITE_FUNCTIONS}
    cold_names = {"": coldstart.WITH_PYC, "_no_pyc": coldstart.NO_PYC, "_traced": coldstart.TRACED}
    cold_ratios = {
        f"cold_start_ratio_{kind}{suffix}": colds.ratio(variant, names)
        for suffix, variant in cold_names.items()
        for kind, names in functions.items()
    }
    slowest = colds.ratio(coldstart.WITH_PYC, coldstart.READ_FUNCTIONS + coldstart.WRITE_FUNCTIONS).slowest
    worst_overhead = max(overheads, key=lambda result: result.ratio)
    ratios = {name: large[name].median_ms / small[name].median_ms for name in small}
    worst_search = max(ratios, key=lambda name: ratios[name])
    values: dict[str, Any] = {
        **{name: round(cold.by_min, 3) for name, cold in cold_ratios.items()},
        **{f"{name}_median": round(cold.by_median, 3) for name, cold in cold_ratios.items()},
        "handler_overhead_ratio": round(worst_overhead.ratio, 3),
        "search_scaling_ratio": round(ratios[worst_search], 3),
        "rps": round(loaded.rps, 1),
        "p50_ms": round(loaded.p50_ms, 1),
        "p99_ms": round(loaded.p99_ms, 1),
        "errors": loaded.errors,
        "write_units_per_create": _number(capacity.measured_total),
        "write_units_per_create_aws_rules": _number(capacity.rules_total),
        "cold_first_answer_ms": round(slowest.min_ms, 1),
        "max_items_per_request": results.hostile_run.max_items,
        "audit_round_trips_per_request": results.audit_cost.round_trips,
        "audit_record_us": round(results.audit_cost.record_us, 1),
        "audit_write_units_read": _number(results.audit_cost.write_units_read),
        "audit_write_units_search": _number(results.audit_cost.write_units_search),
    }

    def goal(name: str) -> tuple[str, bool]:
        return f"<= {GOALS[name]}", values[name] <= GOALS[name]

    def row(name: str, note: str) -> report.Figure:
        text, met = goal(name)
        return report.Figure(name, values[name], text, met, note)

    def cold_row(name: str, cold: coldstart.Ratio) -> report.Figure:
        note = (
            f"{cold.slowest.variant}: slowest {cold.function} min {cold.slowest.min_ms:.0f} ms / bare min "
            f"{cold.bare.min_ms:.0f} ms; medians {cold.slowest.median_ms:.0f} / {cold.bare.median_ms:.0f} ms "
            f"= {cold.by_median:.2f}"
        )
        if name in GOALS:
            return row(name, note)
        return report.Figure(name, values[name], "-", None, note)

    figures = [
        *(cold_row(name, cold) for name, cold in cold_ratios.items()),
        row(
            "handler_overhead_ratio",
            "worst of " + ", ".join(f"{result.interaction} {result.ratio:.2f}" for result in overheads),
        ),
        row(
            "search_scaling_ratio",
            "worst of " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()),
        ),
        report.Figure("rps", values["rps"], "-", None, f"{loaded.clients} clients, {loaded.seconds:.0f} s"),
        report.Figure("p50_ms", values["p50_ms"], "-", None, "all requests of the load run"),
        report.Figure("p99_ms", values["p99_ms"], "-", None, "all requests of the load run"),
        report.Figure(
            "errors", values["errors"], "0", loaded.errors == 0, f"of {loaded.requests:,} requests"
        ),
        report.Figure(
            "write_units_per_create",
            values["write_units_per_create"],
            "-",
            None,
            f"DynamoDB Local; AWS billing rules give {capacity.rules_total:g}",
        ),
        report.Figure(
            "cold_first_answer_ms",
            values["cold_first_answer_ms"],
            "-",
            None,
            f"{slowest.function}, import + answer, fastest of {colds.runs} with .pyc",
        ),
        report.Figure(
            "max_items_per_request",
            values["max_items_per_request"],
            f"<= {results.hostile_run.budget}",
            results.hostile_run.max_items <= results.hostile_run.budget,
            f"most DynamoDB items read by one of {len(results.hostile_run.requests)} hostile searches",
        ),
        report.Figure(
            "audit_round_trips_per_request",
            values["audit_round_trips_per_request"],
            "<= 1",
            results.audit_cost.round_trips <= 1,
            f"calls on the AuditEvents table among a create's {results.audit_cost.create_calls}",
        ),
        report.Figure(
            "audit_record_us",
            values["audit_record_us"],
            "-",
            None,
            f"a 20-encounter page's audit step: patient ids and the log line, median of {audit_trail.RUNS}",
        ),
        report.Figure(
            "audit_write_units_read",
            values["audit_write_units_read"],
            "-",
            None,
            "one AuditEvent of a read, written by the recorder (DynamoDB Local)",
        ),
        report.Figure(
            "audit_write_units_search",
            values["audit_write_units_search"],
            "-",
            None,
            f"one AuditEvent of a search page naming {audit_trail.PAGE} patients",
        ),
    ]
    return figures, values
