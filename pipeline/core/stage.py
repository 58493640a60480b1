"""The stage contract: a small class, sized where it is declared, testable without Ray."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class Resources:
    num_cpus: float = 0.25  # fractions let light stages share a core
    num_gpus: float = 0.0
    batch_size: int = 4
    concurrency: int = 1  # actors in the pool, for model stages


class Stage:
    """One operation on rows. `setup` loads what is expensive once per worker; `process_batch`
    maps rows to rows. A stage raises on a row it cannot handle; the runner turns that into an
    `error` row and keeps the rest of the batch."""

    name: str = "stage"
    resources: Resources = Resources()
    uses_model: bool = False  # run as a fixed-size actor pool that keeps its model loaded
    fans_out: bool = False  # one row in, any number out: the task's proposal step
    tasks: tuple[str, ...] | None = None  # rows of these tasks only; None: every task
    # rows in these states reach the stage; gates and judges after a task's own gate also see
    # rows that already have a verdict
    accepts: tuple[str, ...] = ("pending",)

    def setup(self) -> None:
        pass

    def process_batch(self, rows: list[Row]) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            result = self.process_row(row)
            out.extend(result if isinstance(result, list) else [result])
        return out

    def process_row(self, row: Row) -> Row | list[Row]:
        raise NotImplementedError(f"{type(self).__name__} implements neither process_batch nor process_row")
