"""The read budget of one request: how many DynamoDB items (index entries and resources) it may read.

The service makes one per search or history request (``SEARCH_READ_BUDGET``) and hands it to every
read the request makes; the store never sends a read that could take more than is left (a Query's
``Limit``, a BatchGetItem's keys) and charges what DynamoDB read. Whoever plans the reads keeps some
back: ``hold`` sets aside items for resources still to be fetched, so that reading the index cannot
spend what those fetches need.
"""

from __future__ import annotations

import threading

from fhir_api import errors


class ReadBudget:
    """Items a request may still read; shared by the threads that read its partitions."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.held = 0
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        """Items not yet read (held ones included)."""
        return self.limit - self.used

    @property
    def free(self) -> int:
        """Items neither read nor held for a pending fetch."""
        return self.limit - self.used - self.held

    def hold(self, items: int) -> None:
        """Set ``items`` aside for a fetch to come."""
        with self._lock:
            self.held += items

    def release(self, items: int) -> None:
        """Give back items held (just before the fetch they were held for)."""
        with self._lock:
            self.held -= items

    def check(self, items: int) -> None:
        """Refuse a read that could take more than is left: a backstop, the planner stays within."""
        if items > self.left:
            raise errors.SearchTooCostly(
                f"This request would read more than {self.limit} items from the database; narrow it "
                "(subject, status or date)."
            )

    def charge(self, items: int) -> None:
        """Count ``items`` read."""
        with self._lock:
            self.used += items
