"""The pool plan: how many actors each model stage of a run gets and what share of a GPU each
holds, from three tables and nothing loaded. `python -m pipeline plan` prints it; with
`gpu.auto_pools` (the gpu profile) `stage_list.build_stage_list` gives the stages its numbers.

- The run's stage list: its actor pools, in order. A model two tasks share with the same settings
  is one pool, but the same weights can be two pools (Florence-2 grounding and OCR, Qwen2.5-VL
  choosing and describing, SigLIP tags at two points of the list), and each pool holds its GPUs.
- The registry (configs/models.yaml): an actor's memory is its weights plus each loaded family's
  activations times the batch, with `gpu.activation_margin` on top. SD3.5's base is counted in
  every ControlNet actor: the depth and canny pools each load it.
- The cost table and the traffic (plan_tables.py): GPU-seconds per row of each stage, and rows
  per input of each task that reach each pool.

This module builds the pools from a stage list and is the entry the rest of the code imports
(the names below in __all__ stay importable from here); the throughput model and the sizing are
in pool_sizing.py, the printed table in plan_format.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from filters.model_gates import MODEL_GATES
from pipeline.core import models
from pipeline.core.config import ConfigError
from pipeline.core.stage import ModelStage, Stage
from pipeline.engine.plan_format import format_plan
from pipeline.engine.plan_tables import (
    Cost,
    evaluate,
    input_shares,
    load_costs,
    load_traffic,
    shown,
    table_path,
    traffic,
)
from pipeline.engine.pool_sizing import (
    MILLI,
    Pool,
    PoolPlan,
    auto_share,
    size_auto,
    size_fixed,
    size_pools,
)
from stages.models.factory import MODEL_STAGES

__all__ = [
    "MILLI", "Cost", "Pool", "PoolPlan", "apply_pool_plan", "auto_share", "cost_key", "evaluate", "format_plan",
    "input_shares", "load_costs", "load_traffic", "model_stage_classes", "plan_pools", "shown", "size_pools",
    "stages_for", "table_path", "traffic",
]

BYTES_PER_PARAM = {"bfloat16": 2, "float16": 2, "float32": 4}
SD3_BASE = "sd3_5"


def model_stage_classes() -> dict[str, type[ModelStage]]:
    """Every model stage a run can place, by the registry family it is named for."""
    return {**MODEL_STAGES, **MODEL_GATES}


def stages_for(tasks: list[str]) -> list[str]:
    entries = models.registry()
    return [family for family in model_stage_classes() if any(t in entries[family].tasks for t in tasks)]


def cost_key(stage: Stage) -> str:
    """A family's own stage class is costed under the family; another class over the same weights
    (Florence-2 OCR, Qwen2.5-VL describing motion) or a pool that is no model stage (the judge)
    under its stage name."""
    model = getattr(type(stage), "model", None)
    if model is not None and model_stage_classes().get(model.family) is type(stage):
        return model.family
    return stage.name


def _labels(stages: list[Stage], indexes: list[int]) -> dict[int, str]:
    """The stage's name; with its family where pools of one name load different weights (the
    depth and canny ControlNets); then #2, #3 for the same model at two points of the list."""
    names: dict[int, str] = {}
    for i in indexes:
        stage = stages[i]
        same_name = [stages[j] for j in indexes if stages[j].name == stage.name]
        differ = len({tuple(s.loads) for s in same_name}) > 1
        names[i] = f"{stage.name}:{stage.loads[-1]}" if differ and stage.loads else stage.name
    seen: dict[str, int] = {}
    for i in indexes:
        seen[names[i]] = seen.get(names[i], 0) + 1
        if seen[names[i]] > 1:
            names[i] = f"{names[i]}#{seen[names[i]]}"
    return names


def _memory(cfg: dict[str, Any], entries: dict[str, models.ModelEntry], loads: tuple[str, ...], batch: int) -> tuple[float | None, float | None, float | None]:
    if not loads or any(f not in entries for f in loads):
        return None, None, None
    weights = sum(entries[f].params_b * BYTES_PER_PARAM[entries[f].dtype] for f in loads)
    activations = sum(entries[f].activation_gb for f in loads) * batch
    return round(weights, 1), round(activations, 1), round((weights + activations) * cfg["gpu"]["activation_margin"], 1)


