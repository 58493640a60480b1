"""The pool plan's two tables, read from the config's `gpu` keys, and the rows they give.

- The cost table (`gpu.cost_table`, configs/stage_costs.yaml): GPU-seconds per row of each stage
  with a whole GPU, at the working size; `python -m pipeline plan --calibrate` writes it.
- The traffic (`gpu.traffic`, configs/traffic.yaml): rows per input of each task that reach each
  pool, as numbers or `a * b + c` over the task's config keys. Their product, summed over the
  tasks, is a pool's work per input (pool_sizing.py).

Also the share of the inputs that reaches each task (images and videos, `gpu.video_share`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core import schema
from pipeline.core.config import CONFIG_DIR, ConfigError, read_yaml
from pipeline.core.stage import Stage
from pipeline.core.task_names import VIDEO_TASKS


@dataclass(frozen=True)
class Cost:
    seconds_per_row: float  # with a whole GPU, at the table's working size
    steps: int | None = None  # the number scales with the section's `steps`
    measured_on: str | None = None  # None: an estimate
    source: str = ""


def table_path(cfg: dict[str, Any], key: str) -> Path:
    """`gpu.cost_table` or `gpu.traffic`: a name in configs/, or a path."""
    path = Path(str(cfg["gpu"][key])).expanduser()
    return path if path.is_absolute() or path.exists() else CONFIG_DIR / path


def shown(path: Path) -> str:
    """A table's path as the user would type it: relative to the repository where it lies there."""
    try:
        return str(path.resolve().relative_to(CONFIG_DIR.parent.resolve()))
    except ValueError:
        return str(path)


def load_costs(cfg: dict[str, Any]) -> tuple[dict[str, Cost], int | None]:
    """The cost table's entries by key, and the working size they were measured at."""
    path = table_path(cfg, "cost_table")
    data = read_yaml(path, "gpu.cost_table")
    costs = {}
    for key, entry in (data.get("stages") or {}).items():
        try:
            costs[key] = Cost(float(entry["seconds_per_row"]), entry.get("steps"), entry.get("measured_on"), str(entry.get("source", "")))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}: stages.{key} needs a number in seconds_per_row") from None
    return costs, data.get("working_size")


def load_traffic(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    data = read_yaml(table_path(cfg, "traffic"), "gpu.traffic")
    return {"candidates": data.get("candidates") or {}, "generated": data.get("generated") or {}}


_TERM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def evaluate(expression: Any, task_cfg: dict[str, Any], where: str) -> float:
    """`a * b + c` over the task's config keys (dotted for nested ones) and numbers."""
    if isinstance(expression, (int, float)) and not isinstance(expression, bool):
        return float(expression)
    total = 0.0
    for term in str(expression).split("+"):
        product = 1.0
        for factor in term.split("*"):
            factor = factor.strip()
            try:
                product *= float(factor)
                continue
            except ValueError:
                pass
            node: Any = task_cfg
            for part in factor.split("."):
                if not _TERM.match(factor) or not isinstance(node, dict) or part not in node:
                    raise ConfigError(f"{where}: {factor!r} is neither a number nor a key of the task's config")
                node = node[part]
            if isinstance(node, bool) or not isinstance(node, (int, float)):
                raise ConfigError(f"{where}: {factor} is {node!r}, not a number")
            product *= float(node)
        total += product
    return total


def traffic(stages: list[Stage], cfg: dict[str, Any]) -> tuple[dict[int, dict[str, float]], dict[str, float], list[str]]:
    """Rows of one input of each task that reach each pool (by stage index), the candidates per
    input of each task, and notes on what the traffic table did not say. A task's chain is walked
    in the run's order: one row per input up to its proposal step (`fans_out`), then its
    candidates; a generator after it works on the `generated` ones, a stage that also takes rows
    with a verdict (the model gates, the judge) on every candidate. Best of N multiplies the rows
    between a task's copies and the pairwise judge by N."""
    table = load_traffic(cfg)
    notes = []
    rows: dict[int, dict[str, float]] = {i: {} for i, s in enumerate(stages) if s.uses_model}
    candidates = {}
    for task in cfg["run"]["tasks"]:
        task_cfg = cfg["tasks"].get(task, {})
        if task in table["candidates"]:
            k = evaluate(table["candidates"][task], task_cfg, f"{table_path(cfg, 'traffic')}: candidates.{task}")
        else:
            k = 1.0
            notes.append(f"{task}: not in {shown(table_path(cfg, 'traffic'))}; counted as one candidate per input")
        generated = evaluate(table["generated"][task], task_cfg, f"generated.{task}") if task in table["generated"] else k
        candidates[task] = k
        proposed = False
        copies = 1.0  # best of N: each candidate drawn N times, from its copies to the pairwise judge
        for i, stage in enumerate(stages):
            if stage.tasks is not None and task not in stage.tasks:
                continue
            if stage.uses_model:
                takes_verdicts = any(status != schema.PENDING for status in stage.accepts)
                rows[i][task] = 1.0 if not proposed else (k if takes_verdicts else generated) * copies
            if stage.fans_out:
                proposed = True
            if stage.name == "best_of_n":
                copies = float(stage.n)
            elif getattr(stage, "group_phase", None) == "gather":
                copies = 1.0  # the winner goes on
    return rows, candidates, notes


def input_shares(tasks: list[str], video_share: float) -> tuple[dict[str, float], float]:
    """An image reaches the image tasks, a video the video tasks: with only one kind of task in
    the run, every input is of that kind."""
    has_video = any(t in VIDEO_TASKS for t in tasks)
    has_image = any(t not in VIDEO_TASKS for t in tasks)
    share = video_share if has_video and has_image else (1.0 if has_video else 0.0)
    return {t: share if t in VIDEO_TASKS else 1.0 - share for t in tasks}, share


def pairwise_calls(stages: list[Stage], candidates: dict[str, float]) -> dict[str, tuple[float, int, float]]:
    """Best of N: per task drawn N > 1 times, (edits per input, N, pairwise judge calls per
    input): every pair of an edit's N targets in both orders, N x (N - 1) calls per edit (an upper
    bound: targets that fail their gates do not compete)."""
    seeds = {t: stage.n for stage in stages if stage.name == "best_of_n" for t in (stage.tasks or ())}
    return {t: (candidates.get(t, 1.0), n, candidates.get(t, 1.0) * n * (n - 1)) for t, n in seeds.items()}
