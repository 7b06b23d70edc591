"""The local stack's audit pipeline: the same recorder code as in AWS, fed in this process.

In AWS, CloudWatch Logs hands the functions' audit lines and API Gateway's access-log lines to the
recorder function (``fhir_api.auditevents.recorder``). Here the functions run in the gateway's
process, so a listener on the functions' logger takes each audit record as it is written, and
the gateway hands over an access-log line for every request it refuses itself. A worker thread
batches them (up to ``BATCH_LINES`` lines or ``BATCH_SECONDS``) and stores them with
``record_lines``, retrying a failed batch with backoff like Lambda's asynchronous retries; a batch
that still fails is appended to ``.local/audit-dead-letters.jsonl`` (the dead-letter queue) and
logged as an error. The request that wrote the line never waits for any of it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fhir_api.audit import AUDIT_MESSAGE
from fhir_api.auditevents.recorder import record_lines
from fhir_api.auditevents.store import AuditEventStore
from fhir_api.logs import FunctionLogger

logger = logging.getLogger(__name__)

BATCH_LINES = 100
BATCH_SECONDS = 0.2
ATTEMPTS = 3  # Lambda's: the first try and two retries
RETRY_SECONDS = 0.5
DEAD_LETTERS = "audit-dead-letters.jsonl"

# The trail of the gateway serving the request this thread is running (functions share the process).
_serving: contextvars.ContextVar[AuditTrail | None] = contextvars.ContextVar("audit_trail", default=None)


def _hand_over(line: Mapping[str, Any]) -> None:
    """Hands an audit line a function logs to the trail of the gateway that called it."""
    trail = _serving.get()
    audit = line.get("audit")
    if trail is not None and isinstance(audit, dict) and line.get("message") == AUDIT_MESSAGE:
        trail.add({"message": AUDIT_MESSAGE, "audit": dict(audit)})


class AuditTrail:
    """One gateway's audit pipeline: lines in, AuditEvents stored by a worker thread."""

    def __init__(self, store: AuditEventStore, observer: str, dead_letters: Path) -> None:
        self.store = store
        self.observer = observer
        self.dead_letters = dead_letters
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="audit-trail", daemon=True)
        self._worker.start()

    def add(self, line: dict[str, Any]) -> None:
        """Queue one log line (the caller never waits for it to be stored)."""
        self._lines.put(line)

    @contextlib.contextmanager
    def serving(self, functions_logger: FunctionLogger) -> Iterator[None]:
        """While a function runs for this gateway: its audit records come here."""
        functions_logger.add_listener(_hand_over)
        token = _serving.set(self)
        try:
            yield
        finally:
            _serving.reset(token)

    def refused(
        self, request_id: str, method: str, path: str, status: int, error: str, **fields: Any
    ) -> None:
        """The access-log line of a request the gateway refused itself (no function saw it)."""
        self.add(
            {
                "time_epoch": str(int(time.time() * 1000)),
                "request_id": request_id,
                "sub": fields.get("sub") or "-",
                "method": method,
                "path": path,
                "status": str(status),
                "error": error,
                "source_ip": fields.get("source_ip") or "-",
                "source": "api-gateway",
            }
        )

    def flush(self) -> None:
        """Wait until every line queued so far is stored (or dead-lettered)."""
        self._lines.join()

    def close(self) -> None:
        """Store what is queued, then stop the worker."""
        self._lines.put(None)
        self._worker.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._lines.get()
            if first is None:
                self._lines.task_done()
                return
            batch = [first]
            deadline = time.monotonic() + BATCH_SECONDS
            stop = False
            while len(batch) < BATCH_LINES:
                try:
                    line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line is None:
                    stop = True
                    self._lines.task_done()
                    break
                batch.append(line)
            self._store(batch)
            for _ in batch:
                self._lines.task_done()
            if stop:
                return

    def _store(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(ATTEMPTS):
            try:
                record_lines(batch, self.store, self.observer)
                return
            except Exception:  # noqa: BLE001 - like Lambda: any failure retries the whole batch
                if attempt < ATTEMPTS - 1:
                    time.sleep(RETRY_SECONDS * 2**attempt)
        logger.error("audit lines not stored after %d attempts; kept in %s", ATTEMPTS, self.dead_letters)
        self.dead_letters.parent.mkdir(parents=True, exist_ok=True)
        with self.dead_letters.open("a", encoding="utf-8") as handle:
            for line in batch:
                handle.write(json.dumps(line) + "\n")
