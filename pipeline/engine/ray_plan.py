"""Turns the stages into one streaming Ray Data plan over every pending shard.

read shards -> the run's stage list (decode, split by task, recipes, gates, judge, shard writer)
The driver only iterates the writer's small progress rows; it never holds the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from pipeline.core import schema
from pipeline.core.run_dir import RunDir
from pipeline.core.stage import Row, Stage
from pipeline.engine.engine_stages import SplitByTask, WriteShards
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


def start_rows(run_root: str, shard: int) -> list[Row]:
    return [input_row(record, shard) for record in RunDir(Path(run_root)).read_shard_inputs(shard)]


ROW_SIZED_BLOCKS = 1  # bytes: any row is larger, so each output block holds one row
SHARD_SIZED_BLOCKS = 128 * 1024 * 1024  # Ray Data's default: a shard's rows stay in one block


def _shard_rows(run_root: str):
    """A shard's inputs as rows, one table per row (so one block per input)."""

    def rows(table: pa.Table):
        for shard in table.column("shard").to_pylist():
            for row in start_rows(run_root, shard):
                yield schema.rows_to_table([row])

    return rows


def _table_fn(step: Callable[[list[Row]], list[Row]]) -> Callable[[pa.Table], pa.Table]:
    def apply(table: pa.Table) -> pa.Table:
        return schema.rows_to_table(step(table.to_pylist()))

    return apply


class StageActor:
    """A model stage in a fixed-size actor pool: the model is loaded once per actor."""

    def __init__(self, stage: Stage):
        import ray

        self.stage = stage
        self.node = ray.get_runtime_context().get_node_id()
        stage.setup()

    def __call__(self, table: pa.Table) -> pa.Table:
        return schema.rows_to_table(run_stage(self.stage, table.to_pylist(), node=self.node))


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
    def __init__(self, run_root: str, units_per_shard: dict[int, int]):
        self.writer = ShardWriter(run_root, units_per_shard)

    def __call__(self, table: pa.Table) -> pa.Table:
        progress = self.writer.add(table.to_pylist())
        return pa.Table.from_pylist(progress, schema=PROGRESS_SCHEMA)


def task_cpus(stage: Stage, row_blocks: bool, free_cpus: float = 1.0) -> float:
    """What one task of a light stage holds. With row-sized blocks a shard's rows become many
    small tasks; at fractional CPUs Ray would run ten of them per core, each in its own worker
    process, and the processes would fight over the cores. A whole core each keeps one task per
    core, with every core busy."""
    if not row_blocks:
        return stage.resources.num_cpus
    return max(stage.resources.num_cpus, min(1.0, free_cpus))  # a machine with less than a core free still runs


def apply_stage(ds, stage: Stage, default_batch: int, row_blocks: bool = False, free_cpus: float = 1.0):
    from ray.data import ActorPoolStrategy

    res = stage.resources
    if stage.uses_model:
        return ds.map_batches(
            StageActor,
            fn_constructor_args=(stage,),
            batch_format="pyarrow",
            batch_size=res.batch_size,
            num_cpus=res.num_cpus,
            num_gpus=res.num_gpus or None,
            compute=ActorPoolStrategy(size=res.concurrency),
        )
    return ds.map_batches(
        _table_fn(_LazySetup(stage)),
        batch_format="pyarrow",
        batch_size=res.batch_size or default_batch,
        num_cpus=task_cpus(stage, row_blocks, free_cpus),
    )


def build_dataset(
    run_root: str, shards: list[int], units_per_shard: dict[int, int], stages: list[Stage], cfg: dict[str, Any], free_cpus: float = 1.0
):
    """`stages` is the run's whole list (`stage_list.build_stage_list`), shard writer last;
    `free_cpus` is what the actor pools leave for the light stages' tasks."""
    import ray.data
    from ray.data import ActorPoolStrategy

    batch = cfg["run"]["batch_size"]
    # Ray Data gives each block (or bundle of blocks up to a stage's batch_size) to one task. With
    # run.row_blocks every output is split into one-row blocks, so every operator can spread a
    # shard's rows over the cores; measured so far it costs more in per-block overhead than it
    # gains on 2 cores (docs/bench/naive_vs_streaming.json), so one block per shard is the default.
    context = ray.data.DataContext.get_current()
    context.target_max_block_size = ROW_SIZED_BLOCKS if cfg["run"]["row_blocks"] else SHARD_SIZED_BLOCKS
    ds = ray.data.from_items([{"shard": s} for s in shards], override_num_blocks=max(1, len(shards)))
    ds = ds.map_batches(_shard_rows(run_root), batch_format="pyarrow", batch_size=1, num_cpus=0.1)
    for stage in stages:
        if isinstance(stage, SplitByTask):
            # it makes the units that the runner's per-unit bookkeeping starts from, so it runs bare
            ds = ds.map_batches(
                _table_fn(stage.process_batch), batch_format="pyarrow", batch_size=stage.resources.batch_size,
                num_cpus=task_cpus(stage, cfg["run"]["row_blocks"], free_cpus),
            )
        elif isinstance(stage, WriteShards):
            ds = ds.map_batches(
                WriterActor,
                fn_constructor_args=(run_root, units_per_shard),
                batch_format="pyarrow",
                batch_size=None,
                num_cpus=stage.resources.num_cpus,
                # one writer sees every row of a shard; shards commit as soon as they are whole
                compute=ActorPoolStrategy(size=1),
            )
        else:
            ds = apply_stage(ds, stage, batch, cfg["run"]["row_blocks"], free_cpus)
    return ds
