"""The local stack end to end: the gateway in front of the real functions, and `make run` as a
developer runs it (metadata, data surviving a restart, port errors, two instances side by side)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from local import LOCAL_DIR, ROOT
from local.dynamodb import free_port
from local.stack import LocalStack

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30
PATIENT = {"resourceType": "Patient", "name": [{"family": "Restart", "given": ["Ada"]}], "gender": "female"}


def test_metadata_answers_without_a_token(api: requests.Session) -> None:
    response = api.get("metadata")

    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"


def test_missing_token_is_401_with_www_authenticate(api: requests.Session) -> None:
    response = api.get("Encounter")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


def test_jwks_is_published(local_stack: LocalStack) -> None:
    response = requests.get(f"{local_stack.root_url}/.well-known/jwks.json", timeout=30)

    assert response.status_code == 200
    assert response.json()["keys"][0]["kty"] == "RSA"


def test_roles_are_enforced_per_route_with_the_cached_policy(
    api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    # Given one auditor token (the authorizer's answer is cached for it after the first call)
    headers = {**auth("auditor", sub="auditor-cache"), "Content-Type": "application/fhir+json"}

    # When it searches, then tries to create with the cached policy
    search = api.get("Patient", headers=headers)
    create = api.post("Patient", headers=headers, data=json.dumps(PATIENT))

    # Then the read is allowed and the write refused by the gateway
    assert search.status_code == 200
    assert create.status_code == 403
    assert create.json()["resourceType"] == "OperationOutcome"


def test_unknown_role_and_expired_token(api: requests.Session, auth: Callable[..., dict[str, str]]) -> None:
    assert api.get("Patient", headers=auth("janitor")).status_code == 403
    assert api.get("Patient", headers=auth("admin", ttl=-60)).status_code == 401


def test_repeated_search_parameters_reach_the_function(
    api: requests.Session, auth: Callable[..., dict[str, str]]
) -> None:
    response = api.get("Encounter?date=ge2024-01-01&date=lt2024-02-01", headers=auth("practitioner"))

    assert response.status_code == 200, response.text
    assert response.json()["resourceType"] == "Bundle"


# ------------------------------------------------------------------------------------------------
# make run


class Server:
    """`make run` in a subprocess of its own process group, with logs in files (never a pipe that fills)."""

    def __init__(self, port: int, ddb_port: int, log_dir: Path) -> None:
        self.port = port
        self.ddb_port = ddb_port
        self.log = log_dir / f"run-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/fhir"

    def start(self) -> Server:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["make", "--no-print-directory", "run", f"PORT={self.port}", f"DDB_PORT={self.ddb_port}"],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"make run exited {self.process.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                if requests.get(f"{self.base_url}/metadata", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError(
            f"make run did not answer within {START_TIMEOUT_SECONDS}s: {self.log.read_text()[-2000:]}"
        )

    def stop(self) -> int:
        """SIGTERM to make (as a supervisor sends it); the exit code."""
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
                raise AssertionError("make run did not stop on SIGTERM") from None
        return process.returncode


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_closed(port: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not port_answers(port):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[[int, int], Server]]:
    started: list[Server] = []

    def start(port: int, ddb_port: int) -> Server:
        server = Server(port, ddb_port, tmp_path)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
        shutil.rmtree(LOCAL_DIR / f"data-{server.ddb_port}", ignore_errors=True)


@pytest.mark.slow
def test_make_run_keeps_data_across_a_restart_and_stops_everything_on_sigterm(
    servers: Callable[[int, int], Server], auth: Callable[..., dict[str, str]]
) -> None:
    # Given make run on free ports
    port, ddb_port = free_port(), free_port()
    server = servers(port, ddb_port)
    headers = {**auth("admin"), "Content-Type": "application/fhir+json"}
    created = requests.post(
        f"{server.base_url}/Patient", headers=headers, data=json.dumps(PATIENT), timeout=30
    )
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]

    # When it is stopped with SIGTERM and started again
    # (make passes SIGTERM to `python -m local.run` and then dies of the same signal)
    assert server.stop() in (0, -signal.SIGTERM)
    assert wait_closed(port) and wait_closed(ddb_port), "make run left a process listening"
    server.start()

    # Then the patient is still there
    read = requests.get(f"{server.base_url}/Patient/{patient_id}", headers=headers, timeout=30)
    assert read.status_code == 200, read.text
    assert read.json()["name"] == PATIENT["name"]


@pytest.mark.slow
def test_two_make_runs_side_by_side(servers: Callable[[int, int], Server]) -> None:
    first = servers(free_port(), free_port())
    second = servers(free_port(), free_port())

    assert requests.get(f"{first.base_url}/metadata", timeout=30).status_code == 200
    assert requests.get(f"{second.base_url}/metadata", timeout=30).status_code == 200


@pytest.mark.parametrize("variable", ["PORT", "DDB_PORT"])
def test_make_run_on_a_port_in_use_is_a_one_line_error(variable: str) -> None:
    # Given a port something already listens on
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = {"PORT": free_port(), "DDB_PORT": free_port(), variable: taken}

        # When make run is asked to use it
        result = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-s",
                "run",
                f"PORT={ports['PORT']}",
                f"DDB_PORT={ports['DDB_PORT']}",
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # Then it exits non-zero with one line naming the port and the fix
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0
    assert len(errors) == 1, result.stderr
    assert f"port {taken}" in errors[0] and f"{variable}=" in errors[0]
