"""Change notifications on the laptop: DynamoDB Local's streams of Encounters and Patients read by a
thread of the local stack's process, handed to the same consumer as in AWS
(``fhir_api.notifications.stream.process_records``), with an in-memory event log where AWS has
EventBridge and a delivery worker where AWS has the FIFO delivery queue and the delivery function.
The worker keeps the queue's promises (one message group per subscription and resource, handed out in
order, nothing of a group while its first message waits for a retry; a deduplication id seen in the
last five minutes is dropped), makes the same attempts (``fhir_api.notifications.delivery``) with the
same backoff, sets the Subscription to ``error`` after the last one and keeps what it gave up on as
its dead letters.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_api.notifications import delivery
from fhir_api.notifications.changes import Change
from fhir_api.notifications.matching import Notification
from fhir_api.notifications.stream import process_records
from fhir_api.settings import Settings
from fhir_api.store.dynamo import Store

logger = logging.getLogger("local.notifications")

POLL_SECONDS = 0.1
SHARD_REFRESH_SECONDS = 2.0
BATCH_ATTEMPTS = 3  # a batch the consumer fails on is tried this often, then logged and left
DEDUPLICATION_SECONDS = 300  # SQS FIFO's deduplication interval


class LocalEventLog:
    """The local event bus: the PutEvents entries, newest last (and one log line each: ids and codes)."""

    def __init__(self, bus_name: str = "local", keep: int = 10_000) -> None:
        self.bus_name = bus_name
        self.entries: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def publish(self, changes: list[Change]) -> None:
        """Record one entry per change, in order."""
        with self._lock:
            for change in changes:
                entry = change.event_entry(self.bus_name)
                self.entries.append(entry)
                logger.info("event %s %s", entry["DetailType"], entry["Detail"])

    def events(self) -> list[dict[str, Any]]:
        """Every event so far as EventBridge would deliver it to a rule's target (source,
        detail-type, detail)."""
        with self._lock:
            return [
                {
                    "source": entry["Source"],
                    "detail-type": entry["DetailType"],
                    "detail": json.loads(entry["Detail"]),
                }
                for entry in self.entries
            ]


@dataclass(order=True)
class _Due:
    at: float
    sequence: int
    notification: Notification = field(compare=False)
    attempts: int = field(compare=False, default=0)


class LocalDeliveryWorker:
    """The local delivery queue and its consumer: one thread; per message group (a subscription and a
    resource) the first message is attempted, with backoff between failures, before the next one."""

    def __init__(
        self, store: Store, settings: Settings, backoff: Callable[[int], float] = delivery.backoff_seconds
    ) -> None:
        self.store = store
        self.settings = settings
        self.backoff = backoff
        self.dead_letters: list[tuple[Notification, str]] = []
        self._groups: dict[str, deque[_Due]] = {}  # waiting messages per group, first one first
        self._due: list[_Due] = []  # the first message of each group, by when it is due
        self._sent: dict[str, float] = {}  # deduplication id -> when it was queued
        self._sequence = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="rest-hook-delivery", daemon=True)

    def start(self) -> LocalDeliveryWorker:
        """Start the worker thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the attempt in progress; what is still queued is dropped (as a stopped SQS
        consumer would leave it)."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(timeout=self.settings.delivery_timeout_seconds + 5)

    def enqueue(self, notifications: list[Notification]) -> None:
        """Queue each notification behind the earlier ones of its group (a repeat is dropped)."""
        now = time.monotonic()
        with self._wake:
            self._sent = {key: at for key, at in self._sent.items() if now - at < DEDUPLICATION_SECONDS}
            for notification in notifications:
                if notification.deduplication_id in self._sent:
                    continue
                self._sent[notification.deduplication_id] = now
                due = _Due(now, next(self._sequence), notification)
                group = self._groups.setdefault(notification.group, deque())
                group.append(due)
                if len(group) == 1:
                    heapq.heappush(self._due, due)
            self._wake.notify_all()

    def _next(self) -> _Due | None:
        with self._wake:
            while not self._stopped:
                if self._due and self._due[0].at <= time.monotonic():
                    return heapq.heappop(self._due)
                wait = max(0.0, self._due[0].at - time.monotonic()) if self._due else None
                self._wake.wait(wait)
            return None

    def _done(self, due: _Due) -> None:
        """The group's first message is done with: its next one is due now."""
        with self._wake:
            group = self._groups[due.notification.group]
            group.popleft()
            if group:
                group[0].at = time.monotonic()
                heapq.heappush(self._due, group[0])
            else:
                del self._groups[due.notification.group]

    def _run(self) -> None:
        while (due := self._next()) is not None:
            try:
                attempt = delivery.deliver(due.notification, self.store, self.settings)
            except Exception:  # a database fault: the attempt counts as failed, like a Lambda error
                logger.exception("rest-hook attempt failed")
                attempt = delivery.Attempt("failed", "the server could not read the subscription")
            due.attempts += 1
            logger.info(
                "rest-hook %s for Subscription/%s (%s/%s version %s, attempt %d)%s",
                attempt.outcome,
                due.notification.subscription_id,
                due.notification.resource_type,
                due.notification.resource_id,
                due.notification.version_id,
                due.attempts,
                f": {attempt.reason}" if attempt.reason else "",
            )
            if not attempt.failed:
                self._done(due)
                continue
            if due.attempts >= self.settings.delivery_max_attempts:
                try:
                    delivery.give_up(due.notification, attempt.reason, due.attempts, self.store)
                finally:
                    self.dead_letters.append((due.notification, attempt.reason))
                    self._done(due)
                continue
            with self._wake:
                due.at = time.monotonic() + self.backoff(due.attempts)
                heapq.heappush(self._due, due)


