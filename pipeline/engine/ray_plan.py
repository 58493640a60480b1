"""Turns the stages into one streaming Ray Data plan over every pending shard.

shards -> the run's stage list (read the shard's inputs, decode, split by task, recipes, gates,
judge, PNG encode) -> hand each row to its shard's writer actor
The driver only iterates the writers' small progress rows; it never holds the data.

Parallelism is by shard, and `run.shard_size: auto` makes shards of one input on runs of up to 64
inputs and at least 64 shards on larger ones. Each shard is one block; the light stages between
two model stages run as one function in one Ray task per block (the block is converted to rows and
back once, not once per stage; the first such function also reads the shard's input list), and
each task holds a whole slot of a core, so every core works on a shard of its own and rows cross
the object store only at model stages (actor pools that batch rows from many blocks) and at the
writers. There is no split into smaller blocks after the read: a task that yields many blocks is
paced by Ray Data's streaming-generator backpressure (about 0.1 s a block, measured: 1000 one-row
blocks took 110 s to leave one task)."""

from __future__ import annotations

import math
from collections import defaultdict
from functools import partial
from typing import Any, Callable

import pyarrow as pa

from pipeline.core import schema
from pipeline.core.run_dir import RunDir
from pipeline.core.stage import Row, Stage
from pipeline.engine.engine_stages import SplitByTask, WriteShards
from pipeline.engine.group_actors import GroupRoute
from pipeline.engine.shard_writer import PROGRESS_SCHEMA, ShardWriter
from pipeline.engine.stage_runner import run_stage


def input_row(record: dict[str, Any], shard: int) -> Row:
    """The row an input record starts as, before decode."""
    return {
        "sample_id": "",
        "task": "",
        "status": schema.PENDING,
        "source_uri": record["uri"],
        "license": record.get("license"),
        "_shard": shard,
        "_input": schema.dumps(record),
    }


def start_rows(run: RunDir, shard: int) -> list[Row]:
    return [input_row(record, shard) for record in run.read_shard_inputs(shard)]


def read_shard(rows: list[Row], run: RunDir) -> list[Row]:
    """The first step of the plan: a block of shard numbers becomes those shards' input rows."""
    return [row for item in rows for row in start_rows(run, int(item["shard"]))]


class StageActor:
    """A model stage in a fixed-size actor pool: the model is loaded once per actor."""

    def __init__(self, stage: Stage):
        import ray

        self.stage = stage
        self.node = ray.get_runtime_context().get_node_id()
        stage.setup()

    def __call__(self, table: pa.Table) -> pa.Table:
        return schema.rows_to_table(run_stage(self.stage, table.to_pylist(), node=self.node))


class _LightChain:
    """Consecutive light stages as one function over a block: the block becomes rows once and a
    table once, not once per stage (a row carries megabytes of pictures at 1024 px). With `route`
    the chain ends at the writers and returns their progress rows."""

    def __init__(self, steps: list[Callable[[list[Row]], list[Row]]], route: Callable[[list[Row]], pa.Table] | None = None):
        self.steps = steps
        self.route = route

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = table.to_pylist()
        for step in self.steps:
            rows = step(rows)
        return self.route(rows) if self.route else schema.rows_to_table(rows)


class _LazySetup:
    """A light stage as a plain function: set up once per worker process, on first use."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.ready = False

    def __call__(self, rows: list[Row]) -> list[Row]:
        if not self.ready:
            self.stage.setup()
            self.ready = True
        return run_stage(self.stage, rows)


class WriterActor:
    """One of the run's shard writers: it is given every row of the shards `writer_of` assigns it."""

    def __init__(self, run: RunDir, units_per_shard: dict[int, int]):
        self.writer = ShardWriter(run, units_per_shard)

    def add(self, rows: list[Row]) -> list[dict[str, Any]]:
        return self.writer.add(rows)

    def expect(self, units_per_shard: dict[int, int]) -> None:
        self.writer.expect(units_per_shard)


def writer_of(shard: int, writers: int) -> int:
    """Consecutive shards go to different writers, so the first commits come from all of them."""
    return shard % writers


def start_writers(run: RunDir, units_per_shard: dict[int, int], count: int, cpus: float) -> list:
    import ray

    remote = ray.remote(num_cpus=cpus, max_restarts=0)(WriterActor)
    return [remote.remote(run, shards_of_writer(units_per_shard, i, count)) for i in range(count)]


