"""Best of N: each proposed edit is drawn N times, with N different seeds, and a pairwise judge
later keeps the best (filters/judge/pairwise_stage.py).

The copies are made right after a task's proposal step, in the same light step, so the step
sees every candidate of its input: a unit's row count is its candidates times N, whatever the
batching after. Copy 0 keeps the candidate's own sample id; copy k > 0 gets a stable id of its
own, and with it its own noise (the generators seed each row from its sample id). Every copy's
`edit` names its group (copy 0's sample id), its seed index and N. With N = 1 the stage is not
in the chain at all, so the rows are exactly what they were."""

from __future__ import annotations

import hashlib
from typing import Any

from pipeline.core import schema
from pipeline.core.rows import provenance
from pipeline.core.stage import Resources, Row, Stage

BEST_OF = "best_of"


def seed_sample_id(group: str, seed_index: int) -> str:
    """Copy 0 is the candidate itself; copy k > 0 has an id of its own, stable across runs."""
    if seed_index == 0:
        return group
    return hashlib.sha256(f"{group}|seed|{seed_index}".encode()).hexdigest()[:32]


def best_of(row: Row) -> dict[str, Any] | None:
    """The row's {"group", "seed_index", "n"}, or None for a row that is not one of N copies."""
    value = row.get("edit")
    if not value or BEST_OF not in value:  # cheap: most rows are not copies
        return None
    return schema.loads(value).get(BEST_OF)


class BestOfNStage(Stage):
    """N copies of each proposed candidate of one task, differing only in sample id."""

    name = "best_of_n"
    reads = ("sample_id", "edit", "_unit_rows", "provenance")
    writes = ("sample_id", "edit", "_unit_rows", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=8)

    def __init__(self, tasks: tuple[str, ...], n: int):
        if n < 2:
            raise ValueError(f"best of N needs N of at least 2, not {n}")
        self.tasks, self.n = tasks, int(n)

    def process_row(self, row: Row) -> list[Row]:
        group = row["sample_id"]
        edit = schema.loads(row.get("edit"))
        copies = []
        for k in range(self.n):
            copy = dict(row)
            copy["sample_id"] = seed_sample_id(group, k)
            copy["edit"] = schema.dumps({**edit, BEST_OF: {"group": group, "seed_index": k, "n": self.n}})
            # the unit now has N times the rows its proposal step counted
            copy["_unit_rows"] = int(row["_unit_rows"]) * self.n
            copy["provenance"] = _shared_timings(row, self.n)
            copies.append(copy)
        return copies


def _shared_timings(row: Row, copies: int) -> str:
    """Each copy carries 1/N of the stages before it, so summing over a task's rows counts each
    second once."""
    prov = provenance(row)
    for info in prov.get("stages", {}).values():
        for key in ("seconds", "cpu_seconds"):
            if key in info:
                info[key] = round(info[key] / copies, 6)
    return schema.dumps(prov)


def with_best_of_n(stages: list[Stage], task: str, n: int) -> list[Stage]:
    """The task's chain with the copies made right after its proposal step (the stage that fans
    out); unchanged for N = 1."""
    if n == 1:
        return stages
    at = next((i for i, stage in enumerate(stages) if stage.fans_out), None)
    if at is None or stages[at].uses_model:
        raise ValueError(f"{task} has no light proposal step to draw several seeds after")
    return [*stages[: at + 1], BestOfNStage((task,), n), *stages[at + 1 :]]
