"""``python -m bench.rest_hook [N]``: how long a rest-hook notification takes on the local stack.

A whole local stack (in-memory DynamoDB Local, the gateway, the change stream poller and the
deliverer), a receiver on loopback and one admin Subscription on finished encounters. N encounters
(default 50) are created one after another through the gateway; each latency runs from the create's
answer to the notification's arrival at the receiver. One JSON line: median, p95 and max in ms.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parent.parent / "shared"
TIMEOUT_SECONDS = 30


def _receiver() -> tuple[ThreadingHTTPServer, queue.Queue[tuple[float, bytes]]]:
    arrivals: queue.Queue[tuple[float, bytes]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrivals.put((time.monotonic(), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals


def measure(count: int) -> dict[str, Any]:
    """Latencies of ``count`` notifications, in ms."""
    import requests

    from local.stack import LocalStack

    server, arrivals = _receiver()
    with LocalStack() as stack:
        headers = {"Authorization": f"Bearer {stack.token('admin')}", "Content-Type": "application/fhir+json"}
        base = stack.base_url
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/hook"
        subscription = {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "Latency",
            "criteria": "Encounter?status=finished",
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
        }
        requests.post(
            f"{base}/Subscription", json=subscription, headers=headers, timeout=30
        ).raise_for_status()
        patient = requests.post(
            f"{base}/Patient", json={"resourceType": "Patient"}, headers=headers, timeout=30
        )
        patient.raise_for_status()
        encounter = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient.json()['id']}"},
        }
        latencies = []
        for _ in range(count):
            answer = requests.post(f"{base}/Encounter", json=encounter, headers=headers, timeout=30)
            answered = time.monotonic()
            answer.raise_for_status()
            arrived, body = arrivals.get(timeout=TIMEOUT_SECONDS)
            assert json.loads(body)["id"] == answer.json()["id"], "notifications arrived out of order"
            latencies.append((arrived - answered) * 1000)
    server.shutdown()
    ordered = sorted(latencies)
    return {
        "rest_hook_notifications": count,
        "rest_hook_latency_median_ms": round(statistics.median(ordered), 1),
        "rest_hook_latency_p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
        "rest_hook_latency_max_ms": round(ordered[-1], 1),
    }


def _main() -> int:
    report = sys.stdout
    if str(SHARED) not in sys.path:
        sys.path.insert(0, str(SHARED))
    # The functions' JSON log lines would drown the one line this prints.
    sys.stdout = open(os.devnull, "w")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    report.write(json.dumps(measure(count)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