def plan_pools(stages: list[Stage], cfg: dict[str, Any]) -> PoolPlan:
    """The pool plan for this stage list on `gpu.nodes` x `gpu.gpus_per_node` GPUs of
    `gpu.gpu_mem_gb`: sized from the cost table when `gpu.auto_pools`, else as configured."""
    gpu = cfg["gpu"]
    auto = bool(gpu["auto_pools"])
    mem = float(gpu["gpu_mem_gb"])
    costs, cost_size = load_costs(cfg)
    rows_by_pool, candidates, notes = traffic(stages, cfg)
    tasks = list(cfg["run"]["tasks"])
    shares, video_share = input_shares(tasks, float(gpu["video_share"]))
    indexes = [i for i, s in enumerate(stages) if s.uses_model]
    labels = _labels(stages, indexes)
    entries = models.registry()
    pools = []
    for i in indexes:
        stage = stages[i]
        res = stage.resources
        model = getattr(type(stage), "model", None)
        weights, activations, need = _memory(cfg, entries, tuple(stage.loads), res.batch_size)
        key = cost_key(stage)
        cost = costs.get(key)
        seconds = None
        if cost is not None:
            seconds = cost.seconds_per_row
            params = cfg["model_stages"].get(model.section, {}) if model is not None else {}
            if cost.steps and params.get("steps"):
                seconds *= params["steps"] / cost.steps
        by_task = rows_by_pool[i]
        pools.append(
            Pool(
                i, labels[i], key, tuple(stage.loads), stage.tasks,
                f"model_stages.{model.section}" if model is not None else stage.name, res.batch_size, res.num_cpus,
                res.concurrency, res.num_gpus, weights, activations, need, cost, seconds, by_task,
                rows=sum(shares[t] * n for t, n in by_task.items()),
            )
        )
    plan = PoolPlan(
        pools, int(gpu["nodes"]), int(gpu["gpus_per_node"]), mem, auto, tasks, shares, candidates, video_share,
        cost_size, int(cfg["decode"]["working_size"]), notes=notes,
    )
    for p in pools:
        if p.cost is None:
            plan.notes.append(f"{p.label}: no `{p.key}` in {shown(table_path(cfg, 'cost_table'))}: its work is unknown, it keeps {p.setting}'s size (run `plan --calibrate` on a GPU)")
    if cost_size and cost_size != plan.working_size:
        plan.notes.append(f"the costs were measured at {cost_size} px, this config works at {plan.working_size} px: run `plan --calibrate`")
    if auto:
        size_auto(plan, float(gpu["share_step"]))
    else:
        size_fixed(plan)
    for p in pools:
        if p.need_gb is not None and p.need_gb > mem:
            plan.problems.append(
                f"{p.label}: needs {p.need_gb} GB per actor but one {mem:g} GB GPU has {mem:g} GB; lower {p.setting}.batch_size or use larger GPUs"
            )
    _sd3_note(plan, entries)
    return plan


def _sd3_note(plan: PoolPlan, entries: dict[str, models.ModelEntry]) -> None:
    """Each ControlNet actor loads SD3.5's base: say how many copies the run holds."""
    holders = [p for p in plan.pools if SD3_BASE in p.loads]
    if not holders:
        return
    entry = entries[SD3_BASE]
    base_gb = entry.params_b * BYTES_PER_PARAM[entry.dtype]
    copies = sum(p.actors for p in holders)
    controlnets = sorted({p.loads[-1] for p in holders})
    line = f"SD3.5's base ({base_gb:.1f} GB) is loaded by every ControlNet actor: {copies} cop{'y' if copies == 1 else 'ies'} ({copies * base_gb:.0f} GB) in {len(holders)} pool(s)"
    if len(controlnets) > 1:
        line += f"; {' and '.join(controlnets)} both run here, each pool with its own base (one actor holding the base and both ControlNets would save one copy per pair)"
    plan.notes.append(line)


def apply_pool_plan(stages: list[Stage], cfg: dict[str, Any]) -> PoolPlan:
    """gpu.auto_pools: give each pool of `stages` (the run's list, freshly built) the actors and GPU
    share of the plan for `gpu.nodes` x `gpu.gpus_per_node` GPUs. The config's model_stages blocks
    are left as they are (two pools can share one block: the depth and canny ControlNets); the
    stages carry the numbers. A plan that does not fit is a configuration error."""
    plan = plan_pools(stages, cfg)
    if plan.problems:
        raise ConfigError("gpu.auto_pools: the pool plan does not fit: " + "; ".join(plan.problems) + " (see `python -m pipeline plan`)")
    for p in plan.pools:
        stage = stages[p.index]  # a caller's own recipe stages stay as they were
        stages[p.index] = stage.with_resources(replace(stage.resources, concurrency=p.actors, num_gpus=p.share))
    return plan
