"""Task recipes: which stages run in which order for each task, per profile."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pipeline.core.config import ConfigError
from pipeline.core.stage import Stage
from stages.best_of_n import with_best_of_n

# task id -> module in this package that implements it
RECIPES: dict[str, str] = {
    "subject_add": "tasks.add.recipe",
    "subject_remove": "tasks.remove.recipe",
    "subject_replace": "tasks.replace.recipe",
    "background_change": "tasks.background.recipe",
    "color_alteration": "tasks.color.recipe",
    "material_modification": "tasks.material.recipe",
    "motion_change": "tasks.motion.recipe",
    "portrait_beautification": "tasks.portrait.recipe",
    "tone_transformation": "tasks.tone.recipe",
    "text_modification": "tasks.text.recipe",
    "style_transfer": "tasks.style.recipe",
}


def _recipe(task: str):
    try:
        return import_module(RECIPES[task])
    except ModuleNotFoundError as exc:
        if exc.name == RECIPES[task]:
            return None  # named here, not written yet
        raise


class NotImplementedTask(NotImplementedError):
    pass


def is_implemented(task: str, profile: str) -> bool:
    module = _recipe(task)
    return module is not None and profile in module.PROFILES


def _implemented(task: str, profile: str):
    module = _recipe(task)
    if module is None:
        raise NotImplementedTask(f"task {task!r} is not implemented yet")
    if profile not in module.PROFILES:
        raise NotImplementedTask(f"task {task!r} has no recipe for the {profile!r} profile yet (has: {', '.join(module.PROFILES)})")
    return module


# real frames, not drawn ones: a second seed would give the same pair again
NO_SEEDS = frozenset({"motion_change"})


def build_stages(task: str, cfg: dict[str, Any]) -> list[Stage]:
    """The task's chain for the configured profile, its own gate last; with `tasks.<task>.seeds`
    N > 1 every proposed edit is drawn N times (stages/best_of_n.py)."""
    stages = _implemented(task, cfg["profile"]).build(cfg)
    return with_best_of_n(stages, task, seeds_of(task, cfg))


def seeds_of(task: str, cfg: dict[str, Any]) -> int:
    """`tasks.<task>.seeds`, checked: at least 1, and 1 for a task that draws nothing."""
    n = int(cfg["tasks"].get(task, {}).get("seeds", 1))
    if n < 1:
        raise ConfigError(f"tasks.{task}.seeds: must be at least 1, not {n}")
    if n > 1 and task in NO_SEEDS:
        raise ConfigError(f"tasks.{task}.seeds: {task} takes its targets from real video frames; only 1 is possible")
    return n


def task_gate(task: str, cfg: dict[str, Any]) -> Stage:
    """The task's own gate alone, without building its chain (no model is sized or named)."""
    return _implemented(task, cfg["profile"]).gate(cfg)
