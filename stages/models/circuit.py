"""A circuit breaker for a served model: after `limit` requests in a row have failed (each after
the client's own retries), the server is taken to be down and no more requests go out. Without
it a dead server costs every row its full retry budget and the run ends "successfully" with
every row unscored."""

from __future__ import annotations

import threading
from typing import Any

from pipeline.core.stage import StopRun


class CircuitOpen(StopRun):
    """The served model failed `limit` requests in a row: the stage stops instead of going on."""


class CircuitBreaker:
    def __init__(self, limit: int, what: str = "server"):
        self.limit, self.what = int(limit), what  # limit 0: never opens
        self.failures_in_a_row = 0
        self.last_reason: str | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # travels to Ray actors; a lock does not
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def open(self) -> bool:
        return self.limit > 0 and self.failures_in_a_row >= self.limit

    def record(self, ok: bool, reason: str | None = None) -> None:
        with self._lock:
            if ok:
                self.failures_in_a_row = 0
            else:
                self.failures_in_a_row += 1
                self.last_reason = reason

    def check(self) -> None:
        """Raise CircuitOpen when the limit has been reached."""
        if self.open:
            raise CircuitOpen(
                f"circuit open: the {self.what} failed {self.failures_in_a_row} requests in a row "
                f"(last: {self.last_reason}); stopped calling it"
            )
