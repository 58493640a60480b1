"""The pool plan: how many actors each model stage of a run gets and what share of a GPU each
holds, from three tables and nothing loaded. `python -m pipeline plan` prints it; with
`gpu.auto_pools` (the gpu profile) `stage_list.build_stage_list` gives the stages its numbers.

- The run's stage list: its actor pools, in order. A model two tasks share with the same settings
  is one pool, but the same weights can be two pools (Florence-2 grounding and OCR, Qwen2.5-VL
  choosing and describing, SigLIP tags at two points of the list), and each pool holds its GPUs.
- The registry (configs/models.yaml): an actor's memory is its weights plus each loaded family's
  activations times the batch, with `gpu.activation_margin` on top. SD3.5's base is counted in
  every ControlNet actor: once in a shared actor holding both ControlNets
  (`model_stages.sd3_controlnet.share_base`, where that fits one GPU), else in each of the depth
  and canny pools. A shared pool's rows cost what their own ControlNet's do (`cost_keys`).
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
    pairwise_calls,
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
    "MILLI", "Cost", "Pool", "PoolPlan", "apply_pool_plan", "auto_share", "cost_key", "cost_keys", "evaluate", "format_plan",
    "input_shares", "load_costs", "load_traffic", "model_stage_classes", "plan_pools", "shown", "size_pools",
    "stages_for", "table_path", "traffic",
]

BYTES_PER_PARAM = models.BYTES_PER_PARAM
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


def cost_keys(stage: Stage, tasks: list[str]) -> dict[str, str]:
    """Each task's cost-table key at this stage: cost_key, except in a pool whose tasks use
    different weights (one SD3.5 base with a ControlNet per task), where each task's rows cost
    what its own family's do."""
    key = cost_key(stage)
    if not isinstance(stage, ModelStage) or key != type(stage).model.family:
        return {t: key for t in tasks}
    return {t: stage.family_of_task(t) for t in tasks}


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
    return models.actor_memory_gb(loads, batch, cfg["gpu"]["activation_margin"], entries)


def _seconds(cost: Cost, params: dict[str, Any]) -> float:
    """The cost at the section's steps (diffusion costs scale with them)."""
    if cost.steps and params.get("steps"):
        return cost.seconds_per_row * params["steps"] / cost.steps
    return cost.seconds_per_row


def _calls_per_row(stage: Stage, task: str, pairwise: dict[str, tuple[float, int, float]]) -> float:
    """The pairwise judge's cost entry is per call; each of an edit's N rows costs N - 1 calls."""
    if getattr(stage, "group_phase", None) != "gather" or task not in pairwise:
        return 1.0
    return float(pairwise[task][1] - 1)


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
    pairwise = pairwise_calls(stages, candidates)
    indexes = [i for i, s in enumerate(stages) if s.uses_model]
    labels = _labels(stages, indexes)
    entries = models.registry()
    pools = []
    for i in indexes:
        stage = stages[i]
        res = stage.resources
        model = getattr(type(stage), "model", None)
        weights, activations, need = _memory(cfg, entries, tuple(stage.loads), res.batch_size)
        by_task = rows_by_pool[i]
        keys = cost_keys(stage, tasks if stage.tasks is None else [t for t in tasks if t in stage.tasks])
        params = cfg["model_stages"].get(model.section, {}) if model is not None else {}
        known = {k: costs[k] for k in dict.fromkeys(keys.values()) if k in costs}
        per_task = {t: _seconds(known[k], params) * _calls_per_row(stage, t, pairwise) for t, k in keys.items() if k in known}
        cost = next(iter(known.values())) if known and len(known) == len(set(keys.values())) else None
        rows = sum(shares[t] * n for t, n in by_task.items())
        seconds = None
        if cost is not None:  # the mean over the pool's rows, so rows x seconds is its work
            seconds = sum(shares[t] * n * per_task[t] for t, n in by_task.items()) / rows if rows else max(per_task.values())
        pools.append(
            Pool(
                i, labels[i], "+".join(dict.fromkeys(keys.values())) or cost_key(stage), tuple(stage.loads), stage.tasks,
                f"model_stages.{model.section}" if model is not None else stage.name, res.batch_size, res.num_cpus,
                res.concurrency, res.num_gpus, weights, activations, need, cost, seconds, by_task,
                rows=rows, costs=known, seconds_by_task=per_task if cost is not None else {},
            )
        )
    plan = PoolPlan(
        pools, int(gpu["nodes"]), int(gpu["gpus_per_node"]), mem, auto, tasks, shares, candidates, video_share,
        cost_size, int(cfg["decode"]["working_size"]), notes=notes, pairwise=pairwise,
    )
    for p in pools:
        if p.cost is None:
            plan.notes.append(f"{p.label}: no `{'` or `'.join(k for k in p.key.split('+') if k not in p.costs)}` in {shown(table_path(cfg, 'cost_table'))}: its work is unknown, it keeps {p.setting}'s size (run `plan --calibrate` on a GPU)")
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
    _sd3_note(plan, entries, cfg)
    return plan


def _sd3_note(plan: PoolPlan, entries: dict[str, models.ModelEntry], cfg: dict[str, Any]) -> None:
    """Each ControlNet actor loads SD3.5's base: say how many copies the run holds, and where the
    depth and canny ControlNets run in separate pools, why they do not share one."""
    holders = [p for p in plan.pools if SD3_BASE in p.loads]
    if not holders:
        return
    entry = entries[SD3_BASE]
    base_gb = entry.params_b * BYTES_PER_PARAM[entry.dtype]
    copies = sum(p.actors for p in holders)
    line = f"SD3.5's base ({base_gb:.1f} GB) is loaded by every ControlNet actor: {copies} cop{'y' if copies == 1 else 'ies'} ({copies * base_gb:.0f} GB) in {len(holders)} pool(s)"
    controlnets = sorted({f for p in holders for f in p.loads if f != SD3_BASE})
    together = [p for p in holders if len(p.loads) > 2]
    if together:
        line += f"; each actor of {', '.join(p.label for p in together)} holds the base once with {' and '.join(together[0].loads[1:])} (model_stages.sd3_controlnet.share_base)"
    elif len(controlnets) > 1:
        params = cfg["model_stages"]["sd3_controlnet"]
        need = models.actor_memory_gb((SD3_BASE, *controlnets), int(params["batch_size"]), cfg["gpu"]["activation_margin"], entries)[2]
        why = "model_stages.sd3_controlnet.share_base is off" if not params.get("share_base") else f"one actor with the base and both would need {need} GB, a GPU has {plan.gpu_mem_gb:g} GB"
        line += f"; {' and '.join(controlnets)} run in separate pools, each with its own base: {why}"
    plan.notes.append(line)


def apply_pool_plan(stages: list[Stage], cfg: dict[str, Any]) -> PoolPlan:
    """gpu.auto_pools: give each pool of `stages` (the run's list, freshly built) the actors and GPU
    share of the plan for `gpu.nodes` x `gpu.gpus_per_node` GPUs. The config's model_stages blocks
    are left as they are (two pools can share one block: separate depth and canny ControlNets); the
    stages carry the numbers. A plan that does not fit is a configuration error."""
    plan = plan_pools(stages, cfg)
    if plan.problems:
        raise ConfigError("gpu.auto_pools: the pool plan does not fit: " + "; ".join(plan.problems) + " (see `python -m pipeline plan`)")
    for p in plan.pools:
        stage = stages[p.index]  # a caller's own recipe stages stay as they were
        stages[p.index] = stage.with_resources(replace(stage.resources, concurrency=p.actors, num_gpus=p.share))
    return plan
