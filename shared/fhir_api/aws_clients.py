"""The AWS clients the functions call (DynamoDB, Secrets Manager, EventBridge, SQS), made by botocore.

The functions use low-level clients only. boto3 would make the same clients through the same botocore
session, and add what nothing here uses (resources, the S3 transfer manager); importing it costs every
cold start about 20 ms (decision 0029). Every client gets the same retry and timeout policy: three
tries in all, then the caller answers 503 with Retry-After and the client decides when to come back.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_session: Any = None


def client(service: str, region: str, *, endpoint_url: str | None = None, pool_size: int = 10) -> Any:
    """A new low-level client of ``service`` (callers keep the one they need per process)."""
    global _session
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 3, "mode": "standard"},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=pool_size,
    )
    # A botocore session is not safe to share across threads while it makes clients (the local
    # stack runs functions on threads), so one is made and used under the lock.
    with _lock:
        if _session is None:
            import botocore.session

            _session = botocore.session.get_session()
        return _session.create_client(service, region_name=region, endpoint_url=endpoint_url, config=config)
