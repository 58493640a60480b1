"""Stages whose rows must meet: the N copies of one best-of-N edit travel through the model
stages in whatever batches Ray Data makes, and the pairwise judge needs all N at once.

Such a stage declares `group_phase` ("gather", or "rejoin" for its partner later in the list,
which shares its state). Its pool is a few actors, each holding a copy of the gather stage (and so
the judge's model, when in process); a light step sends each row that names a group to the actor
`group mod actors` (a stable hash, the same in every worker) and gets back the rows that are ready:
a row may come back in a later call, with the row that completed its group. Rows without a group
pass by. Like the shard writers, the actors are called directly, not through Ray Data."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

from pipeline.core.stage import Row, Stage
from pipeline.engine.stage_runner import run_stage
from stages.best_of_n import best_of

GATHER, REJOIN = "gather", "rejoin"


def actor_of(group: str, actors: int) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % actors


class GroupActor:
    """One of a gathering stage's actors: the stage's state (held rows, decisions) lives here."""

    def __init__(self, stage: Stage):
        import ray

        self.stages = {GATHER: stage, REJOIN: stage.rejoin}  # one object: the rejoin sees the gather's state
        self.node = ray.get_runtime_context().get_node_id()
        stage.setup()

    def run(self, phase: str, rows: list[Row]) -> list[Row]:
        return run_stage(self.stages[phase], rows, node=self.node)


def start_group_actors(stages: list[Stage]) -> dict[int, list]:
    """The actors of every gathering stage in the list, by id of the state the stage shares with
    its rejoin (`groups`)."""
    import ray

    pools: dict[int, list] = {}
    for stage in stages:
        if getattr(stage, "group_phase", None) != GATHER:
            continue
        res = stage.resources
        remote = ray.remote(num_cpus=res.num_cpus, num_gpus=res.num_gpus or None, max_restarts=0)(GroupActor)
        pools[id(stage.groups)] = [remote.remote(stage) for _ in range(max(1, res.concurrency))]
    return pools


class GroupRoute:
    """A light step: rows of a group to their actor, the ready rows back; the others pass."""

    def __init__(self, actors: list, phase: str):
        self.actors, self.phase = actors, phase

    def __call__(self, rows: list[Row]) -> list[Row]:
        import ray

        parts: dict[int, list[Row]] = defaultdict(list)
        out: list[Row] = []
        for row in rows:
            info = best_of(row)
            if info is None:
                out.append(row)
            else:
                parts[actor_of(str(info["group"]), len(self.actors))].append(row)
        replies = ray.get([self.actors[i].run.remote(self.phase, part) for i, part in sorted(parts.items())])
        return out + [row for reply in replies for row in reply]


def group_pools(stages: list[Stage]) -> list[Any]:
    """Every gathering stage in the list (for the resource check)."""
    return [s for s in stages if getattr(s, "group_phase", None) == GATHER]