class StreamPoller:
    """Reads the streams of the given tables on DynamoDB Local, shard by shard in order, and hands
    each batch of records to ``on_records``. Records written before it started are skipped.

    Every poll asks for a fresh iterator after the last sequence number read from the shard (from its
    start while none was): DynamoDB Local's iterators, handed on through empty reads, point past the
    shard's records once another table's writes have moved its sequence numbers on
    (TrimmedDataAccessException).
    """

    def __init__(
        self,
        client: Any,
        streams_client: Any,
        tables: list[str],
        on_records: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.client = client
        self.streams = streams_client
        self.tables = tables
        self.on_records = on_records
        self.failed_batches: list[list[dict[str, Any]]] = []
        self._shards: dict[str, tuple[str, str | None]] = {}  # shard id -> (stream ARN, last sequence)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-stream", daemon=True)
        self._refreshed = 0.0

    def start(self) -> StreamPoller:
        """Skip what the streams already hold, then poll in a thread."""
        self._refresh(skip_existing=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _refresh(self, skip_existing: bool = False) -> None:
        """Find the streams' shards (a new shard is read from its start)."""
        self._refreshed = time.monotonic()
        for table in self.tables:
            arn = self.client.describe_table(TableName=table)["Table"].get("LatestStreamArn")
            if not arn:
                continue
            for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"].get("Shards", []):
                if shard["ShardId"] not in self._shards:
                    self._shards[shard["ShardId"]] = (arn, None)
                    if skip_existing:
                        while self._read(shard["ShardId"]):
                            pass

    def _read(self, shard_id: str) -> list[dict[str, Any]]:
        """The next records of a shard (at most 1,000), remembering the last one's position."""
        arn, last = self._shards[shard_id]
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last}
            if last
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **position)[
            "ShardIterator"
        ]
        records: list[dict[str, Any]] = (
            self.streams.get_records(ShardIterator=iterator, Limit=1000).get("Records") or []
        )
        if records:
            self._shards[shard_id] = (arn, records[-1]["dynamodb"]["SequenceNumber"])
        return records

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                if time.monotonic() - self._refreshed > SHARD_REFRESH_SECONDS:
                    self._refresh()
                for shard_id in list(self._shards):
                    records = self._read(shard_id)
                    if records:
                        self._hand_over(records)
            except Exception:  # DynamoDB Local restarting or stopping: try again on the next round
                logger.exception("reading the change stream failed")

    def _hand_over(self, records: list[dict[str, Any]]) -> None:
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                self.on_records(records)
                return
            except Exception:
                logger.exception("change stream batch failed (attempt %d of %d)", attempt, BATCH_ATTEMPTS)
                time.sleep(0.2 * attempt)
        self.failed_batches.append(records)


class LocalNotifications:
    """The whole local flow: stream poller -> consumer -> event log and delivery worker."""

    def __init__(
        self,
        dynamodb_endpoint: str,
        settings: Settings,
        backoff: Callable[[int], float] = delivery.backoff_seconds,
    ) -> None:
        import boto3

        self.settings = settings
        self.store = Store(settings)
        self.events = LocalEventLog()
        self.worker = LocalDeliveryWorker(self.store, settings, backoff)
        options = {
            "endpoint_url": dynamodb_endpoint,
            "region_name": settings.aws_region,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        self.poller = StreamPoller(
            boto3.client("dynamodb", **options),
            boto3.client("dynamodbstreams", **options),
            [settings.encounters_table, settings.patients_table],
            self._consume,
        )

    def _consume(self, records: list[dict[str, Any]]) -> None:
        process_records(records, self.store, self.events, self.worker)

    def start(self) -> LocalNotifications:
        """Start the delivery worker, then the stream poller."""
        self.worker.start()
        self.poller.start()
        return self

    def stop(self) -> None:
        """Stop the poller, then the worker."""
        self.poller.stop()
        self.worker.stop()
