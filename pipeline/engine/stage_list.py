"""A run's stages, top to bottom, built in one place: what every row passes through.

    decode -> split by task -> each task's recipe (merged: a model two tasks share is one pool)
    -> common gates -> model gates (seed profiles) -> judge -> write shards

`python -m pipeline stages` prints this list. The engine's own steps (the split and the shard
writer) are in it as stages too, so the list says everything, resources included."""

from __future__ import annotations

from typing import Any

from filters.common_gates import CommonGatesStage
from filters.judge.stage import make_judge_stage
from filters.model_gates import model_gate_stages
from pipeline.core import config as config_mod
from pipeline.core import schema
from pipeline.core.rows import mark
from pipeline.core.stage import Resources, Row, Stage
from pipeline.core.task_names import VIDEO_TASKS
from pipeline.engine.stage_merge import merge_task_stages
from stages.decode import DecodeLimits
from stages.decode_stage import DecodeStage
from tasks import build_stages


class SplitByTask(Stage):
    """Each input becomes one unit per task (the shard writer counts units); a video meets only
    the video tasks and a still image only the others: the rest are `skipped` here."""

    name = "split_by_task"
    reads = ("_input", "_shard", "status", "source_sha256?")
    writes = ("task", "sample_id", "_unit", "_unit_rows", "status", "reason")
    resources = Resources(num_cpus=0.25, batch_size=8)
    accepts = (schema.PENDING, *schema.FINAL_STATUSES)  # an input decode refused still leaves one row per task

    def __init__(self, tasks: list[str]):
        self.task_ids = list(tasks)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        out = []
        for row in rows:
            record = schema.loads(row["_input"])
            for task in self.task_ids:
                unit = dict(row)
                unit["task"] = task
                unit["_unit"] = f"{row['_shard']}:{record['index']}:{task}"
                unit["_unit_rows"] = 1
                unit["sample_id"] = schema.sample_id(row.get("source_sha256") or "", record["key"], task, -1)
                is_video = record.get("kind") == "video"
                if unit["status"] == schema.PENDING and is_video != (task in VIDEO_TASKS):
                    mark(unit, schema.SKIPPED, f"{task} takes {'videos' if task in VIDEO_TASKS else 'still images'}, this input is {'a video' if is_video else 'an image'}")
                out.append(unit)
        return out


class WriteShards(Stage):
    """The end of every row: one writer sees every row of a shard and commits the shard as soon
    as all its units are in (`pipeline.engine.shard_writer`)."""

    name = "write_shards"
    reads = (
        "_shard", "_unit", "_unit_rows", "sample_id", "task", "status", "provenance", "source_image?", "target_image?",
        "blob.depth?",
    )
    writes = ("status", "reason", "depth", "source_image", "target_image", "mask", "selected", "schema_version")
    accepts = (schema.PENDING, *schema.FINAL_STATUSES)

    def __init__(self, writer_cpus: float):
        self.resources = Resources(num_cpus=writer_cpus, batch_size=0, concurrency=1)


def task_stages(cfg: dict[str, Any]) -> list[Stage]:
    """The configured tasks' recipes, merged into one list."""
    return merge_task_stages([build_stages(task, cfg) for task in cfg["run"]["tasks"]])  # fails fast if a task is missing


def judge_stage(cfg: dict[str, Any]) -> Stage:
    try:
        return make_judge_stage(cfg)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from None


def build_stage_list(cfg: dict[str, Any], recipes: list[Stage] | None = None) -> list[Stage]:
    """Every stage of a run in order. `recipes` replaces the tasks' merged recipes, for library
    use and tests that run a chain of their own."""
    return [
        DecodeStage(DecodeLimits(**cfg["decode"])),
        SplitByTask(cfg["run"]["tasks"]),
        *(task_stages(cfg) if recipes is None else recipes),
        CommonGatesStage.from_config(cfg),
        *model_gate_stages(cfg),
        judge_stage(cfg),
        WriteShards(cfg["ray"]["writer_cpus"]),
    ]


def describe(stages: list[Stage]) -> list[dict[str, Any]]:
    """One line's worth per stage, for `pipeline stages` and the run's stats."""
    rows = []
    for i, stage in enumerate(stages):
        res = stage.resources
        pool = "actor pool" if stage.uses_model or isinstance(stage, WriteShards) else "tasks"
        rows.append(
            {
                "step": i + 1,
                "stage": stage.name,
                "class": type(stage).__name__,
                "tasks": list(stage.tasks) if stage.tasks is not None else "all",
                "runs_as": pool,
                "num_cpus": res.num_cpus,
                "num_gpus": res.num_gpus,
                "batch_size": res.batch_size,
                "concurrency": res.concurrency if pool == "actor pool" else None,
                "loads": list(stage.loads),
            }
        )
    return rows
