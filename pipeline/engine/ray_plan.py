"""Turns the stages into one streaming Ray Data plan over every pending shard.

read shards -> decode -> one row per task -> each task's stages -> shard writer (one actor)
The driver only iterates the writer's small progress rows; it never holds the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa

from pipeline.core import schema
from pipeline.core.run_dir import RunDir
from pipeline.core.stage import Row, Stage
from pipeline.core.task_names import VIDEO_TASKS
from pipeline.engine.shard_writer import PROGRESS_SCHEMA, ShardWriter
from pipeline.engine.stage_runner import run_stage


def start_rows(run_root: str, shard: int) -> list[Row]:
    rows = []
    for record in RunDir(Path(run_root)).read_shard_inputs(shard):
        rows.append(
            {
                "sample_id": "",
                "task": "",
                "status": schema.PENDING,
                "source_uri": record["uri"],
                "license": record.get("license"),
                "_shard": shard,
                "_input": schema.dumps(record),
            }
        )
    return rows


def split_by_task(rows: Iterable[Row], tasks: list[str]) -> list[Row]:
    """Each input becomes one unit per task; the shard writer counts units."""
    out = []
    for row in rows:
        record = schema.loads(row["_input"])
        for task in tasks:
            unit = dict(row)
            unit["task"] = task
            unit["_unit"] = f"{row['_shard']}:{record['index']}:{task}"
            unit["_unit_rows"] = 1
            unit["sample_id"] = schema.sample_id(row.get("source_sha256") or "", record["key"], task, -1)
            is_video = record.get("kind") == "video"
            if unit["status"] == schema.PENDING and is_video != (task in VIDEO_TASKS):
                unit["status"] = schema.SKIPPED
                unit["reason"] = f"{task} takes {'videos' if task in VIDEO_TASKS else 'still images'}, this input is {'a video' if is_video else 'an image'}"
            out.append(unit)
    return out


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


def apply_stage(ds, stage: Stage, default_batch: int):
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
        num_cpus=res.num_cpus,
    )


def build_dataset(run_root: str, shards: list[int], units_per_shard: dict[int, int], tasks: list[str], decode: Stage, task_stages: list[Stage], cfg: dict[str, Any]):
    import ray.data
    from ray.data import ActorPoolStrategy

    batch = cfg["run"]["batch_size"]
    ds = ray.data.from_items([{"shard": s} for s in shards], override_num_blocks=max(1, len(shards)))
    ds = ds.map_batches(
        lambda t: schema.rows_to_table([r for s in t.column("shard").to_pylist() for r in start_rows(run_root, s)]),
        batch_format="pyarrow",
        batch_size=1,
        num_cpus=0.1,
    )
    decode_step = _LazySetup(decode)
    ds = ds.map_batches(
        _table_fn(lambda rows: split_by_task(decode_step(rows), tasks)),
        batch_format="pyarrow",
        batch_size=decode.resources.batch_size,
        num_cpus=decode.resources.num_cpus,
    )
    for stage in task_stages:
        ds = apply_stage(ds, stage, batch)
    return ds.map_batches(
        WriterActor,
        fn_constructor_args=(run_root, units_per_shard),
        batch_format="pyarrow",
        batch_size=None,
        num_cpus=cfg["ray"]["writer_cpus"],
        # one writer sees every row of a shard; shards commit as soon as they are whole
        compute=ActorPoolStrategy(size=1),
    )
