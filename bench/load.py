"""A short load run through the local gateway: HTTP, real tokens, authorizer, functions, DynamoDB Local.

The gateway runs in a process of its own (``bench.serve``); the clients are threads of this one, each
with its own keep-alive connection and its own token from the local issuer (so the authorizer runs once
per client, then answers from its policy cache, as API Gateway's cache would). Each request is drawn
from a fixed mix: reads of known encounters, one-patient searches, status searches and creates.
An error is anything but the expected status (200, or 201 for a create), or no answer at all.

All functions share the gateway's one Python process here, where each would have its own Lambda
instances in AWS: the figures measure this machine's gateway, not Lambda's scaling.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from bench.data import SEARCHED_STATUS, encounter_document
from local import LOCAL_DIR, ROOT, issuer
from local.dynamodb import free_port

# (kind, weight): a clinic's traffic is mostly reads.
MIX: tuple[tuple[str, int], ...] = (
    ("read", 50),
    ("search-patient", 25),
    ("search-status", 5),
    ("create", 20),
)
START_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass
class LoadResult:
    """What the clients saw."""

    clients: int
    seconds: float
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        return [latency for latencies in self.by_kind.values() for latency in latencies]

    @property
    def requests(self) -> int:
        return sum(len(latencies) for latencies in self.by_kind.values())

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float, kind: str | None = None) -> float:
        """The latency below which ``fraction`` of the requests (of ``kind``) finished (nearest rank)."""
        return percentile(self.latencies_ms if kind is None else self.by_kind[kind], fraction)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        return self.percentile(0.99)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# What the gateway process writes to stderr (a server thread's traceback, say), kept for a run with errors.
GATEWAY_LOG = LOCAL_DIR / "bench-gateway.log"


class GatewayProcess:
    """The gateway in a child process; a context manager. Its stderr goes to ``GATEWAY_LOG``."""

    def __init__(self, ddb_endpoint: str, prefix: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.command = [
            sys.executable, "-m", "bench.serve",
            "--ddb-endpoint", ddb_endpoint, "--prefix", prefix, "--port", str(self.port),
        ]  # fmt: skip
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GatewayProcess:
        GATEWAY_LOG.parent.mkdir(parents=True, exist_ok=True)
        with GATEWAY_LOG.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=str(ROOT),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the bench gateway exited at start (code {self.process.returncode})")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/.well-known/jwks.json")
                if connection.getresponse().status == 200:
                    connection.close()
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the bench gateway did not answer on port {self.port}")

    def __exit__(self, *exc: object) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class _Client(threading.Thread):
    def __init__(
        self,
        number: int,
        port: int,
        encounter_ids: list[str],
        patient_ids: list[str],
        writer_patient: str,
        until: threading.Event,
        start: threading.Barrier,
    ) -> None:
        super().__init__(name=f"bench-client-{number}", daemon=True)
        self.port = port
        self.rng = random.Random(number)
        self.token = issuer.mint("practitioner", f"bench-client-{number}")
        self.encounter_ids = encounter_ids
        self.patient_ids = patient_ids
        self.writer_patient = writer_patient
        self.until = until
        self.start_barrier = start
        self.by_kind: dict[str, list[float]] = {}
        self.errors = 0
        self.error_samples: list[str] = []
        self.connection: http.client.HTTPConnection | None = None

    def _request(self, kind: str) -> tuple[str, str, bytes | None, int]:
        if kind == "read":
            return "GET", f"/api/fhir/Encounter/{self.rng.choice(self.encounter_ids)}", None, 200
        if kind == "search-patient":
            query = urllib.parse.urlencode({"subject": f"Patient/{self.rng.choice(self.patient_ids)}"})
            return "GET", f"/api/fhir/Encounter?{query}", None, 200
        if kind == "search-status":
            return "GET", f"/api/fhir/Encounter?status={SEARCHED_STATUS}", None, 200
        document = encounter_document(self.writer_patient, self.rng)
        return "POST", "/api/fhir/Encounter", json.dumps(document).encode("utf-8"), 201

    def _send(self, method: str, path: str, body: bytes | None) -> int:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS
            )
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"}
        if body is not None:
            headers["Content-Type"] = "application/fhir+json"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise

    def run(self) -> None:
        kinds = [kind for kind, _ in MIX]
        weights = [weight for _, weight in MIX]
        self.start_barrier.wait()
        while not self.until.is_set():
            kind = self.rng.choices(kinds, weights)[0]
            method, path, body, expected = self._request(kind)
            began = time.perf_counter()
            try:
                status = self._send(method, path, body)
                problem = None if status == expected else f"{method} {path.split('?')[0]} -> {status}"
            except (OSError, http.client.HTTPException) as error:
                problem = f"{method} {path.split('?')[0]} -> {type(error).__name__}"
            took = (time.perf_counter() - began) * 1000
            self.by_kind.setdefault(kind, []).append(took)
            if problem is not None:
                self.errors += 1
                if len(self.error_samples) < 3:
                    self.error_samples.append(problem)
        if self.connection is not None:
            self.connection.close()


def run(
    port: int,
    encounter_ids: list[str],
    patient_ids: list[str],
    writer_patient: str,
    clients: int,
    seconds: float,
) -> LoadResult:
    """``clients`` concurrent clients for ``seconds`` against the gateway at ``port``."""
    until = threading.Event()
    start = threading.Barrier(clients + 1)
    workers = [
        _Client(number, port, encounter_ids, patient_ids, writer_patient, until, start)
        for number in range(clients)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    until.set()
    for worker in workers:
        worker.join(timeout=REQUEST_TIMEOUT_SECONDS + 5)
    elapsed = time.perf_counter() - began
    result = LoadResult(clients, elapsed)
    for worker in workers:
        result.errors += worker.errors
        result.error_samples.extend(worker.error_samples)
        for kind, latencies in worker.by_kind.items():
            result.by_kind.setdefault(kind, []).extend(latencies)
    return result


def warm_up(port: int, encounter_id: str, patient_id: str, writer_patient: str) -> None:
    """One request of each kind, so each function is imported before the clock starts."""
    until = threading.Event()
    client = _Client(999, port, [encounter_id], [patient_id], writer_patient, until, threading.Barrier(1))
    for kind, _ in MIX:
        method, path, body, expected = client._request(kind)
        status = client._send(method, path, body)
        if status != expected:
            raise RuntimeError(f"warm-up {method} {path} answered {status}, expected {expected}")
    if client.connection is not None:
        client.connection.close()
