"""What a DeviceWorker sends to the aggregator, coalesced into few Ray calls.

A tiny job makes a dozen records and progress updates; one Ray call each costs about a millisecond
of the worker's time, more than the job's own host work. The outbox keeps them in order and sends
them together: at once when a job's ``jobs`` row arrives (the job's records land with it), and
otherwise as soon as ``interval_s`` has passed since the last send (a long job still streams its
trials batch by batch).
"""

from __future__ import annotations

import time
from typing import Any, Callable

Send = Callable[[list[tuple[str, list[dict[str, Any]]]], dict[str, Any] | None], None]


class Outbox:
    """Buffers record batches (``add``) and progress (``progress``) for one sender.

    Contract: batches reach ``send`` in the order they were added, never split or reordered; a
    ``jobs`` batch is sent before ``add`` returns, with everything added before it; progress
    dicts are merged (later keys win) and travel with the next send; ``flush()`` sends whatever
    is pending. ``send(batches, progress)`` is called only when there is something to send."""

    def __init__(self, send: Send, *, interval_s: float = 0.25, clock: Callable[[], float] = time.monotonic):
        self._send, self.interval_s, self._clock = send, interval_s, clock
        self._batches: list[tuple[str, list[dict[str, Any]]]] = []
        self._progress: dict[str, Any] | None = None
        self._last = clock()

    def add(self, table: str, rows: list[dict[str, Any]]) -> None:
        self._batches.append((table, rows))
        if table == "jobs":
            self.flush()
        else:
            self._maybe_send()

    def progress(self, info: dict[str, Any]) -> None:
        self._progress = {**(self._progress or {}), **info}
        self._maybe_send()

    def _maybe_send(self) -> None:
        if self._clock() - self._last >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        batches, progress = self._batches, self._progress
        self._batches, self._progress = [], None
        self._last = self._clock()
        if batches or progress:
            self._send(batches, progress)
