"""The plan listed in a background thread, and its shards fed to the run as their plan files land.

`BackgroundPlan` runs the listing (`RunDir.write_plan` over the input's records) in a thread and
says how many inputs the written plan files hold. `ShardFeed`, once Ray is up, tells the shard
writers about each new file's shards and then publishes them to the ticket tasks
(`shard_tickets.py`), in that order, so no row reaches a writer that does not know its shard."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable


class ListingCancelled(Exception):
    """The run stopped before its listing ended."""


class BackgroundPlan:
    """`plan_fn(on_file=, keep_going=)` lists and writes the plan and returns plan.json's content;
    it calls `on_file(inputs written, shard_size)` after each plan file and `keep_going()`
    between records."""

    def __init__(self, plan_fn: Callable[..., dict[str, Any]]):
        self.plan_fn = plan_fn
        self.listed = 0  # inputs in the plan files written so far
        self.shard_size: int | None = None
        self.plan: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.seconds: float | None = None  # the listing's duration, once it ended
        self.ended_at: float | None = None  # wall clock
        self._news = threading.Condition()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name="plan-listing", daemon=True)

    def start(self) -> "BackgroundPlan":
        self._thread.start()
        return self

    def _work(self) -> None:
        start = time.perf_counter()
        try:
            plan = self.plan_fn(on_file=self._on_file, keep_going=self._keep_going)
            with self._news:
                self.plan = plan
        except BaseException as exc:  # handed to the main thread, which raises it
            with self._news:
                self.error = exc
        finally:
            with self._news:
                self.seconds, self.ended_at = round(time.perf_counter() - start, 2), time.time()
                self._news.notify_all()

    def _on_file(self, inputs: int, shard_size: int) -> None:
        with self._news:
            self.listed, self.shard_size = inputs, shard_size
            self._news.notify_all()

    def _keep_going(self) -> None:
        if self._cancel.is_set():
            raise ListingCancelled("the run stopped before the listing ended")

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    def wait(self, beyond: int, timeout: float | None = None) -> tuple[int, bool]:
        """(inputs listed, finished) once more than `beyond` inputs are in plan files or the
        listing ended (or `timeout` passed)."""
        with self._news:
            self._news.wait_for(lambda: self.listed > beyond or self.finished, timeout)
            return self.listed, self.finished

    def finish_within(self, seconds: float) -> bool:
        """Whether the listing ended, waiting up to `seconds` for it."""
        with self._news:
            return self._news.wait_for(lambda: self.finished, seconds)

    def result(self) -> dict[str, Any]:
        """plan.json's content, once the listing ended; its error if it failed."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.plan is not None
        return self.plan

    def cancel(self) -> None:
        """Stop listing (the run failed): no plan file is written after this returns."""
        self._cancel.set()
        self._thread.join()


class ShardFeed:
    """A thread: each batch of shards the listing adds is told to the writers, then published
    to the ticket tasks; when the listing ends (or fails) the tickets are told it is over."""

    def __init__(self, background: BackgroundPlan, tell_writers: Callable[[dict[int, int]], None], planned, committed: set[int], tasks: int):
        self.background = background
        self.tell_writers = tell_writers
        self.planned = planned  # the shard_tickets.PlannedShards actor
        self.committed = committed
        self.tasks = tasks
        self.units = 0  # (input, task) units of the pending shards told so far: the progress bar's total
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="shard-feed", daemon=True)

    def start(self) -> "ShardFeed":
        self._thread.start()
        return self

    def _work(self) -> None:
        told = listed = 0
        try:
            finished = False
            while not finished:
                listed, finished = self.background.wait(listed)
                size = self.background.shard_size
                shards = -(-listed // size) if size else 0
                units = {s: min(size, listed - s * size) * self.tasks for s in range(told, shards) if s not in self.committed}
                if units:
                    self.tell_writers(units)
                    self.units += sum(units.values())
                told = shards
                self.planned.publish.remote(told, False)
        except BaseException as exc:  # a writer gone: the tickets still end below
            self.error = exc
        finally:
            import ray

            with contextlib.suppress(Exception):  # Ray already gone: the run has ended anyway
                ray.get(self.planned.publish.remote(told, True))

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error
