"""A run's stages, top to bottom, built in one place: what every row passes through.

    decode -> split by task -> each task's recipe (merged: a model two tasks share is one pool)
    -> common gates -> model gates (seed profiles) -> [pairwise judge] -> captioner -> [pairwise
    rejoin] -> judge -> PNG encode -> write shards

The pairwise judge and its rejoin are there only when a task draws several seeds
(`tasks.<task>.seeds` > 1).

`python -m pipeline stages` prints this list. The engine's own steps (the split and the shard
writer) are in it as stages too, so the list says everything, resources included."""

from __future__ import annotations

from typing import Any

from filters.caption.stage import make_caption_stage
from filters.common_gates import CommonGatesStage
from filters.judge.pairwise_stage import make_pairwise_stage
from filters.judge.stage import make_judge_stage
from filters.model_gates import model_gate_stages
from pipeline.core import config as config_mod
from pipeline.core.stage import Stage
from pipeline.engine.engine_stages import EncodePng, SplitByTask, WriteShards
from pipeline.engine.stage_merge import merge_task_stages
from stages.decode import DecodeLimits
from stages.decode_stage import DecodeStage
from tasks import build_stages, seeds_of


def task_stages(cfg: dict[str, Any]) -> list[Stage]:
    """The configured tasks' recipes, merged into one list."""
    return merge_task_stages([build_stages(task, cfg) for task in cfg["run"]["tasks"]])  # fails fast if a task is missing


def judge_stage(cfg: dict[str, Any]) -> Stage:
    try:
        return make_judge_stage(cfg)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from None


def caption_stage(cfg: dict[str, Any]) -> Stage:
    """After every gate, so no model time goes to rows the gates rejected; before the judge, which
    judges the instruction the captioner wrote."""
    try:
        return make_caption_stage(cfg)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from None


def pairwise_stages(cfg: dict[str, Any]) -> tuple[list[Stage], list[Stage]]:
    """Best of N: the pairwise judge (after the gates, so only passing targets compete) and, after
    the captioner, the step that gives the losers the winner's instruction. None without seeds."""
    tasks = [t for t in cfg["run"]["tasks"] if seeds_of(t, cfg) > 1]
    if not tasks:
        return [], []
    try:
        stage = make_pairwise_stage(cfg, tasks)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc)) from None
    return [stage], [stage.rejoin]


def build_stage_list(cfg: dict[str, Any], recipes: list[Stage] | None = None) -> list[Stage]:
    """Every stage of a run in order. `recipes` replaces the tasks' merged recipes, for library
    use and tests that run a chain of their own. With `gpu.auto_pools` (the gpu profile) the
    model stages' actor counts and GPU shares are the pool plan's (`gpu_plan.apply_pool_plan`)
    for gpu.nodes x gpu.gpus_per_node GPUs, not model_stages.*.concurrency and num_gpus."""
    pairwise, rejoin = pairwise_stages(cfg)
    stages = [
        DecodeStage(DecodeLimits(**cfg["decode"]), cfg.get("io")),
        SplitByTask(cfg["run"]["tasks"]),
        *(task_stages(cfg) if recipes is None else recipes),
        CommonGatesStage.from_config(cfg),
        *model_gate_stages(cfg),
        *pairwise,
        caption_stage(cfg),
        *rejoin,
        judge_stage(cfg),
        EncodePng(),
        WriteShards(cfg["ray"]["writer_cpus"], cfg["ray"]["writers"]),
    ]
    if cfg.get("gpu", {}).get("auto_pools"):  # a run folder's config from before the key has none
        from pipeline.engine.gpu_plan import (
            apply_pool_plan,  # imports the model adapters (torch)
        )

        apply_pool_plan(stages, cfg)
    return stages


def describe(stages: list[Stage]) -> list[dict[str, Any]]:
    """One line's worth per stage, for `pipeline stages` and the run's stats."""
    rows = []
    for i, stage in enumerate(stages):
        res = stage.resources
        pool = "actor pool" if stage.uses_model or isinstance(stage, WriteShards) or getattr(stage, "group_phase", None) == "gather" else "tasks"
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