def shards_of_writer(units_per_shard: dict[int, int], writer: int, writers: int) -> dict[int, int]:
    return {s: u for s, u in units_per_shard.items() if writer_of(s, writers) == writer}


def tell_writers(writers: list, units_per_shard: dict[int, int]) -> None:
    """Shards planned after the writers started; returns once every writer knows its own."""
    import ray

    ray.get([w.expect.remote(shards_of_writer(units_per_shard, i, len(writers))) for i, w in enumerate(writers)])


class _Route:
    """The last step of each task: hand its rows to their shards' writers and return what they
    report (units done, commits) to the driver."""

    def __init__(self, writers: list):
        self.writers = writers

    def __call__(self, rows: list[Row]) -> pa.Table:
        import ray

        parts: dict[int, list[Row]] = defaultdict(list)
        for row in rows:
            parts[writer_of(int(row["_shard"]), len(self.writers))].append(row)
        reports = ray.get([self.writers[i].add.remote(part) for i, part in sorted(parts.items())])
        return pa.Table.from_pylist([entry for report in reports for entry in report], schema=PROGRESS_SCHEMA)


def light_task_cpus(free_cpus: float) -> float:
    """What one task of the light stages holds: the CPUs the actor pools leave, cut into whole
    slots (1.75 free: two tasks of 0.875), so every core runs one task and no more. At the
    stages' fractional defaults Ray would start several worker processes per core, and they would
    fight over it."""
    slots = max(1, int(free_cpus + 0.5))
    # rounded down to 1/100: Ray counts resources in fixed point, and a share a hair over what is
    # free (2 - 1.3 is 0.7000000000000002 in floats) would never be scheduled
    return math.floor(free_cpus / slots * 100) / 100


def _model_stage(ds, stage: Stage):
    from ray.data import ActorPoolStrategy

    res = stage.resources
    return ds.map_batches(
        StageActor,
        fn_constructor_args=(stage,),
        batch_format="pyarrow",
        batch_size=res.batch_size,
        num_cpus=res.num_cpus,
        num_gpus=res.num_gpus or None,
        compute=ActorPoolStrategy(size=res.concurrency),
    )


def _light_chain(ds, chain: _LightChain, cpus: float):
    # batch_size None: one task per block (a shard's rows), never waiting to fill a batch
    return ds.map_batches(chain, batch_format="pyarrow", batch_size=None, num_cpus=cpus)


def _light_step(stage: Stage) -> Callable[[list[Row]], list[Row]]:
    # the split makes the units the writer's bookkeeping starts from, so it runs bare
    return stage.process_batch if isinstance(stage, SplitByTask) else _LazySetup(stage)


def build_dataset(run: RunDir, shards, stages: list[Stage], writers: list, free_cpus: float, group_actors: dict[int, list] | None = None):
    """`shards` is the list of shards to run, or a Dataset of `{"shard": n}` rows, one a block
    (`shard_tickets.ticket_dataset`: shards handed over while the listing goes on);
    `stages` is the run's whole list (`stage_list.build_stage_list`), shard writer last;
    `writers` are the `start_writers` actors; `free_cpus` is what the actor pools leave for the
    light stages' tasks; `group_actors` are the `group_actors.start_group_actors` pools of the
    stages whose rows must meet (best of N)."""
    import ray.data

    light_cpus = light_task_cpus(free_cpus)
    # Ray Data sets aside a share of the CPUs for every operator; on a small machine that leaves
    # the light stages' task one slot where there are two (measured: 1.1 busy cores of 2 with it,
    # 1.5 without). The actor pools are sized by the plan.
    ray.data.DataContext.get_current().op_resource_reservation_enabled = False
    if isinstance(shards, list):
        ds = ray.data.from_items([{"shard": s} for s in shards], override_num_blocks=len(shards))
    else:
        ds = shards
    # light stages since the last model stage; the first chain starts by reading its shard
    steps: list[Callable[[list[Row]], list[Row]]] = [partial(read_shard, run=run)]
    for stage in stages:
        if isinstance(stage, WriteShards):
            ds = _light_chain(ds, _LightChain(steps, _Route(writers)), light_cpus)
        elif getattr(stage, "group_phase", None):  # a light step that calls the group's actors
            steps.append(GroupRoute((group_actors or {})[id(stage.groups)], stage.group_phase))
            continue
        elif stage.uses_model:
            if steps:
                ds = _light_chain(ds, _LightChain(steps), light_cpus)
            ds = _model_stage(ds, stage)
        else:
            steps.append(_light_step(stage))
            continue
        steps = []
    return ds
